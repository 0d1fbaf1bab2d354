"""The distributed store: etcd v3, spoken through its JSON gateway over HTTP.

Why the gateway and not a client library: the Python etcd3 clients pin old gRPC/protobuf
stacks and lag behind etcd releases, while the gateway (`/v3/kv/range`, `/v3/kv/txn`,
`/v3/lease/*`) is part of every etcd 3.4+ server and needs only HTTP (mpp/store/gateway.py,
on the standard library's http.client for its CPU cost). Patroni's etcd3 backend made the
same choice.

Layout under the prefix (default `/mpp`):
    {prefix}/pools/{pool}                 the pool's state document (codec.dumps)
    {prefix}/events/{pool}/{at_ns}.{tag}  the events of one commit, a JSON list (one key per
                                          commit: etcd caps a txn at 128 operations)
    {prefix}/agents/{pool}/{node}         a node agent's newest report (codec.report_dumps)
    {prefix}/reach/{instance}             an instance's checkpoint report (codec.reach_dumps)
    {prefix}/views/{pool}/{owner}         an instance's newest view of the pool's nodes
    {prefix}/leaders/{pool}               a pool's own leader (pools shared among instances)
    {prefix}/members/{owner}              a live instance (on its lease)
    {prefix}/leader                       the leader's owner id, attached to its lease

A snapshot's version is the etcd mod_revision of the pool's key, so compare-and-set is a
single txn comparing it, and the state and the cycle's events are written by that same txn.
A leader's save also compares the leader key's value with its owner id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import secrets
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from mpp.model import AgentReport, Event, PoolState, ReachReport, SiteView
from mpp.store import codec
from mpp.store.contract import (
    Events,
    Followed,
    Leader,
    NotLeader,
    Snapshot,
    Store,
    StoreError,
    Version,
)
from mpp.store.gateway import Answer, Gateway, GatewayError, GatewayTimeout
from mpp.store.owners import vanished_here
from mpp.store.versions import known_versions


class _TokenExpired(Exception):
    pass


_TXN_OPS = 100  # etcd refuses a txn of more than 128 operations (--max-txn-ops)
_TRIM_EVERY = 100  # commits with events per pool between two history trims


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _text(b64: str) -> str:
    return base64.b64decode(b64).decode()


def _compare(key: str, target: str, value: str) -> dict[str, str]:
    """One txn comparison; `key` is base64 already, `value` as etcd's JSON wants it."""
    field = {"VERSION": "version", "MOD": "mod_revision", "VALUE": "value"}[target]
    return {"key": key, "target": target, "result": "EQUAL", field: value}


def _put(key: str, value: str, lease: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key, "value": _b64(value)}
    if lease is not None:
        body["lease"] = str(lease)
    return {"request_put": body}


def _prefix_end(key: str) -> str:
    """The range_end that covers every key starting with `key` (etcd's prefix convention)."""
    raw = bytearray(key.encode())
    raw[-1] += 1
    return raw.decode()


@dataclass(frozen=True)
class EtcdAccess:
    """How to get in: etcd's own user (auth enabled) and TLS material. The password is a
    SecretStr so that it never shows up in a repr, a log line or an error."""

    user: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.cert_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file or self.cert_file))
        return context


