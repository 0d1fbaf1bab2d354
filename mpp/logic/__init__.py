"""Stage 2: pure decisions. Old state + observations (+ now) -> new state, actions, events.

Imports only mpp.model (import-linter checks it). A logic implements
mpp.logic.interface.Logic and is chosen by name through mpp.logic.registry; `failover` (one
ACTIVE node by priority) is built in. health.py, ladder.py and gtid.py are shared by every
logic: verdicts from observations, MPP's status ladder, GTID set arithmetic.
"""

from __future__ import annotations

from mpp.logic.interface import Answer, BaseLogic, Logic
from mpp.logic.registry import get as logic_for
from mpp.logic.registry import names

__all__ = ["Answer", "BaseLogic", "Logic", "logic_for", "names"]
