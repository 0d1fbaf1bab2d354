"""Sites and promotion rules from the config to what the probe reads and the status shows
(docs/sites.md): keys, their errors, the spec the logic sees, the flavor's parsing."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mpp.config import ConfigError
from mpp.model import CrossSite, Promotion
from mpp.probe.flavor import detect
from mpp.publish.view import document, table
from tests.builders import config, config_doc, nodes, pool


def _sited(cross_site: str = "manual", **first: str) -> dict[str, object]:
    entries = nodes(3)
    for entry, site in zip(entries, ["dc1", "dc1", "dc2"], strict=True):
        entry["site"] = site
    entries[2]["promotion"] = "never"
    entries[0].update(first)
    return pool(
        topology="primary-replica",
        repl_password_env="UNUSED",
        cross_site=cross_site,
        node=entries,
    )


def test_sites_promotion_and_cross_site_reach_the_spec() -> None:
    cfg = config(config_doc(_sited(), mpp={"site": "dc1"}))
    assert cfg.mpp.site == "dc1"
    spec = cfg.pool[0].spec()
    assert [(n.site, n.promotion) for n in spec.nodes] == [
        ("dc1", Promotion.NORMAL),
        ("dc1", Promotion.NORMAL),
        ("dc2", Promotion.NEVER),
    ]
    assert spec.replication.cross_site is CrossSite.MANUAL
    plain = config(config_doc()).pool[0].spec()
    assert plain.replication.cross_site is CrossSite.AUTO
    assert {n.site for n in plain.nodes} == {""}


def test_wrong_site_keys_name_the_file_the_key_and_the_fix() -> None:
    entries = nodes(3)
    entries[1]["site"] = "dc1"
    bad = pool(topology="primary-replica", repl_password_env="U", cross_site="manual", node=entries)
    with pytest.raises(ConfigError) as err:
        config(config_doc(bad))
    text = str(err.value)
    assert text.startswith("/tmp/mpp-test.toml: pool[0] (main).cross_site:")
    assert 'needs site = "NAME"; missing on: db1, db3' in text
    with pytest.raises(ConfigError, match=r"promotion: got 'always'; allowed: 'prefer'"):
        config(config_doc(_sited(promotion="always")))
    with pytest.raises(ConfigError, match=r"cross_site: got 'sometimes'"):
        config(config_doc(_sited(cross_site="sometimes")))
    with pytest.raises(ConfigError, match=r"node\[0\] \(db1\)\.site: String should match"):
        config(config_doc(_sited(site="dc 1")))


def test_status_shows_each_nodes_site_and_promotion() -> None:
    cfg = config(config_doc(_sited()))
    doc = document(cfg, {"main": None}, now=0.0)
    node = doc["pools"][0]["nodes"][2]
    assert (node["site"], node["promotion"]) == ("dc2", "never")
    out = io.StringIO()
    Console(file=out, width=200).print(table(doc))
    assert "db3 (127.0.0.1:3) @dc2" in out.getvalue()
    plain = io.StringIO()
    Console(file=plain, width=200).print(table(document(config(config_doc()), {"main": None})))
    assert "db1 (127.0.0.1:1)" in plain.getvalue() and "@" not in plain.getvalue()


def test_the_probe_reads_sql_delay_and_the_primarys_semi_sync_settings() -> None:
    maria, mysql = detect("10.11.19-MariaDB"), detect("8.0.36")
    assert "rpl_semi_sync_master_timeout" in maria.health_sql
    assert "rpl_semi_sync_master_wait_point" in maria.health_sql
    row = (0, "0-1-1", "0-1-1", 1, 0, 1000, "AFTER_COMMIT")
    assert maria.semi_sync_settings(row) == {
        "semi_sync_timeout_ms": 1000,
        "semi_sync_wait_point": "AFTER_COMMIT",
    }
    # MySQL reads them as NULL (plugin variables): nothing to compare, nothing asked
    assert mysql.semi_sync_settings((0, "", "", None, None, None, None)) == {
        "semi_sync_timeout_ms": None,
        "semi_sync_wait_point": "",
    }
    base = {"Master_Host": "h", "Master_Port": 1, "Slave_IO_Running": "Yes"}
    delayed = maria.replication({**base, "SQL_Delay": 3600, "Seconds_Behind_Master": 3601})
    assert delayed is not None and delayed.sql_delay == 3600 and delayed.delayed
    plain = maria.replication({**base, "SQL_Delay": 0})
    assert plain is not None and not plain.delayed
    mysql_row = {"Source_Host": "h", "Source_Port": 1, "SQL_Delay": 60}
    rep = mysql.replication(mysql_row)
    assert rep is not None and rep.sql_delay == 60
