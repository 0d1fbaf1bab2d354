"""bench/partition.py: it measures the matrix's own rows (they exist and load), loosened so
that a run always ends, and it reports each target as met or not from the figures."""

from __future__ import annotations

from bench import partition


def test_the_rows_it_measures_are_in_the_matrix() -> None:
    rows = partition.rows_by_name()
    assert partition.SITE_ROW in rows
    assert any(name in rows for name in partition.HUNG_ROWS)
    site = rows[partition.SITE_ROW]
    assert site.agents and site.store == "etcd3" and site.client_source
    sites = rows[partition.SITES_ROW]
    assert sites.agents and len(sites.sites) == 3 and sites.client_source


def test_a_measured_row_is_loosened_not_changed() -> None:
    site = partition.rows_by_name()[partition.SITE_ROW]
    loose = partition.measured("bench-site", site)
    assert loose.steps == site.steps and loose.agents == site.agents
    assert loose.expect.rto is None and loose.expect.max_writable == 3
    assert loose.expect.fenced_first == site.expect.fenced_first


def _site(
    writable: float, fenced: list[bool], lost: list[int], most: list[int]
) -> dict[str, object]:
    return {
        "new_primary_writable_s": {"max": writable},
        "fenced_first_per_run": fenced,
        "lost_per_run": lost,
        "max_writable_per_run": most,
    }


def test_targets_come_from_the_figures() -> None:
    good = {
        "site": _site(7.9, [True] * 5, [0] * 5, [1] * 5),
        "sites": _site(9.9, [True] * 5, [0] * 5, [1] * 5),
        "hung": {"new_primary_writable_s": {"max": 2.4}},
    }
    assert all(partition.targets(good).values()) and len(partition.targets(good)) == 9
    bad = {
        "site": _site(10.5, [True, False], [0, 3], [1, 2]),
        "sites": _site(10.1, [False], [1], [2]),
        "hung": {"new_primary_writable_s": {"max": None}},
    }
    assert not any(partition.targets(bad).values())
