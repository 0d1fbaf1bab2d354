"""What a node agent's report means to the decision (pure, no clock: `age` is mpp's own).

An agent sees what no remote probe can: that mysqld is dead for good (restarts used up),
that a server answering pings cannot commit, that it fenced its own server. Its facts count
only while its report is fresh (age <= fence_ttl): an agent that stopped renewing may be cut
off from a server that has changed since, so its last words are shown but not acted on.
The fence lease is the exception: it is about the report's age itself, and a report that
said "fenced" or "gave up" stays true of what it described (the agent never unfences and
never restarts a mysqld it gave up on), so those two release the lease whatever the age.
A mysqld merely "stopped" (the agent's own shutdown, or held down in maintenance) may be
started again when maintenance ends or the agent comes back: that releases the lease only
while the report is fresh.
"""

from __future__ import annotations

import math

from mpp.model import AgentView, Process, WriteProbe

# the pool alert while mpp waits for an agent to fence its node (recognised to clear it)
FENCE_WAIT = "waiting for "


def fresh(view: AgentView | None) -> bool:
    """The report was renewed within its own fence_ttl: its facts describe the server now."""
    return view is not None and view.age <= view.report.fence_ttl


def summary(view: AgentView | None) -> str:
    """NodeState.agent: the report's summary; a stale report says how long it has been."""
    if view is None:
        return ""
    said = view.report.summary
    if fresh(view):
        return said
    silent = f"no report for {view.age:.0f} s (fence lease over)"
    return f"{silent}; last: {said}" if said else silent


def gave_up(view: AgentView | None) -> bool:
    """mysqld died with its restarts used up: the host confirms the node is down for good."""
    return view is not None and fresh(view) and view.report.process is Process.GAVE_UP


def restarting(view: AgentView | None) -> bool:
    return view is not None and fresh(view) and view.report.process is Process.RESTARTING


def stalled(view: AgentView | None) -> float | None:
    """Seconds the write probe has been stalled or failing (fresh reports only)."""
    if view is None or not fresh(view):
        return None
    if view.report.write not in (WriteProbe.STALLED, WriteProbe.FAILED):
        return None
    return view.report.stalled_for or 0.0


def stall_text(view: AgentView, seconds: float) -> str:
    report = view.report
    if report.write is WriteProbe.FAILED:
        error = f": {report.write_error}" if report.write_error else ""
        return f"write probe failing {seconds:.0f} s{error}"
    return f"write probe stalled {seconds:.0f} s"


def confirms_down(view: AgentView | None) -> bool:
    """The agent's word that the server takes no writes: fenced, mysqld given up on, or
    (fresh report) stopped."""
    if view is None:
        return False
    report = view.report
    return bool(report.fenced) or report.process is Process.GAVE_UP or (report.dead and fresh(view))


def fence_wait(view: AgentView | None, margin: float) -> float:
    """Seconds mpp must still wait before promoting past this node without its agent's
    word (0: no wait). The agent fences a writable server at the latest fence_ttl after its
    last renewal, plus its check period and the fence itself (the margin); `age` is counted
    from when mpp first saw the report, never earlier than the renewal, so never early."""
    if view is None or confirms_down(view):
        return 0.0
    return max(0.0, view.lease_left + margin)


def released_by(name: str, view: AgentView, margin: float) -> str:
    """Why promoting past `name` is safe now, for the promotion's history line."""
    report = view.report
    if report.fenced:
        return f"{name}'s agent reports it fenced: {report.fenced}"
    if report.dead:
        return f"{name}'s agent reports mysqld down: {report.summary}"
    return (
        f"{name}'s agent fence lease ran out: no renewal seen for {view.age:.0f} s "
        f"(fence_ttl {report.fence_ttl:g} s + fence_margin {margin:g} s)"
    )


def wait_text(name: str, wait: float) -> str:
    return f"{FENCE_WAIT}{name}'s agent to fence it (lease ends in {math.ceil(wait)} s)"
