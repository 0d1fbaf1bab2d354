"""The etcd store behind etcd's own authentication and behind TLS with client certificates,
each against a real etcd configured so (mpp/sandbox/etcd.py), and the config that leads there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mpp.config import load
from mpp.logic.failover import initial_state
from mpp.sandbox.etcd import Certificates, EtcdServer, make_certificates
from mpp.store import StoreError, open_store
from mpp.store.etcd import EtcdAccess, EtcdStore
from tests.builders import config_doc, pool, ring_spec, write_config
from tests.ports import Ports

PASSWORD = "etcd-pass-" + "y" * 12


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory, ports: Ports) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd-auth"), ports.port(), ports.port())
    server.start()
    server.enable_auth("mpp", PASSWORD, "/mpp/")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_etcd(
    tmp_path_factory: pytest.TempPathFactory, certs: Certificates, ports: Ports
) -> Iterator[EtcdServer]:
    server = EtcdServer(tmp_path_factory.mktemp("etcd-tls"), ports.port(), ports.port(), tls=certs)
    server.start()
    yield server
    server.stop()


def _round_trip(store: EtcdStore) -> None:
    spec = ring_spec()
    version = store.save(initial_state(spec), (), None)
    assert version is not None
    snap = store.load("main")
    assert snap is not None and snap.version == version
    assert store.lead("me", 5) and store.leader() is not None
    store.resign("me")


def test_auth_user_works_inside_its_prefix_only(auth_etcd: EtcdServer) -> None:
    access = EtcdAccess(user="mpp", password=SecretStr(PASSWORD))
    store = EtcdStore([auth_etcd.endpoint], "/mpp/auth", access=access)
    try:
        _round_trip(store)
    finally:
        store.close()
    outside = EtcdStore([auth_etcd.endpoint], "/elsewhere", access=access)
    try:
        with pytest.raises(StoreError, match="permission denied"):
            outside.load("main")
    finally:
        outside.close()


def test_wrong_or_missing_credentials_are_clear_and_never_echo_the_password(
    auth_etcd: EtcdServer,
) -> None:
    wrong = EtcdStore(
        [auth_etcd.endpoint], "/mpp/x", access=EtcdAccess("mpp", SecretStr("not-" + PASSWORD))
    )
    try:
        with pytest.raises(StoreError) as info:
            wrong.load("main")
        assert "invalid user ID or password" in str(info.value)
        assert PASSWORD not in str(info.value) and "not-" not in str(info.value)
        assert PASSWORD not in repr(wrong.access)
    finally:
        wrong.close()
    anonymous = EtcdStore([auth_etcd.endpoint], "/mpp/x")
    try:
        with pytest.raises(StoreError, match="user name is empty"):
            anonymous.load("main")
    finally:
        anonymous.close()


def test_an_expired_token_is_renewed_once(auth_etcd: EtcdServer) -> None:
    access = EtcdAccess(user="mpp", password=SecretStr(PASSWORD))
    store = EtcdStore([auth_etcd.endpoint], "/mpp/token", access=access)
    try:
        assert store.load("main") is None
        store._token = "expired.1"  # what etcd answers for a token it dropped: 401
        assert store.load("main") is None
        assert store._token != "expired.1"
    finally:
        store.close()


def test_tls_with_client_certificate(tls_etcd: EtcdServer, certs: Certificates) -> None:
    access = EtcdAccess(ca_file=certs.ca, cert_file=certs.client_cert, key_file=certs.client_key)
    store = EtcdStore([tls_etcd.endpoint], "/mpp", access=access)
    try:
        _round_trip(store)
    finally:
        store.close()
    unverified = EtcdStore([tls_etcd.endpoint], "/mpp", timeout=2)  # system CAs only
    try:
        with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED"):
            unverified.load("main")
    finally:
        unverified.close()


def test_config_to_a_tls_and_auth_store(
    tmp_path: Path, tls_etcd: EtcdServer, certs: Certificates
) -> None:
    (tmp_path / "etcd.password").write_text("unused\n")
    etcd = {
        "ca_file": str(certs.ca),
        "cert_file": str(certs.client_cert),
        "key_file": str(certs.client_key),
        "timeout": "1s",
    }
    doc = config_doc(
        pool(count=1), mpp={"state": f"etcd://127.0.0.1:{tls_etcd.client_port}/mpp/cfg"}, etcd=etcd
    )
    config = load(write_config(tmp_path / "mpp.toml", doc))
    location = config.etcd_location
    assert location is not None and location.endpoints[0].startswith("https://")
    store = open_store(config)
    try:
        assert isinstance(store, EtcdStore)
        _round_trip(store)
    finally:
        store.close()
