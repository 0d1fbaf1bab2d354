"""MPP's checkpoints: what an instance can reach, and where the cut is when it cannot.

A checkpoint is an address an mpp instance probes to learn where it stands in the network:
`internal` ones are on its own LAN (the gateway, a switch, a LAN server), `edge` ones at the
site's border or in the other sites (the WAN routers, the other sites' mpp), `external` ones
beyond (a public resolver, a provider's web site). Which of them answer says where a cut
is: the verdict (`Reach`) is decided by the pure `mpp.logic.reach`, the probes are
`mpp.probe.checkpoint`'s and the loop that runs them `mpp.run.reach`'s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CheckpointKind(enum.StrEnum):
    """How far from the instance a checkpoint is."""

    INTERNAL = "internal"  # its own LAN
    EDGE = "edge"  # the site's border, the WAN, the other sites
    EXTERNAL = "external"  # the world beyond


class Cut(enum.StrEnum):
    """The place of the cut the checkpoints show (NONE: no cut)."""

    NONE = "none"
    LAN = "LAN"  # every internal checkpoint fails: the instance cannot see its own LAN
    WAN = "WAN"  # every edge checkpoint fails, the LAN answers: the site is cut off
    GLOBAL = "GLOBAL"  # every external one fails, LAN and WAN answer: a warning


@dataclass(frozen=True)
class CheckpointSpec:
    """One `[[checkpoint]]` entry of the configuration."""

    name: str
    kind: CheckpointKind
    target: str  # "tcp:HOST:PORT", "mysql:HOST:PORT", "http(s)://URL"
    timeout: float = 1.0  # the probe's whole deadline, connect and answer
    fail_after: int = 2  # consecutive failed probes before the checkpoint counts as failed


@dataclass(frozen=True)
class CheckpointState:
    """A checkpoint's last probes, as the instance remembers them."""

    name: str
    kind: CheckpointKind
    target: str
    fail_after: int = 2
    ok: bool | None = None  # the last probe answered (None: not probed yet)
    failures: int = 0  # consecutive failed probes up to now
    error: str = ""  # why the last failed probe failed (kept until the next good one)
    checked_at: float | None = None  # when the last probe finished (wall clock)
    ms: float | None = None  # how long the last good probe took

    @property
    def failed(self) -> bool:
        """Counted as failed: `fail_after` probes in a row did not answer (one lost packet
        must not cost the lease)."""
        return self.ok is not None and self.failures >= self.fail_after


@dataclass(frozen=True)
class Reach:
    """The verdict of an instance's checkpoints."""

    cut: Cut = Cut.NONE
    cut_off: bool = False  # neither takes nor keeps a lease, no writes from this site
    reason: str = ""  # why (empty when nothing is wrong)
    warning: str = ""  # what fails without cutting the instance off


@dataclass(frozen=True)
class ReachReport:
    """What an instance publishes about its checkpoints (store, status's C rows, API)."""

    instance: str  # the [mpp] name
    at: float  # when the verdict was made (wall clock of that instance)
    reach: Reach
    checkpoints: tuple[CheckpointState, ...] = ()
