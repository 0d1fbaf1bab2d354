"""Prometheus metrics, kept current by a Hub listener and served by the API's /metrics.

Each app gets its own CollectorRegistry: two apps in one process (the tests, the bench)
must not share or collide on series, and the process-wide default registry would also
export Python's own collectors under our endpoint.

Metric names and encodings are documented in docs/integrations.md (the router's
`mpp_router_*` in docs/router.md); that list is the contract for dashboards and alerts, so
change both together.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric

from mpp import __version__
from mpp.config import Config
from mpp.logic.ladder import status_of
from mpp.model import AgentReport, Cut, Event, PoolState, ReachReport, State
from mpp.publish.changes import ChangeTracker, is_failover

if TYPE_CHECKING:
    from mpp.publish.router import PortStats

CONTENT_TYPE = CONTENT_TYPE_LATEST
_NODE = ("pool", "node")


class Metrics:
    def __init__(
        self,
        config: Config,
        states: dict[str, PoolState | None] | None = None,
        cycle_seconds: Callable[[], Mapping[str, float]] | None = None,
        reports: Mapping[str, Mapping[str, AgentReport]] | None = None,
    ) -> None:
        """`reports`: the agents' reports by pool, read at each scrape (the Hub's, which the
        loop keeps current); without them no mpp_agent_* series."""
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created: noise
        self.registry = CollectorRegistry()
        r = self.registry
        self.fail_points = {p.name: p.fail_point for p in config.pool}
        # what _set_nodes last set per (pool, node): state, status level, req, maintenance
        self._last_set: dict[tuple[str, str], tuple[State, int, int, bool]] = {}
        self.info = Gauge("mpp_build_info", "mpp version (always 1)", ["version"], registry=r)
        self.info.labels(__version__).set(1)
        self.node_state = Gauge(
            "mpp_node_state",
            "1 for the node's current state, 0 for the other states",
            [*_NODE, "state"],
            registry=r,
        )
        self.status_level = Gauge(
            "mpp_node_status_level",
            "MPP status: 0 OK, 1 OK INFO, 2 OK WARN, 3 OK CRIT, 4 FAIL",
            _NODE,
            registry=r,
        )
        self.req = Gauge("mpp_node_req", "consecutive bad polls (MPP's req)", _NODE, registry=r)
        self.latency = Gauge(
            "mpp_node_probe_latency_seconds", "round trip of the last probe", _NODE, registry=r
        )
        self.lag = Gauge(
            "mpp_node_replication_lag_seconds",
            "Seconds_Behind_Master at the last poll (absent when unknown)",
            _NODE,
            registry=r,
        )
        self.has_active = Gauge(
            "mpp_pool_has_active", "1 when the pool has an ACTIVE node", ["pool"], registry=r
        )
        self.failovers = Counter(
            "mpp_failovers",
            "a node took over ACTIVE state from a failing or failed one",
            ["pool"],
            registry=r,
        )
        self.events = Counter(
            "mpp_events", "state and status changes, by kind", ["pool", "kind"], registry=r
        )
        self.last_failover = Gauge(
            "mpp_last_failover_duration_seconds",
            "from the old ACTIVE node's first bad poll to the new ACTIVE node (absent until a "
            "failover caused by bad polls)",
            ["pool"],
            registry=r,
        )
        self.cycle = Gauge(
            "mpp_poll_cycle_seconds", "wall time of the last poll cycle", ["pool"], registry=r
        )
        self.maintenance = Gauge(
            "mpp_node_maintenance",
            "1 while the node is in maintenance (mpp maintenance NODE on), else 0",
            _NODE,
            registry=r,
        )
        # read at each scrape: a cycle's duration is only known after it has published
        self.cycle_seconds = cycle_seconds
        self.reports = reports
        if reports is not None:
            self.registry.register(_AgentCollector(reports))
        self.tracker = ChangeTracker(self.fail_points, (states or {}).values())
        # node -> time of its first bad poll in the current run of bad polls
        self.bad_since: dict[str, dict[str, float]] = {}
        for pool in config.pool:
            self.failovers.labels(pool.name)
            self.has_active.labels(pool.name).set(0)
            state = (states or {}).get(pool.name)
            if state is not None:
                self._set_nodes(state)

    def listener(self, state: PoolState, events: tuple[Event, ...]) -> None:
        """Hub listener: runs in the poll loop, so only in-memory updates."""
        changes = self.tracker.feed(state, events)
        bad = self.bad_since.setdefault(state.name, {})
        for node in state.nodes:
            if node.req <= 0:
                bad.pop(node.name, None)
            elif node.name not in bad:
                bad[node.name] = node.last_request or state.updated_at or 0.0
        left_active = [e.node for e in changes if e.old == State.ACTIVE.value]
        for e in changes:
            self.events.labels(state.name, e.kind).inc()
            if is_failover(e):
                self.failovers.labels(state.name).inc()
                started = [bad[n] for n in left_active if n in bad]
                if started:
                    self.last_failover.labels(state.name).set(max(0.0, e.at - min(started)))
        self._set_nodes(state)

    def add_router(self, stats: Callable[[], Sequence[PortStats]]) -> None:
        """The router's per-port counters, read at scrape time: the forwarding path only
        adds to plain integers, never to a Prometheus object."""
        self.registry.register(_RouterCollector(stats))

    def add_reach(self, report: Callable[[], ReachReport | None]) -> None:
        """This instance's checkpoints (mpp.run.reach), read at scrape time."""
        self.registry.register(_ReachCollector(report))

    def failover_finished(self, pool: str, seconds: float) -> None:
        """For the topology executor: a promotion's real end is later than the state change
        (catch-up, repointing), so it reports the duration itself and this value wins."""
        self.last_failover.labels(pool).set(seconds)

    def cycle_finished(self, pool: str, seconds: float) -> None:
        self.cycle.labels(pool).set(seconds)

    def render(self) -> bytes:
        if self.cycle_seconds is not None:
            for pool, seconds in self.cycle_seconds().items():
                if seconds > 0:
                    self.cycle_finished(pool, seconds)
        return generate_latest(self.registry)

    def _set_nodes(self, state: PoolState) -> None:
        fail_point = self.fail_points.get(state.name, 4)
        self.has_active.labels(state.name).set(1 if state.active else 0)
        now = time.time()
        for n in state.nodes:
            key = (state.name, n.name)
            status = int(status_of(n.req, fail_point, n.notice))
            seen = (n.state, status, n.req, n.in_maintenance(now))
            # a label lookup is microseconds and a node has a dozen series: at a thousand
            # nodes setting the ones that did not change was ~4 % of mpp's CPU (py-spy)
            if self._last_set.get(key) != seen:
                self._last_set[key] = seen
                for s in State:
                    self.node_state.labels(*key, s.value).set(1 if n.state is s else 0)
                self.status_level.labels(*key).set(status)
                self.req.labels(*key).set(n.req)
                self.maintenance.labels(*key).set(1 if seen[3] else 0)
            _set_or_drop(self.latency, key, None if n.latency_ms is None else n.latency_ms / 1000)
            _set_or_drop(self.lag, key, None if n.lag is None else float(n.lag))


