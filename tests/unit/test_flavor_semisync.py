"""The flavor's SQL for strict semi-sync and the heartbeat row (MySQL as text only: no MySQL
server runs here; MariaDB's statements run against real servers in
tests/integration/test_semisync.py)."""

from __future__ import annotations

from mpp.probe.flavor import detect

MARIA = detect("10.11.19-MariaDB-0+deb12u1")
MYSQL = detect("8.0.36")


def test_strict_primary_never_falls_back_by_itself() -> None:
    strict = MARIA.semi_sync_sql(True, 30000, strict=True)
    assert "SET GLOBAL rpl_semi_sync_master_wait_no_slave = ON" in strict
    assert f"SET GLOBAL rpl_semi_sync_master_timeout = {18446744073709551615}" in strict
    assert strict[-1] == "SET GLOBAL rpl_semi_sync_master_enabled = ON"  # settings first
    mysql = MYSQL.semi_sync_sql(True, 30000, strict=True)
    assert "SET GLOBAL rpl_semi_sync_source_wait_no_replica = ON" in mysql
    assert "SET GLOBAL rpl_semi_sync_source_timeout = 4294967295" in mysql
    # semi_sync = true: as before, the pool's timeout and no wait-no-replica statement
    plain = MARIA.semi_sync_sql(True, 30000)
    assert "SET GLOBAL rpl_semi_sync_master_timeout = 30000" in plain
    assert not any("wait_no_slave" in s for s in plain)
    assert MARIA.relax_semi_sync_sql() == ["SET GLOBAL rpl_semi_sync_master_enabled = OFF"]
    assert MYSQL.relax_semi_sync_sql() == ["SET GLOBAL rpl_semi_sync_source_enabled = OFF"]


def test_health_reads_the_client_count_only_when_asked() -> None:
    assert "GLOBAL_STATUS" in MARIA.health(clients=True)
    assert "GLOBAL_STATUS" not in MARIA.health(clients=False)
    assert MARIA.health_sql == MARIA.health(clients=False)
    # nine columns either way (the settings, strict, the clients), MySQL's semi-sync ones NULL
    assert MYSQL.health(clients=True).count("NULL") == 6


def test_heartbeat_write_is_guarded() -> None:
    """Reading the row (a missing table reads None) runs against real servers in
    tests/integration/test_semisync.py; here, the write's two guards."""
    assert "read_only = 0" in MARIA.heartbeat_write_sql
    assert "UNIX_TIMESTAMP(NOW(6)) < %s" in MARIA.heartbeat_write_sql
    assert MARIA.heartbeat_missing == {1049, 1146}
