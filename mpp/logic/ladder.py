"""MPP's status ladder: consecutive bad polls (req) -> a status level.

With the default fail point of 4 the ladder is MPP's own (1 OK INFO, 2 OK WARN, 3 OK CRIT,
4 FAIL); for other fail points the three middle levels spread evenly over 1..fail_point-1,
so an operator who raises the fail point still gets early warnings, not a sudden FAIL.
"""

from __future__ import annotations

import math

from mpp.model import Status


def status_of(req: int, fail_point: int, notice: bool = False) -> Status:
    """The status a node shows; `notice` (a state change this cycle) lifts OK to OK INFO."""
    if req <= 0:
        return Status.OK_INFO if notice else Status.OK
    if req >= fail_point:
        return Status.FAIL
    return Status(min(3, math.ceil(3 * req / fail_point)))


def warn_cap(fail_point: int) -> int:
    """The highest req that still reads no worse than OK WARN.

    An ACTIVE node whose only problem is its own replication keeps serving writes, so its
    count stops here instead of climbing to FAIL (MPP kept it ACTIVE with OK_WARN).
    """
    best = 0
    for req in range(1, fail_point):
        if status_of(req, fail_point) <= Status.OK_WARN:
            best = req
    return best
