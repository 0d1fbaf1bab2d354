"""How many examples a hypothesis test draws: its own number, or a tenth of it (at least 20)
when `MPP_HYPOTHESIS=mutate` selects the light profile of `make mutate` (tests/conftest.py).

Mutation testing runs the logic's tests once per mutant on a shared 2-core machine; a
mutant the full number would kill but a tenth would not shows up as a survivor there, never
as a failure of `make test`, which keeps the full numbers."""

from __future__ import annotations

import os

MUTATE = os.environ.get("MPP_HYPOTHESIS") == "mutate"


def examples(n: int) -> int:
    return max(20, n // 10) if MUTATE else n
