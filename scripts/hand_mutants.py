"""Issue 16's hand-made mutants of mpp/logic, each applied alone to a copy of HEAD, with
the tests given on the command line run against it (default: the logic's unit and
property tests, full hypothesis profile). Prints KILLED or SURVIVED per mutant.

    .venv/bin/python scripts/hand_mutants.py [PYTEST ARGS...]

mutmut (`make mutate`) makes its own mutants; these are the ones a person wrote by hand
to ask whether each documented flag and rule has a test that fails when it is ignored."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

PR = "mpp/logic/failover/primary_replica.py"
CONVERGE = "mpp/logic/failover/converge.py"
CYCLE = "mpp/logic/failover/cycle.py"
Edit = tuple[str, str, str]  # file, text, replacement
AUTO_REJOIN = "self.spec.replication.auto_rejoin\n" + " " * 16 + "and replicating"

MUTANTS: list[tuple[str, list[Edit]]] = [
    (
        "confirm_with_replicas = false ignored",
        [(PR, "if streaming and policy.confirm_with_replicas:", "if streaming:")],
    ),
    ("fast_fail = false ignored", [(PR, "and policy.fast_fail\n", "\n")]),
    (
        "auto_rejoin = false ignored",
        [
            (PR, AUTO_REJOIN, "replicating"),
            (CONVERGE, "if not spec.replication.auto_rejoin or obs is None", "if obs is None"),
        ],
    ),
    (
        "the failover block never expires",
        [(PR, "and self.now < last + self.spec.replication.failover_block\n", "\n")],
    ),
    (
        "two ACTIVE nodes in a damaged store not repaired",
        [
            (CYCLE, "for extra in actives[1:]:", "for extra in actives[1:1]:"),
            (PR, "for extra in actives[1:]:", "for extra in actives[1:1]:"),
        ],
    ),
    (
        "the election with no ACTIVE node skips the missing-transactions check",
        [(PR, "if candidates and self.safe(candidates[0].name, None):", "if candidates:")],
    ),
    (
        "the relay log left out of successor ranking",
        [
            (
                CONVERGE,
                "return gtid.union(gtid.parse(obs.gtid_executed), gtid.parse(io_pos))",
                "return gtid.parse(obs.gtid_executed)",
            )
        ],
    ),
]

LOGIC_TESTS = [
    "tests/unit/test_failover.py",
    "tests/unit/test_failover_properties.py",
    "tests/unit/test_gtid.py",
    "tests/unit/test_ladder.py",
    "tests/unit/test_logic_flags.py",
    "tests/unit/test_logic_mutants.py",
    "tests/unit/test_logic_pure.py",
    "tests/unit/test_logic_traces.py",
    "tests/unit/test_primary_replica_logic.py",
    "tests/unit/test_primary_replica_properties.py",
]


def main(args: list[str]) -> int:
    repo = Path(__file__).resolve().parent.parent
    survived = 0
    with tempfile.TemporaryDirectory(prefix="mpp-hand-mutants-") as tmp:
        root = Path(tmp)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=repo, capture_output=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        for name, edits in MUTANTS:
            originals = {f: (root / f).read_text() for f, _, _ in edits}
            for f, text, replacement in edits:
                source = (root / f).read_text()
                if text not in source:
                    raise SystemExit(f"{name}: {f} no longer has {text!r}")
                (root / f).write_text(source.replace(text, replacement, 1))
            run = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
                + (args or LOGIC_TESTS),
                cwd=root,
                capture_output=True,
                text=True,
            )
            failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
            if run.returncode == 0:
                survived += 1
            verdict = "KILLED  " if run.returncode else "SURVIVED"
            print(f"{verdict} {name}: {failed[0] if failed else run.stdout.splitlines()[-1]}")
            for f, text in originals.items():
                (root / f).write_text(text)
    print(f"{len(MUTANTS) - survived} of {len(MUTANTS)} hand-made mutants killed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