def _set_or_drop(gauge: Gauge, key: tuple[str, str], value: float | None) -> None:
    """An unknown value is an absent series, not a zero that would look like 'no lag'."""
    if value is not None:
        gauge.labels(*key).set(value)
        return
    with contextlib.suppress(KeyError):
        gauge.remove(*key)


class _AgentCollector:
    """`mpp_agent_report_age_seconds`: now minus the report's `sent_at`, the agent host's
    clock against this one's; for dashboards and alerts on a silent agent, never for
    deciding (the logic dates reports by when mpp first saw them)."""

    def __init__(self, reports: Mapping[str, Mapping[str, AgentReport]]) -> None:
        self.reports = reports

    def describe(self) -> Iterator[Metric]:
        return iter([self._family()])

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        now = time.time()
        for pool, by_node in sorted(self.reports.items()):
            for node, report in sorted(by_node.items()):
                if report.sent_at:
                    family.add_metric([pool, node], max(0.0, now - report.sent_at))
        return iter([family])

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "mpp_agent_report_age_seconds",
            "seconds since the node agent's latest report, by the agent host's clock",
            labels=list(_NODE),
        )


class _ReachCollector:
    """`mpp_checkpoint_up{checkpoint,kind}` (1 answering, 0 failing, absent before its first
    probe), `mpp_checkpoint_failures` (consecutive), `mpp_cut{place}` (1 for the place of
    the cut the checkpoints show: none, LAN, WAN, GLOBAL) and `mpp_cut_off` (1 while this
    instance neither leads nor sends writes). No series without [[checkpoint]]."""

    def __init__(self, report: Callable[[], ReachReport | None]) -> None:
        self.report = report

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        up, failures, cut, cut_off = families = self._families()
        report = self.report()
        if report is None:
            return iter([])
        for c in report.checkpoints:
            if c.ok is not None:
                up.add_metric([c.name, c.kind.value], 1.0 if c.ok else 0.0)
            failures.add_metric([c.name, c.kind.value], float(c.failures))
        for place in Cut:
            cut.add_metric([place.value], 1.0 if report.reach.cut is place else 0.0)
        cut_off.add_metric([], 1.0 if report.reach.cut_off else 0.0)
        return iter(families)

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        labels = ["checkpoint", "kind"]
        return [
            GaugeMetricFamily(
                "mpp_checkpoint_up", "1 when the checkpoint answered its last probe", labels=labels
            ),
            GaugeMetricFamily(
                "mpp_checkpoint_failures", "consecutive failed probes", labels=labels
            ),
            GaugeMetricFamily(
                "mpp_cut", "1 for the place of the cut the checkpoints show", labels=["place"]
            ),
            GaugeMetricFamily(
                "mpp_cut_off", "1 while this instance is cut off (no lease, no writes)"
            ),
        ]