class EtcdStore(Store):
    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str = "/mpp",
        timeout: float = 2.0,
        keep_commits: int = 10_000,
        access: EtcdAccess | None = None,
        source_address: str | None = None,  # the local IP to connect from (the node agent's)
    ) -> None:
        if not endpoints:
            raise StoreError("etcd store: no endpoint given")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.prefix = prefix.rstrip("/")
        self.keep_commits = keep_commits
        self.access = access or EtcdAccess()
        self._token: str | None = None  # etcd's auth token, fetched on first use
        self._auth_lock = threading.Lock()
        try:
            context = (
                self.access.ssl_context()
                if any(e.startswith("https://") for e in self.endpoints)
                else None
            )
        except (OSError, ssl.SSLError) as err:
            raise StoreError(f"{self}: cannot load the TLS files: {err}") from err
        try:
            self._gateway = Gateway(self.endpoints, context, source_address)
        except ValueError as err:  # urlsplit: a port out of range
            raise StoreError(f"{self}: an endpoint is not a URL mpp can reach: {err}") from None
        self._timeout = timeout  # also how long a call waits out a leader election
        self._good = 0  # index of the endpoint that answered last
        self._lock = threading.Lock()  # guards the lease ids and the trim counters
        self._leases: dict[str, int] = {}  # owner -> its lease (one per process in practice)
        self._saves: dict[str, int] = {}
        self._followed: dict[str, Snapshot] = {}  # follow's states, by pool, as last decoded
        # every pool's version as this process knows it: is_current's answer with `within`
        self._known = known_versions(self.endpoints, self.prefix)

    def __repr__(self) -> str:
        return f"etcd store {','.join(self.endpoints)}{self.prefix}"

    # --- transport -------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One gateway call; with etcd auth, a token that expired (etcd drops idle simple
        tokens after --auth-token-ttl) is renewed once and the call repeated."""
        if self.access.user is not None and self._token is None:
            self._authenticate()
        try:
            return self._send(path, body)
        except _TokenExpired:
            self._authenticate()
            return self._send(path, body)

    def _authenticate(self) -> None:
        """A new token; the old one stays in use by other threads until it is replaced."""
        with self._auth_lock:
            password = self.access.password.get_secret_value() if self.access.password else ""
            body = {"name": self.access.user, "password": password}
            doc = self._send("/v3/auth/authenticate", body, token=None)
            self._token = str(doc.get("token", ""))

    def _send(
        self, path: str, body: dict[str, Any], token: str | bool | None = True
    ) -> dict[str, Any]:
        """One gateway call, trying each endpoint in turn from the last one that answered.
        `token`: True for the current one, None for none.

        A member that answers 503 has no leader to serve it (one member of three lost: the
        two left elect another in about a second, and meanwhile say "leader changed" or
        "no leader"): the next member may have one, and if none has, the call tries again
        until its timeout instead of failing the cycle; so does a member that does not answer
        in time (it holds requests until it has a leader). A repeated txn is safe: if the
        first one went through, the repeat's compare fails and the caller reads again."""
        token = self._token if token is True else token
        headers = {"Authorization": str(token)} if token else {}
        payload = json.dumps(body).encode("utf-8")
        count = len(self.endpoints)
        deadline = time.monotonic() + self._timeout
        while True:
            errors: list[str] = []
            leaderless = False
            for i in range(count):
                index = (self._good + i) % count
                endpoint = self.endpoints[index]
                # a member without a leader holds the request until one is elected, then
                # answers: let it, for what is left of the call's time
                wait = max(0.2, deadline - time.monotonic())
                try:
                    response = self._gateway.post(endpoint, path, payload, headers, wait)
                except GatewayTimeout as err:
                    errors.append(f"{endpoint}: {err}")
                    leaderless = True  # likely waiting for an election: worth another round
                    continue
                except GatewayError as err:
                    errors.append(f"{endpoint}: {err}")
                    continue
                if response.status == 503:
                    errors.append(f"{self.endpoints[index]}: 503 {response.text[:200]}")
                    leaderless = True
                    continue
                return self._answer(index, path, response, token)
            if not leaderless or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        raise StoreError(f"{self}: no etcd endpoint answered ({'; '.join(errors)})")

    def _answer(
        self, index: int, path: str, response: Answer, token: str | bool | None
    ) -> dict[str, Any]:
        """A member's answer as etcd's document, or the error it means."""
        self._good = index
        try:
            doc: dict[str, Any] = json.loads(response.body) if response.body else {}
        except ValueError:  # not etcd's gateway (a proxy's page, a wrong port)
            raise StoreError(
                f"{self}: {path} answered {response.status} with something that is not"
                f" JSON: {response.text[:200]!r}"
            ) from None
        if response.status == 401 and token and "auth token" in response.text:
            raise _TokenExpired
        if response.status != 200:
            detail = doc.get("message") or doc.get("error") or response.text
            raise StoreError(f"{self}: {path} answered {response.status}: {detail}")
        return doc

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def _range(self, key: str, end: str | None = None, **options: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"key": _b64(key), **options}
        if end is not None:
            body["range_end"] = _b64(end)
        return self._post("/v3/kv/range", body)

    # --- state and history -----------------------------------------------------------------

    def load(self, pool: str) -> Snapshot | None:
        kvs = self._range(self._key("pools", pool)).get("kvs", [])
        if not kvs:
            return None
        try:
            return Snapshot(codec.loads(_text(kvs[0]["value"])), int(kvs[0]["mod_revision"]))
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(f"{self}: stored state of pool {pool!r} is unreadable: {err}") from err

    def is_current(self, pool: str, version: int, within: float = 0.0) -> bool:
        """From one keys-only read of every pool's version per `within` seconds, or from
        follow's read, which has them too, and this process's own saves (mpp/store/versions.py):
        at hundreds of pools a load per pool-cycle was a quarter of the process's CPU."""
        if within <= 0:
            return False
        return self._known.current(pool, version, within, self._versions)

    def _versions(self) -> dict[str, int]:
        start = self._key("pools") + "/"
        doc = self._range(start, _prefix_end(start), keys_only=True)
        try:
            return {
                _text(kv["key"])[len(start) :]: int(kv["mod_revision"]) for kv in doc.get("kvs", [])
            }
        except (ValueError, TypeError, KeyError) as err:
            raise StoreError(f"{self}: the pools' versions are unreadable: {err}") from err

    def save(
        self,
        state: PoolState,
        events: Events,
        expect: Version,
        leader: str | None = None,
        scoped: bool = False,
    ) -> Version:
        key = _b64(self._key("pools", state.name))
        compare = [
            _compare(key, "VERSION", "0") if expect is None else _compare(key, "MOD", str(expect))
        ]
        leader_key = _b64(self._lease_key(state.name if scoped else None))
        if leader is not None:
            compare.append(_compare(leader_key, "VALUE", _b64(leader)))
        puts = [_put(key, codec.dumps(state))]
        if events:
            name = f"{int(events[0].at * 1e9):020d}.{secrets.token_hex(4)}"
            rows = [
                dict(zip(codec.EVENT_FIELDS, codec.event_values(e), strict=True)) for e in events
            ]
            value = json.dumps(rows, separators=(",", ":"))
            puts.append(_put(_b64(self._key("events", state.name, name)), value))
        failure = [{"request_range": {"key": leader_key}}]
        doc = self._post("/v3/kv/txn", {"compare": compare, "success": puts, "failure": failure})
        if not doc.get("succeeded"):
            if leader is not None and self._holder(doc) != leader:
                raise NotLeader(f"{self}: {leader} no longer holds the leadership")
            return None
        written = int(doc["header"]["revision"])
        self._known.wrote(state.name, written)
        if events:
            self._maybe_trim(state.name)
        return written

    @staticmethod
    def _holder(txn: dict[str, Any]) -> str | None:
        kvs = txn["responses"][0]["response_range"].get("kvs", [])
        return _text(kvs[0]["value"]) if kvs else None

    def _maybe_trim(self, pool: str) -> None:
        """Keep the newest `keep_commits` commits' events of the pool: etcd holds working
        state, not an archive (its default quota is 2 GB). Checked every _TRIM_EVERY saves.
        Oldest by etcd revision, not by name: names carry the deciding host's clock."""
        with self._lock:
            self._saves[pool] = self._saves.get(pool, 0) + 1
            if self._saves[pool] % _TRIM_EVERY != 1:
                return
        start = self._key("events", pool) + "/"
        end = _prefix_end(start)
        count = int(self._range(start, end, count_only=True).get("count", 0))
        excess = count - self.keep_commits
        if excess <= 0:
            return
        oldest = self._range(
            start, end, limit=excess, keys_only=True, sort_order="ASCEND", sort_target="CREATE"
        ).get("kvs", [])
        for i in range(0, len(oldest), _TXN_OPS):
            deletes = [
                {"request_delete_range": {"key": kv["key"]}} for kv in oldest[i : i + _TXN_OPS]
            ]
            self._post("/v3/kv/txn", {"compare": [], "success": deletes})

    def history(
        self, pool: str | None = None, node: str | None = None, limit: int = 50
    ) -> list[Event]:
        """In commit order (etcd revisions), like SQLite's insertion order."""
        pools = [pool] if pool is not None else self._event_pools()
        merged: list[tuple[int, int, Event]] = []
        for name in pools:
            merged.extend(self._pool_history(name, node, limit))
        merged.sort(key=lambda found: found[:2])
        return [event for _, _, event in merged[-limit:]] if limit > 0 else []

    def _event_pools(self) -> list[str]:
        start = self._key("events") + "/"
        names: set[str] = set()
        end = _prefix_end(start)
        while True:  # one key per pool: skip past each pool's events once it is seen
            kvs = self._range(start, end, limit=1, keys_only=True).get("kvs", [])
            if not kvs:
                return sorted(names)
            name = _text(kvs[0]["key"])[len(self._key("events")) + 1 :].split("/", 1)[0]
            names.add(name)
            start = _prefix_end(self._key("events", name) + "/")

    def _pool_history(
        self, pool: str, node: str | None, limit: int
    ) -> list[tuple[int, int, Event]]:
        """(revision, position in its commit, event), newest first from etcd, in pages (a
        node filter may skip most of a page); returned oldest first."""
        start = self._key("events", pool) + "/"
        end = _prefix_end(start)
        found: list[tuple[int, int, Event]] = []
        page = max(limit, 64) if node is None else max(4 * limit, 256)
        below: dict[str, str] = {}
        while len(found) < limit:
            doc = self._range(
                start, end, limit=page, sort_order="DESCEND", sort_target="CREATE", **below
            )
            kvs = doc.get("kvs", [])
            for kv in kvs:
                revision = int(kv["create_revision"])
                batch = [codec.event_from(item) for item in json.loads(_text(kv["value"]))]
                found.extend(
                    (revision, i, e)
                    for i, e in reversed(list(enumerate(batch)))
                    if node is None or e.node == node
                )
            if not doc.get("more") or not kvs:
                break
            below = {"max_create_revision": str(int(kvs[-1]["create_revision"]) - 1)}
        return list(reversed(found[:limit]))

    def follow(self, after: int | None) -> Followed:
        """Three requests whatever the number of pools: every state under pools/, then the
        agent reports under agents/ and the event keys created after `after` under events/,
        both read at the first read's revision (so nothing is newer than the states; etcd
        keeps that revision while it is the newest or younger than its compaction)."""
        start = self._key("pools") + "/"
        begun = time.monotonic()
        doc = self._range(start, _prefix_end(start))
        revision = int(doc.get("header", {}).get("revision", 0))
        states = {}
        for kv in doc.get("kvs", []):
            pool = _text(kv["key"])[len(start) :]
            version = int(kv["mod_revision"])
            known = self._followed.get(pool)
            if known is not None and known.version == version:
                states[pool] = known  # decoded once per version, not once per read
                continue
            try:
                states[pool] = Snapshot(codec.loads(_text(kv["value"])), version)
            except (ValueError, TypeError, KeyError) as err:
                raise StoreError(
                    f"{self}: stored state of pool {pool!r} is unreadable: {err}"
                ) from err
        self._followed = states
        self._known.learn({pool: snap.version for pool, snap in states.items()}, begun)
        agents = self._key("agents") + "/"
        reports: dict[str, dict[str, AgentReport]] = {}
        kvs = self._range(agents, _prefix_end(agents), revision=str(revision)).get("kvs", [])
        for kv in kvs:
            try:
                report = codec.report_loads(_text(kv["value"]))
            except (ValueError, TypeError, KeyError) as err:
                raise StoreError(f"{self}: an agent report is unreadable: {err}") from err
            reports.setdefault(report.pool, {})[report.node] = report
        if after is None or after >= revision:
            return Followed(states, (), max(revision, after or 0), reports)
        begin = self._key("events") + "/"
        found = self._range(
            begin,
            _prefix_end(begin),
            min_create_revision=str(after + 1),
            revision=str(revision),
            sort_order="ASCEND",
            sort_target="CREATE",
        )
        events: list[Event] = []
        for kv in found.get("kvs", []):
            events.extend(codec.event_from(item) for item in json.loads(_text(kv["value"])))
        return Followed(states, tuple(events), revision, reports)

    def pools(self) -> list[str]:
        start = self._key("pools") + "/"
        kvs = self._range(start, _prefix_end(start), keys_only=True).get("kvs", [])
        return sorted(_text(kv["key"])[len(start) :] for kv in kvs)

    # --- leadership ------------------------------------------------------------------------

    def _lease_key(self, scope: str | None) -> str:
        return self._key("leader") if scope is None else self._key("leaders", scope)

    def lead(self, owner: str, ttl: float, scope: str | None = None) -> bool:
        key = _b64(self._lease_key(scope))
        lease = self._lease_of(owner, ttl)
        put = _put(key, owner, lease)
        doc = self._post(
            "/v3/kv/txn",
            {
                "compare": [_compare(key, "VERSION", "0")],
                "success": [put],
                "failure": [{"request_range": {"key": key}}],
            },
        )
        if doc.get("succeeded"):
            return True
        kvs = doc["responses"][0]["response_range"].get("kvs", [])
        if not kvs:
            return self.lead(owner, ttl, scope)  # released between the compare and the read
        holder, revision = _text(kvs[0]["value"]), kvs[0]["mod_revision"]
        if holder == owner:
            if int(kvs[0].get("lease", 0)) == lease:
                return True  # _lease_of renewed it
            holder = ""  # ours, on a lease that expired and was replaced: put it on the new one
        if holder and not vanished_here(holder):
            return False
        taken = self._post(
            "/v3/kv/txn",
            {"compare": [_compare(key, "MOD", revision)], "success": [put]},
        )
        return bool(taken.get("succeeded"))

    def renew_held(self, owner: str, ttl: float, scopes: Sequence[str]) -> set[str]:
        """One keepalive of the owner's lease, which every pool key it holds is attached to
        (so it renews them all), then one read of who holds each pool: a pool is held when
        its key names the owner on that very lease (a lease granted anew holds nothing: the
        old one's keys went with it). The others are left to `lead`."""
        if not scopes:
            return set()
        lease = self._lease_of(owner, ttl)
        start = self._key("leaders") + "/"
        kvs = self._range(start, _prefix_end(start)).get("kvs", [])
        wanted = set(scopes)
        return {
            pool
            for kv in kvs
            if (pool := _text(kv["key"])[len(start) :]) in wanted
            and _text(kv["value"]) == owner
            and int(kv.get("lease", 0)) == lease
        }

    def _lease_of(self, owner: str, ttl: float) -> int:
        """The owner's lease: renewed while it lives, granted anew once it has expired.
        Renewing an unused lease is harmless: it holds no key until the owner leads."""
        with self._lock:
            lease = self._leases.get(owner)
        if lease is not None:
            answer = self._post("/v3/lease/keepalive", {"ID": str(lease)})
            if int(answer.get("result", {}).get("TTL", 0)) > 0:
                return lease
        granted = int(self._post("/v3/lease/grant", {"TTL": max(1, math.ceil(ttl))})["ID"])
        with self._lock:
            self._leases[owner] = granted
        return granted

    def leader(self, scope: str | None = None) -> Leader | None:
        kvs = self._range(self._lease_key(scope)).get("kvs", [])
        if not kvs:
            return None
        owner = _text(kvs[0]["value"])
        lease = kvs[0].get("lease")
        if not lease:
            return Leader(owner, None)
        ttl = int(self._post("/v3/kv/lease/timetolive", {"ID": lease}).get("TTL", -1))
        return Leader(owner, float(ttl)) if ttl >= 0 else None

    def resign(self, owner: str, scope: str | None = None) -> None:
        key = _b64(self._lease_key(scope))
        done = self._post(
            "/v3/kv/txn",
            {
                "compare": [_compare(key, "VALUE", _b64(owner))],
                "success": [{"request_delete_range": {"key": key}}],
            },
        )
        if not done.get("succeeded") or scope is not None:
            return  # a pool's lease is the owner's one lease: other keys still ride on it
        with self._lock:
            lease = self._leases.pop(owner, None)
        if lease is not None:
            with contextlib.suppress(StoreError):  # already expired: nothing to give up
                self._post("/v3/kv/lease/revoke", {"ID": str(lease)})

    def join(self, owner: str, ttl: float) -> None:
        # on the owner's lease, with its pools' leases: a dead instance's presence and its
        # pools expire together, so its pools are spread again as soon as they are free
        lease = self._lease_of(owner, ttl)
        self._post(
            "/v3/kv/put", _put(_b64(self._key("members", owner)), owner, lease)["request_put"]
        )

    def members(self) -> list[str]:
        start = self._key("members") + "/"
        kvs = self._range(start, _prefix_end(start)).get("kvs", [])
        return sorted(_text(kv["value"]) for kv in kvs)

    def leaders(self) -> dict[str, str]:
        start = self._key("leaders") + "/"
        kvs = self._range(start, _prefix_end(start)).get("kvs", [])
        return {_text(kv["key"])[len(start) :]: _text(kv["value"]) for kv in kvs}

    def put_report(self, report: AgentReport) -> None:
        # no lease: mpp dates a report by when it first saw its seq (mpp.model.agent), and a
        # report outliving its agent is what tells mpp the fence lease was not renewed
        key = _b64(self._key("agents", report.pool, report.node))
        self._post("/v3/kv/put", {"key": key, "value": _b64(codec.report_dumps(report))})

    def reports(self, pool: str) -> dict[str, AgentReport]:
        start = self._key("agents", pool) + "/"
        kvs = self._range(start, _prefix_end(start)).get("kvs", [])
        found: dict[str, AgentReport] = {}
        for kv in kvs:
            try:
                report = codec.report_loads(_text(kv["value"]))
            except (ValueError, TypeError, KeyError) as err:
                raise StoreError(
                    f"{self}: an agent report of pool {pool!r} is unreadable: {err}"
                ) from err
            found[report.node] = report
        return found

    def put_reach(self, report: ReachReport) -> None:
        # no lease: the report says when it was made, and a cut-off instance's last word
        # ("cut off") is what the others should go on showing
        key = _b64(self._key("reach", report.instance))
        self._post("/v3/kv/put", {"key": key, "value": _b64(codec.reach_dumps(report))})

    def reach(self) -> dict[str, ReachReport]:
        start = self._key("reach") + "/"
        kvs = self._range(start, _prefix_end(start)).get("kvs", [])
        found: dict[str, ReachReport] = {}
        for kv in kvs:
            try:
                report = codec.reach_loads(_text(kv["value"]))
            except (ValueError, TypeError, KeyError) as err:
                raise StoreError(f"{self}: a checkpoint report is unreadable: {err}") from err
            found[report.instance] = report
        return found

    def put_view(self, view: SiteView) -> None:
        # no lease either: the reader ages a view by its seq, and a stale one does not vote
        key = _b64(self._key("views", view.pool, view.owner))
        self._post("/v3/kv/put", {"key": key, "value": _b64(codec.view_dumps(view))})

    def views(self, pool: str) -> dict[str, SiteView]:
        start = self._key("views", pool) + "/"
        kvs = self._range(start, _prefix_end(start)).get("kvs", [])
        found: dict[str, SiteView] = {}
        for kv in kvs:
            try:
                view = codec.view_loads(_text(kv["value"]))
            except (ValueError, TypeError, KeyError) as err:
                raise StoreError(f"{self}: a view of pool {pool!r} is unreadable: {err}") from err
            found[view.owner] = view
        return found

    def close(self) -> None:
        self._gateway.close()


def wait_ready(store: EtcdStore, timeout: float) -> None:
    """Block until the store answers (tests and the demo start etcd just before)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            store.pools()
            return
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
