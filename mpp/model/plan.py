"""What a decision asks for: actions for the executor, and what they came to (outcomes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mpp.model.event import Event
from mpp.model.kinds import ActionKind, ChangeKind
from mpp.model.pool import PoolState


@dataclass(frozen=True)
class Action:
    """A change the executor must make on a server, in the order the logic lists them.

    Master-master pools (MPP's ring) only keep state, so their logic emits none. A failed
    action stops the rest of the plan unless it is `best_effort` (fencing a primary that may
    be dead must not stop the promotion of its successor).
    """

    kind: ClassVar[ActionKind]
    node: str
    best_effort: bool = False

    @property
    def action_kind(self) -> ActionKind:
        """The kind this action records in history (Repoint: REJOIN for an old primary)."""
        return self.kind

    def describe(self) -> str:
        return f"{self.action_kind.value} {self.node}{self.towards}"

    @property
    def towards(self) -> str:
        return ""


@dataclass(frozen=True)
class Fence(Action):
    """read_only on, semi-sync primary off, client connections killed: no more writes."""

    kind: ClassVar[ActionKind] = ActionKind.FENCE


@dataclass(frozen=True)
class Unfence(Action):
    """Undo a switchover's fence: the old primary takes writes again (rollback)."""

    kind: ClassVar[ActionKind] = ActionKind.UNFENCE


@dataclass(frozen=True)
class Promote(Action):
    """Apply the relay log (bounded wait), stop replicating, forget the source, writable."""

    kind: ClassVar[ActionKind] = ActionKind.PROMOTE

    timeout: float = 10.0
    semi_sync: bool = False


@dataclass(frozen=True)
class Detach(Action):
    """Stop receiving from a primary that is gone. All replicas at once, before promoting:
    on a semi-sync replica of a hung primary this alone takes about a second."""

    kind: ClassVar[ActionKind] = ActionKind.DETACH

    timeout: float = 10.0


@dataclass(frozen=True)
class CatchUp(Action):
    """Wait until `node` has applied everything `source` has written (switchover)."""

    kind: ClassVar[ActionKind] = ActionKind.CATCH_UP

    source: str = ""
    timeout: float = 10.0


@dataclass(frozen=True)
class Repoint(Action):
    """Make `node` a read-only GTID replica of `source` (auto-positioned)."""

    kind: ClassVar[ActionKind] = ActionKind.REPOINT
    source: str = ""
    rejoin: bool = False  # an old primary: start from its own binlog position
    semi_sync: bool = False
    # a master-master ring's member: only its source changes; read_only is left as it is
    # (every member of MPP's ring stays writable, the ACTIVE one takes the writes)
    keep_writable: bool = False

    @property
    def action_kind(self) -> ActionKind:
        return ActionKind.REJOIN if self.rejoin else self.kind

    @property
    def towards(self) -> str:
        return f" to {self.source}"


@dataclass(frozen=True)
class SetReadOnly(Action):
    """Enforce read_only on a replica that was found writable."""

    kind: ClassVar[ActionKind] = ActionKind.SET_READ_ONLY


@dataclass(frozen=True)
class SemiSync(Action):
    """Give a running primary mpp's semi-sync settings (timeout, AFTER_SYNC): one mpp
    found with settings of its own, not one it promoted."""

    kind: ClassVar[ActionKind] = ActionKind.SEMI_SYNC


@dataclass(frozen=True)
class RelaxSemiSync(Action):
    """Let a strict semi-sync primary commit without a replica's acknowledgement (semi-sync
    primary off): what semi_sync_fallback allows once every semi-sync replica has been
    down that long. Commits waiting for an acknowledgement return at once. Strict is
    restored by the Promote that converging plans once a replica is back."""

    kind: ClassVar[ActionKind] = ActionKind.RELAX_SEMI_SYNC


@dataclass(frozen=True)
class Outcome:
    """What happened when the executor carried out one action."""

    action: Action
    ok: bool
    detail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Change:
    """The node taking the writes changed (or is changing): what hooks and counters see."""

    kind: ChangeKind
    old: str  # "" when the pool had no ACTIVE node
    new: str


@dataclass(frozen=True)
class Decision:
    state: PoolState
    actions: tuple[Action, ...] = ()
    events: tuple[Event, ...] = field(default=())
    change: Change | None = None
