"""Every kind mpp distinguishes, as an enum: no meaning is carried in free text.

They are StrEnums so that what is stored (SQLite, etcd JSON) and shown (history, --json,
the API) keeps the plain lower-case words it always had; code compares members, never text.
The logic's name is not here: logics are plug-ins found through a registry (mpp.logic).
"""

from __future__ import annotations

import enum


class EventKind(enum.StrEnum):
    """What a history line is about."""

    STATE = "state"  # a node's state, changed by a poll cycle
    OPERATOR = "operator"  # a node's state, changed by an operator's command
    SWITCHOVER = "switchover"  # a node's state, changed when a switchover's plan completed
    STATUS = "status"  # a node's status step on MPP's ladder
    POOL = "pool"  # pool-level: requests, alerts, refusals, rollbacks
    ACTION = "action"  # the executor carried out one action (old: what, new: ok/FAILED)
    LEADER = "leader"  # this mpp instance took the leadership lease

    @property
    def moves_state(self) -> bool:
        """A line that records a node's state change (old and new are states)."""
        return self in (EventKind.STATE, EventKind.OPERATOR, EventKind.SWITCHOVER)


class ChangeKind(enum.StrEnum):
    """A change of the node that takes the writes, as the hooks and counters name it."""

    FAILOVER = "failover"
    SWITCHOVER = "switchover"
    TAKEOVER = "takeover"

    @property
    def hook_family(self) -> str:
        """A takeover is an operator-driven failover: it runs the failover hooks."""
        return "failover" if self is ChangeKind.TAKEOVER else self.value


class RequestKind(enum.StrEnum):
    """An operator request the daemon carries out in its next cycle."""

    SWITCHOVER = "switchover"
    TAKEOVER = "takeover"


class Topology(enum.StrEnum):
    """How the pool's servers replicate, which decides whether mpp rewires them."""

    MASTER_MASTER = "master-master"  # MPP's ring: state only, no topology actions
    PRIMARY_REPLICA = "primary-replica"  # one writable primary; mpp promotes, fences, repoints


class ActionKind(enum.StrEnum):
    """What the executor does to one server."""

    FENCE = "fence"
    UNFENCE = "unfence"
    PROMOTE = "promote"
    DETACH = "detach"
    CATCH_UP = "catchup"
    REPOINT = "repoint"
    REJOIN = "rejoin"
    SET_READ_ONLY = "setreadonly"
    SEMI_SYNC = "semisync"  # the running primary's semi-sync settings made mpp's
    RELAX_SEMI_SYNC = "relax-semi-sync"  # strict semi-sync let go (semi_sync_fallback)


class Promotion(enum.StrEnum):
    """May a node be promoted by mpp's own choice (failover, automatic election)? An
    operator's switchover or takeover to it is always allowed."""

    PREFER = "prefer"  # wins over a normal candidate holding the same data
    NORMAL = "normal"
    NEVER = "never"  # stays a replica unless the operator names it

    @property
    def rank(self) -> int:
        return {Promotion.PREFER: 0, Promotion.NORMAL: 1, Promotion.NEVER: 2}[self]


class CrossSite(enum.StrEnum):
    """May a failover move the writes to another site by itself (docs/sites.md)?"""

    AUTO = "auto"
    MANUAL = "manual"  # losing the primary's whole site waits for `mpp takeover`
