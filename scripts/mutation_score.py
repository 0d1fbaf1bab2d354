"""The score of the last `make mutate` run, from mutmut's own numbers
(mutants/mutmut-cicd-stats.json, written by `mutmut export-cicd-stats`).

Killed counts mutants a test failed on, or that ran past mutmut's timeout (a mutant that
makes the logic loop); every other mutant counts against the score, those no test reaches
("no tests") included."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(path: str = "mutants/mutmut-cicd-stats.json") -> int:
    stats = json.loads(Path(path).read_text())
    killed = stats["killed"] + stats["timeout"]
    total = stats["total"] - stats["skipped"]
    print(
        f"mutmut: {killed} of {total} mutants of mpp/logic killed "
        f"({100 * killed / total:.1f} %); survived {stats['survived']}, "
        f"no tests {stats['no_tests']}, suspicious {stats['suspicious']}, "
        f"timeout {stats['timeout']}, skipped {stats['skipped']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
