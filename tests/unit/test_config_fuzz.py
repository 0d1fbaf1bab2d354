"""Config fuzzing: whatever the file holds, mpp either loads a config it can run or says, in
one line, which file and which key are wrong. Never a traceback, never a second line.

Three sources of bad input: every key the schema has (walked from the pydantic models, so a
new key is fuzzed the day it is added) set to values of every TOML type; unknown keys in
every table; and byte-level mutations of real configs (the sandbox's generated mpp.toml and
the example in docs/configuration.md), read through `load` as `mpp` reads a file.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import tempfile
import tomllib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from mpp.config import Config, ConfigError, load, parse
from mpp.sandbox.mpp_config import write_mpp_config
from mpp.sandbox.state import new_state
from tests.builders import config_doc, config_text, merged, pool

FILE = Path("/etc/mpp/fuzzed.toml")  # only what the messages name: parse() reads nothing
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# every section present, so that a key of each can be fuzzed in place
BASE = config_doc(
    pool(
        topology="primary-replica",
        repl_password_env="UNUSED_REPL",
        hooks={"post_failover": "true"},
    ),
    mpp={"state": "sqlite://state.db", "interval": "1s"},
    api={"listen": "127.0.0.1:8080", "token_file": "token"},
    agent={"listen": "127.0.0.1:9800"},
    router={"rw": "127.0.0.1:6446"},
    notify={
        "webhook": [{"url": "http://127.0.0.1:1/hook"}],
        "email": [{"to": ["ops@example.com"]}],
    },
)


def _models(annotation: Any) -> Iterator[tuple[type[BaseModel], bool]]:
    """The models inside an annotation (X, X | None, list[X]); True when it is a list."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models(arg)
    elif origin is list:
        for model, _ in _models(typing.get_args(annotation)[0]):
            yield model, True
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False


def schema_keys(model: type[BaseModel], prefix: tuple[str | int, ...] = ()) -> Iterator[Any]:
    """Every key path the file can hold: ('pool', 0, 'node', 1, 'address'), ..."""
    for name, field in model.model_fields.items():
        if name == "path" and not prefix:
            continue  # set by parse(), not a key of the file
        path = (*prefix, name)
        yield path
        for sub, is_list in _models(field.annotation):
            yield from schema_keys(
                sub, (*path, 1) if is_list and name == "node" else (*path, 0) if is_list else path
            )


KEYS = sorted(set(schema_keys(Config)), key=str)


def test_the_schema_walk_sees_every_section() -> None:
    """The fuzzing below is only as good as this list: it must reach the nested tables."""
    wanted = {
        ("mpp", "interval"),
        ("pool", 0, "node", 1, "address"),
        ("pool", 0, "hooks", "timeout"),
        ("api", "token_file"),
        ("router", "switchover_wait"),
        ("notify", "webhook", 0, "url"),
        ("notify", "email", 0, "to"),
        ("etcd", "ca_file"),
    }
    assert wanted <= set(KEYS), wanted - set(KEYS)


def with_value(doc: Any, key: tuple[str | int, ...], value: Any) -> Any:
    """doc with the value at `key` replaced (tables on the way made when missing)."""
    if not key:
        return value
    head, rest = key[0], key[1:]
    if isinstance(head, int):
        items = list(doc) if isinstance(doc, list) else []
        while len(items) <= head:
            items.append({})
        items[head] = with_value(items[head], rest, value)
        return items
    table = dict(doc) if isinstance(doc, dict) else {}
    table[head] = with_value(table.get(head, {}), rest, value)
    return table


scalars = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1e400",
            "nan",
            "inf",
            "10s",
            "-5s",
            "99999999999h",
            "0ms",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "127.0.0.1:\u0663\u0663",
            "[::1]:3306",
            "[::1",
            "<script>alert(1)</script> x:36062",
            "[/x]:36062",
            "host\n:1",
            "a:1\n",
            "sqlite://",
            "sqlite://a\x00b",
            "etcd://h:1/p\n",
            "http://x",
            "A=B",
            "X\x00",
            "primary",
            "secondary",
            "failover",
            "[bold]x[/bold]",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def one_line_naming(err: ConfigError, *names: str) -> str:
    """The error's text, checked: one line, naming the file and one of `names`."""
    message = str(err)
    assert "\n" not in message and "\r" not in message, message
    assert all(c.isprintable() for c in message), repr(message)
    assert message.startswith(f"{FILE}: "), message
    if names:
        assert any(n in message for n in names), (names, message)
    return message


def check_loaded(config: Config) -> None:
    """A config that loads is one mpp can run: finite timers, addresses it can connect to."""
    for model in _walk(config):
        for name, value in model:
            if isinstance(value, float):
                assert math.isfinite(value) and value >= 0, (name, value)
    for p in config.pool:
        for node in p.node:
            assert plain_host(node.host) and 0 < node.port < 65536, node.address
            assert node.address.rpartition(":")[2].isascii(), node.address


