"""Where an instance stands in the network, from which of its checkpoints answer (pure).

MPP's checkpoints, with the rule spelled out. A *kind* fails when it has checkpoints and
every one of them has failed (`CheckpointState.failed`: `fail_after` probes in a row without
an answer); one failing checkpoint among several is a warning (that host, not the network,
may be down). The innermost failing kind is the place of the cut:

| internal | edge     | external | cut    | cut off | what the instance does               |
| -------- | -------- | -------- | ------ | ------- | ------------------------------------ |
| all fail | any      | any      | LAN    | yes     | no lease, pool status FAIL, rw DOWN  |
| answer   | all fail | any      | WAN    | yes     | no lease, pool status FAIL, rw DOWN  |
| answer   | answer   | all fail | GLOBAL | no      | a warning; goes on as usual          |
| answer   | answer   | answer   | none   | no      | -                                    |

("answer": at least one of that kind answers, or there is none of that kind.)

Why these lines, for the operator:
- An instance that cannot see its own LAN is cut off even if farther checkpoints answer:
  its servers and its clients are on that LAN, so whatever it would decide (a failover of a
  primary it cannot see) or tell (rw UP) is a guess.
- A site whose edge is gone is an island: its instance must neither lead nor let its load
  balancers send writes, because the other sites may promote meanwhile. This is what keeps
  two sites from both taking writes.
- Losing only the world beyond (external) says nothing about the sites: they still see one
  another, so the instance goes on, with a warning (the provider, or the checkpoint itself,
  is down).
- A checkpoint not probed yet is not a failure: no cut is declared on no evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

from mpp.model import CheckpointKind, CheckpointState, Cut, Reach

# innermost first: the first kind that fails whole is the place of the cut
_ORDER = (
    (CheckpointKind.INTERNAL, Cut.LAN),
    (CheckpointKind.EDGE, Cut.WAN),
    (CheckpointKind.EXTERNAL, Cut.GLOBAL),
)
_CUT_OFF = frozenset({Cut.LAN, Cut.WAN})
_MEANING = {
    Cut.LAN: "this instance cannot see its own LAN",
    Cut.WAN: "this site is cut off from the other sites",
    Cut.GLOBAL: "the world beyond the sites is unreachable; the sites still see each other",
}


def probed(
    prev: CheckpointState, ok: bool, error: str, at: float, ms: float | None
) -> CheckpointState:
    """The checkpoint after one more probe: a good answer resets the count at once, a
    failed one adds to it (the error is kept until the next good answer)."""
    if ok:
        return CheckpointState(
            prev.name, prev.kind, prev.target, prev.fail_after, True, 0, "", at, ms
        )
    return CheckpointState(
        prev.name,
        prev.kind,
        prev.target,
        prev.fail_after,
        False,
        prev.failures + 1,
        error or "no answer",
        at,
        None,
    )


def judge(checkpoints: Sequence[CheckpointState]) -> Reach:
    """The verdict (the table above) from the checkpoints' current states."""
    cut = Cut.NONE
    reason = ""
    warnings: list[str] = []
    for kind, place in _ORDER:
        mine = [c for c in checkpoints if c.kind is kind]
        failed = [c for c in mine if c.failed]
        if not failed:
            continue
        if len(failed) == len(mine):
            if cut is Cut.NONE:
                cut = place
                reason = (
                    f"every {kind.value} checkpoint fails ({_names(failed)}): {_MEANING[place]}"
                )
            continue
        warnings.append(
            f"{kind.value} checkpoint(s) failing: {_names(failed)} ({len(failed)} of {len(mine)})"
        )
    cut_off = cut in _CUT_OFF
    if cut is Cut.GLOBAL:
        warnings.insert(0, reason)
        reason = ""
    return Reach(cut, cut_off, reason, "; ".join(warnings))


def _names(found: Sequence[CheckpointState]) -> str:
    return ", ".join(f"{c.name}: {c.error}" if c.error else c.name for c in found)
