"""Flavor detection and row normalisation.

MySQL 8 cannot run on this machine (only MariaDB is packaged for Debian 12 here), so the
MySQL rows below are recorded shapes of SHOW REPLICA STATUS, not a live server.
"""

from mpp.probe.flavor import detect


def test_detects_mariadb_and_mysql() -> None:
    maria = detect("10.11.19-MariaDB-0+deb12u1")
    assert maria.is_mariadb and maria.version == (10, 11, 19)
    assert maria.replica_status_sql == "SHOW SLAVE STATUS"
    assert "gtid_current_pos" in maria.health_sql
    mysql = detect("8.0.36")
    assert not mysql.is_mariadb
    assert mysql.replica_status_sql == "SHOW REPLICA STATUS"
    assert "gtid_executed" in mysql.health_sql
    assert detect("5.7.44-log").replica_status_sql == "SHOW SLAVE STATUS"
    # MariaDB 10's greeting as PyMySQL passes it on (libmariadb strips the prefix)
    assert detect("5.5.5-10.11.19-MariaDB-0+deb12u1-log").version == (10, 11, 19)


def test_normalises_mariadb_row() -> None:
    row = {
        "Master_Host": "127.0.0.1",
        "Master_Port": 33061,
        "Slave_IO_Running": "Connecting",
        "Slave_SQL_Running": "Yes",
        "Last_IO_Errno": 2003,
        "Last_IO_Error": "refused",
        "Seconds_Behind_Master": None,
        "Master_Log_File": "b.000002",
        "Relay_Master_Log_File": "b.000002",
        "Read_Master_Log_Pos": 900,
        "Exec_Master_Log_Pos": 700,
        "Using_Gtid": "Slave_Pos",
        "Gtid_IO_Pos": "0-1-5",
        "Last_SQL_Errno": 0,
        "Last_SQL_Error": "",
    }
    rep = detect("10.11.19-MariaDB").replication(row)
    assert rep is not None
    assert rep.source_address == "127.0.0.1:33061"
    assert rep.io_running == "Connecting" and rep.sql_running
    assert rep.seconds_behind is None and rep.relay_pending_bytes == 200
    assert rep.using_gtid == "Slave_Pos" and rep.gtid_io_pos == "0-1-5"


def test_normalises_mysql8_row() -> None:
    row = {
        "Source_Host": "10.0.0.5",
        "Source_Port": 3306,
        "Replica_IO_Running": "Yes",
        "Replica_SQL_Running": "No",
        "Last_SQL_Errno": 1062,
        "Last_SQL_Error": "dup",
        "Seconds_Behind_Source": 3,
        "Source_Log_File": "b.1",
        "Relay_Source_Log_File": "b.0",
        "Read_Source_Log_Pos": 5,
        "Exec_Source_Log_Pos": 9,
        "Auto_Position": 1,
        "Retrieved_Gtid_Set": "uuid:1-9",
    }
    rep = detect("8.0.36").replication(row)
    assert rep is not None
    assert rep.source_address == "10.0.0.5:3306"
    assert not rep.sql_running and rep.last_sql_errno == 1062
    assert rep.seconds_behind == 3
    assert rep.relay_pending_bytes is None, "different files: positions are not comparable"


def test_no_row_means_not_a_replica() -> None:
    assert detect("10.11.19-MariaDB").replication(None) is None


def test_topology_sql_per_flavor() -> None:
    """The statements the executor sends. MySQL cannot run here, so these are checked as
    text against the documented syntax of each server rather than against a live MySQL."""
    maria, mysql = detect("10.11.19-MariaDB"), detect("8.0.36")
    assert maria.fence_sql() == ["SET GLOBAL read_only = ON"]
    assert mysql.fence_sql() == ["SET GLOBAL super_read_only = ON"]
    assert maria.promote_sql() == ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"]
    assert mysql.promote_sql()[:2] == ["STOP REPLICA", "RESET REPLICA ALL"]
    assert "super_read_only = OFF" in mysql.promote_sql()[2]
    prepare, change, start = maria.repoint_sql()
    assert prepare == ["STOP SLAVE", "SET GLOBAL gtid_slave_pos = @@global.gtid_current_pos"]
    assert "MASTER_USE_GTID=slave_pos" in change and start == "START SLAVE"
    prepare, change, start = mysql.repoint_sql()
    assert prepare == ["STOP REPLICA"] and start == "START REPLICA"
    assert change.startswith("CHANGE REPLICATION SOURCE TO") and "SOURCE_AUTO_POSITION=1" in change
    assert "MASTER_AUTO_POSITION=1" in detect("8.0.20").repoint_sql()[1]
    assert maria.heartbeat_clause(1.0) == (", MASTER_HEARTBEAT_PERIOD=%s", (1.0,))
    assert mysql.heartbeat_clause(0.2) == (", SOURCE_HEARTBEAT_PERIOD=%s", (0.2,))
    assert maria.wait_sql()[0].startswith("SELECT MASTER_GTID_WAIT")
    assert mysql.wait_sql()[0].startswith("SELECT WAIT_FOR_EXECUTED_GTID_SET")
    assert "rpl_semi_sync_master_enabled = ON" in maria.semi_sync_sql(True, 30000)[-1]
    assert "rpl_semi_sync_source_enabled = ON" in mysql.semi_sync_sql(True, 30000)[-1]
    assert maria.semi_sync_sql(False, 0)[0] == "SET GLOBAL rpl_semi_sync_master_enabled = OFF"
    assert mysql.stop_io_sql == "STOP REPLICA IO_THREAD"
    assert "'Slave_IO'" in (maria.io_thread_ids_sql or "") and mysql.io_thread_ids_sql is None
    assert "gtid_executed" in mysql.binlog_pos_sql