def plain_host(host: str) -> bool:
    """A host name or an IP address: nothing a log line, a table or a page could misread."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return re.fullmatch(r"[A-Za-z0-9_.-]+", host, re.ASCII) is not None
    return True


def _walk(model: BaseModel) -> Iterator[BaseModel]:
    yield model
    for value in dict(model).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                yield from _walk(item)


def _names(key: tuple[str | int, ...]) -> list[str]:
    """What an error about `key` may name: the key itself, or the table that holds it
    (a cross-key rule such as "exactly one primary" is reported on the pool)."""
    names = [str(k) for k in key if isinstance(k, str)]
    return names[-2:] if len(names) > 1 else names


def test_the_base_document_loads() -> None:
    check_loaded(parse(BASE, FILE))


@FUZZ
@given(key=st.sampled_from(KEYS), value=values)
def test_any_value_for_any_key_loads_or_names_the_key(key: Any, value: Any) -> None:
    doc = with_value(BASE, key, value)
    try:
        config = parse(doc, FILE)
    except ConfigError as err:
        one_line_naming(err, *_names(key))
    else:
        check_loaded(config)


TABLES = [
    (),
    ("mpp",),
    ("pool", 0),
    ("pool", 0, "node", 0),
    ("pool", 0, "hooks"),
    ("api",),
    ("agent",),
    ("router",),
    ("notify",),
    ("notify", "webhook", 0),
    ("notify", "email", 0),
]


@FUZZ
@given(table=st.sampled_from(TABLES), name=st.text(min_size=1, max_size=20), value=scalars)
def test_an_unknown_key_is_named(table: Any, name: str, value: Any) -> None:
    known = {k[len(table)] for k in KEYS if k[: len(table)] == table and len(k) > len(table)}
    if name in known or (not table and name in {"pool", "path"} | known):
        return
    with pytest.raises(ConfigError) as info:
        parse(with_value(BASE, (*table, name), value), FILE)
    message = one_line_naming(info.value)
    assert "unknown key" in message, message
    shown = name if re.fullmatch(r"[A-Za-z0-9_.-]+", name, re.ASCII) else repr(name)[:77]
    assert shown in message, (name, message)


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        (("mpp", "interval"), math.nan, "nan is not a duration"),
        (("mpp", "connect_timeout"), math.inf, "longer than a year"),
        (("pool", 0, "max_lag"), math.nan, "nan is not a duration"),
        (("pool", 0, "failover_block"), "99999999999h", "longer than a year"),
        (("pool", 0, "node", 1, "address"), "<script>alert(1)</script> x:36062", "HOST:PORT"),
        (("pool", 0, "node", 1, "address"), "[/x]:36062", "HOST:PORT"),
        (("pool", 0, "node", 1, "address"), "127.0.0.1:\u0663\u0663", "HOST:PORT"),
        (("pool", 0, "node", 1, "address"), "db\n2:3306", "HOST:PORT"),
        (("api", "listen"), "127.0.0.1 :8080", "HOST:PORT to listen on"),
        (("pool", 0, "password_env"), "A\x00B", "not an environment variable"),
        (("pool", 0, "password_file"), "pw\x00", "not a file name"),
        (("mpp", "state"), "sqlite://st\x00ate.db", "not a file name"),
        (("mpp", "state"), "etcd://h:1/mpp\n", "not a supported store"),
        (("path",), "/tmp/elsewhere.toml", "unknown key"),
        (("mpp", "name"), "site-a\n2026-12-01 INFO mpp forged", "line break or control"),
        (("pool", 0, "user"), "mpp\r", "line break or control"),
        (("notify", "email", 0, "to"), ["dba@x.com\r\nBcc: all@x.com"], "not a mail address"),
        (("notify", "email", 0, "sender"), "mpp", "not a mail address"),
        (("notify", "webhook", 0, "url"), "http://x/a b", "should match pattern"),
    ],
)
def test_known_garbage_is_rejected(key: tuple[str | int, ...], value: Any, says: str) -> None:
    """Issue 15 (items 7, 9) and what the fuzzing above found, each pinned."""
    with pytest.raises(ConfigError) as info:
        parse(with_value(BASE, key, value), FILE)
    message = one_line_naming(info.value, str(key[-1]))
    assert says in message, message


def test_bracketed_ipv6_and_host_names_still_load() -> None:
    nodes = [
        {"name": "a", "address": "[::1]:3306", "type": "primary"},
        {"name": "b", "address": "db-2.example.com:3306"},
        {"name": "c", "address": "10.0.0.3:3306"},
    ]
    config = parse(merged(BASE, {"pool": [pool(node=nodes)], "router": {}}), FILE)
    assert [(n.host, n.port) for n in config.pool[0].node] == [
        ("::1", 3306),
        ("db-2.example.com", 3306),
        ("10.0.0.3", 3306),
    ]


def test_several_problems_share_the_one_line() -> None:
    doc = with_value(with_value(BASE, ("mpp", "interval"), "soon"), ("api", "listen"), "x")
    with pytest.raises(ConfigError) as info:
        parse(doc, FILE)
    message = one_line_naming(info.value)
    assert "mpp.interval: 'soon' is not a duration" in message
    assert "; api.listen: 'x' is not HOST:PORT" in message


# -- files: bytes as `mpp` reads them -------------------------------------------------------


@functools.cache
def sandbox_toml() -> str:
    """What `mpp sandbox up --api ...` writes for a primary-replica sandbox."""
    with tempfile.TemporaryDirectory() as d:
        state = new_state(3, 33060, "primary-replica")
        write_mpp_config(Path(d), state, lambda _: None, "127.0.0.1:8080")
        return (Path(d) / "mpp.toml").read_text()


def docs_toml() -> str:
    text = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    return text.split("```toml\n", 1)[1].split("```", 1)[0]


def load_error(path: Path) -> str | None:
    """None when the file loads; else the error's one line, checked."""
    try:
        load(path)
    except ConfigError as err:
        message = str(err)
        assert "\n" not in message and message.startswith(f"{path}: "), message
        return message
    return None


