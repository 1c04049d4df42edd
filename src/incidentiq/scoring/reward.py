"""The dense reward: named parts, summed in one place.

Magnitudes follow the original IncidentIQ server environment (investigate +0.15..+0.23, correct team
+0.10, fix +0.20..+0.52, premature fix -0.25, early resolve -0.40, resolve
+0.30, repeats and unknown commands -0.20, SLA decay past 60% of the window).
"""

from __future__ import annotations

from incidentiq.sim.dynamics import Outcome, StepRecord

REWARD_KEYS = ("investigate", "assign", "escalate", "mitigate", "resolve", "penalty", "sla")
"""Every step's ``info["reward_components"]`` has exactly these keys."""

_PART = {
    Outcome.INVALID: ("penalty", -0.20),
    Outcome.REPEATED: ("penalty", -0.20),
    Outcome.INVESTIGATE_UNRELATED: ("investigate", -0.05),
    Outcome.INVESTIGATE_UNKNOWN: ("investigate", -0.05),
    Outcome.ASSIGN_OWNER: ("assign", 0.10),
    Outcome.ASSIGN_OWNER_BUSY: ("assign", 0.05),
    Outcome.ASSIGN_WRONG: ("assign", -0.05),
    Outcome.ASSIGN_UNKNOWN: ("assign", -0.05),
    Outcome.ESCALATE_NEEDED: ("escalate", 0.05),
    Outcome.ESCALATE_UNNEEDED: ("escalate", -0.05),
    Outcome.MITIGATE_PREMATURE: ("mitigate", -0.25),
    Outcome.FIX_WRONG: ("mitigate", -0.10),
    Outcome.FIX_ELSEWHERE: ("mitigate", -0.10),
    Outcome.FIX_UNKNOWN: ("mitigate", -0.10),
    Outcome.FIX_REDUNDANT: ("mitigate", -0.10),
    Outcome.RESOLVE_OK: ("resolve", 0.30),
    Outcome.RESOLVE_EARLY: ("resolve", -0.40),
}
_INVESTIGATE_USEFUL = frozenset({Outcome.INVESTIGATE_ROOT, Outcome.INVESTIGATE_PATH, Outcome.INVESTIGATE_SITE})
_NO_REWARD = dict.fromkeys(REWARD_KEYS, 0.0)
SLA_DECAY_FROM = 0.6
SLA_DECAY_MAX = -0.10
"""Past 60% of the SLA window each step costs up to 0.10, growing linearly to the deadline."""


CONCLUSION_BONUS = 0.10
"""Resolving the hard task with the true root-cause hypothesis as the standing conclusion."""


def reward_components(record: StepRecord, sla_minutes: int, concluded_correctly: bool = False) -> dict[str, float]:
    """The named parts of one step's reward. Their sum is the reward.

    ``concluded_correctly`` says whether the trajectory's reasoning so far
    concludes the true hypothesis (hard task); it counts only on the step that
    resolves the incident, which ends the episode, so it reveals nothing.
    """
    parts = _NO_REWARD.copy()
    outcome = record.outcome
    fixed = _PART.get(outcome)
    if fixed is not None:
        parts[fixed[0]] = fixed[1]
    elif (record.repeat or record.known) and outcome in _INVESTIGATE_USEFUL:
        pass  # evidence is rewarded once, and none is worth anything once the root's cause is known
    elif outcome is Outcome.INVESTIGATE_ROOT:
        parts["investigate"] = 0.23 if record.revealed else 0.15
    elif outcome is Outcome.INVESTIGATE_PATH:
        parts["investigate"] = max(0.15, 0.22 - 0.03 * record.hops)
    elif outcome is Outcome.INVESTIGATE_SITE:
        parts["investigate"] = 0.05
    elif outcome is Outcome.FIX_FULL:
        # A fix made before the root's evidence was seen is a lucky guess: it earns what a partial fix does.
        parts["mitigate"] = max(0.20, 0.52 - 0.25 * record.repeat) if record.known else 0.20
    elif outcome is Outcome.FIX_PARTIAL:
        # Relief is worth +0.20 once the cause is known; relief then the fix must not beat the fix alone.
        parts["mitigate"] = 0.20 if record.repeat == 0 and record.known else 0.05
    if concluded_correctly and outcome is Outcome.RESOLVE_OK:
        parts["resolve"] += CONCLUSION_BONUS
    used = record.minute / sla_minutes
    if used > SLA_DECAY_FROM:
        parts["sla"] = SLA_DECAY_MAX * min(1.0, (used - SLA_DECAY_FROM) / (1.0 - SLA_DECAY_FROM))
    return parts
