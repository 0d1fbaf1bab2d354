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