def test_the_real_configs_load(tmp_path: Path) -> None:
    for name, text in [("sandbox.toml", sandbox_toml()), ("docs.toml", docs_toml())]:
        path = tmp_path / name
        path.write_text(text)
        assert load_error(path) is None, name


mutation = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "duplicate-line", "drop-line"]),
    st.floats(min_value=0, max_value=1),
    st.binary(min_size=1, max_size=8)
    | st.sampled_from([b"[", b"]", b'"', b"=", b"\n", b"\xff", b"\xc3", b"nan", b"[[pool]]\n"]),
)


def mutate(data: bytes, kind: str, where: float, chunk: bytes) -> bytes:
    at = int(where * len(data))
    if kind == "insert":
        return data[:at] + chunk + data[at:]
    if kind == "delete":
        return data[:at] + data[at + len(chunk) :]
    if kind == "replace":
        return data[:at] + chunk + data[at + len(chunk) :]
    lines = data.splitlines(keepends=True)
    i = min(int(where * len(lines)), len(lines) - 1)
    return b"".join(
        lines[: i + 1] + lines[i:] if kind == "duplicate-line" else lines[:i] + lines[i + 1 :]
    )


@FUZZ
@given(
    source=st.sampled_from(["sandbox", "docs"]),
    mutations=st.lists(mutation, min_size=1, max_size=3),
)
def test_mutated_real_configs_load_or_say_one_line(
    tmp_path: Path, source: str, mutations: list[tuple[str, float, bytes]]
) -> None:
    data = (sandbox_toml() if source == "sandbox" else docs_toml()).encode()
    for kind, where, chunk in mutations:
        data = mutate(data, kind, where, chunk)
    path = tmp_path / "mutated.toml"
    path.write_bytes(data)
    if load_error(path) is None:
        check_loaded(load(path))


def test_non_utf8_bytes_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(sandbox_toml().encode().replace(b'"main"', b'"m\xe4in"'))
    message = load_error(path)
    assert message is not None and "not UTF-8 (byte 0xe4 on line 8)" in message, message


@pytest.mark.parametrize("depth", [400, 5000])
def test_deep_nesting_is_an_error_not_a_recursion(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(sandbox_toml() + "\n[agent]\nlisten = " + "[" * depth + "]" * depth)
    message = load_error(path)
    assert message is not None and ("nested too deeply" in message or "agent.listen" in message)


def test_a_newline_in_a_quoted_key_cannot_split_the_line(tmp_path: Path) -> None:
    path = tmp_path / "key.toml"
    path.write_text(sandbox_toml() + '\n[agent]\n"x\\nmpp: all is fine" = 1\n')
    message = load_error(path)
    assert message is not None and "agent.'x\\nmpp: all is fine': unknown key" in message


def test_secret_files_that_are_not_utf8_are_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"\xff\xfe")
    doc = with_value(BASE, ("pool", 0, "password_file"), "pw")
    del doc["pool"][0]["password_env"]
    config = parse(doc, tmp_path / "mpp.toml")
    with pytest.raises(ConfigError, match=r"key password_file: .*pw is not UTF-8"):
        config.password(config.pool[0])


def test_the_generated_files_parse_as_toml(tmp_path: Path) -> None:
    """The builders' TOML is what the CLI tests write: it must round-trip."""
    assert tomllib.loads(config_text(BASE)) == BASE