class _RouterCollector:
    """`mpp_router_*` series from the router's PortStats (docs/router.md lists them)."""

    def __init__(self, stats: Callable[[], Sequence[PortStats]]) -> None:
        self.stats = stats

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        families = self._families()
        active, total, data, refused, waited, cut, backends = families
        assert isinstance(active, GaugeMetricFamily) and isinstance(backends, GaugeMetricFamily)
        assert isinstance(total, CounterMetricFamily) and isinstance(data, CounterMetricFamily)
        assert isinstance(refused, CounterMetricFamily) and isinstance(waited, CounterMetricFamily)
        assert isinstance(cut, CounterMetricFamily)
        for s in self.stats():
            key = [s.pool, s.port]
            active.add_metric(key, s.active)
            total.add_metric(key, s.total)
            data.add_metric([*key, "from_clients"], s.bytes_from_clients)
            data.add_metric([*key, "to_clients"], s.bytes_to_clients)
            for reason in sorted({"max_connections", "no_node", *s.refused}):
                refused.add_metric([*key, reason], s.refused.get(reason, 0))
            waited.add_metric(key, s.waited)
            cut.add_metric(key, s.closed_on_role_change)
            for node, count in sorted(s.backends.items()):
                backends.add_metric([*key, node], count)
        return iter(families)

    @staticmethod
    def _families() -> list[Metric]:
        port = ["pool", "port"]
        return [
            GaugeMetricFamily(
                "mpp_router_active_connections", "client connections open now", labels=port
            ),
            CounterMetricFamily(
                "mpp_router_connections",
                "client connections accepted (refused ones included)",
                labels=port,
            ),
            CounterMetricFamily(
                "mpp_router_bytes",
                "bytes forwarded, by direction (from_clients, to_clients)",
                labels=[*port, "direction"],
            ),
            CounterMetricFamily(
                "mpp_router_refused",
                "connections answered with an ERR packet, by reason",
                labels=[*port, "reason"],
            ),
            CounterMetricFamily(
                "mpp_router_waited",
                "rw connections that waited for a primary (switchover, failover)",
                labels=port,
            ),
            CounterMetricFamily(
                "mpp_router_role_change_closed",
                "connections closed because their node lost its role",
                labels=port,
            ),
            GaugeMetricFamily(
                "mpp_router_backend_connections",
                "connections open now, by the node they go to",
                labels=[*port, "node"],
            ),
        ]
