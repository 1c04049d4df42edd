"""The grader: a pure function of an incident's ground truth and a trajectory.

``grade(incident, trajectory)`` folds a ``Tally`` over the trajectory; the env
keeps one ``Tally`` and updates it each step, so ``observation["score"]`` is
the grade of the trajectory so far at no extra cost, and at the end it equals
``info["grade"]``.

Components, each in [0, 1] before weighting:

- diagnosis: the root's evidence was seen before the first fix (0.5), and the
  first fix went to the root (1.0);
- ownership: the owning team was assigned and acknowledged (a busy team, or a
  P0, needs an escalation first); each wrong team costs 0.5;
- remediation: a full fix on the root, less 0.25 per wrong fix before it
  (a partial fix alone earns 0.3);
- resolution: the incident was resolved, less 0.25 per premature resolve;
- efficiency: counted only once resolved; 1 less 0.15 per wasted step
  (invalid, repeated, off-path investigations, wrong teams or fixes, ...);
- reasoning (hard task): the latest reasoning that names a hypothesis names
  exactly the true one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from incidentiq.sim.dynamics import Outcome, StepRecord
from incidentiq.sim.faults import Hypothesis
from incidentiq.sim.generator import Incident
from incidentiq.sim.tasks import TaskId

GRADE_KEYS = ("diagnosis", "ownership", "remediation", "resolution", "efficiency", "reasoning")

WEIGHTS: dict[TaskId, dict[str, float]] = {
    TaskId.SINGLE_SERVICE_OUTAGE: {"diagnosis": 0.25, "ownership": 0.15, "remediation": 0.30,
                                   "resolution": 0.20, "efficiency": 0.10, "reasoning": 0.0},
    TaskId.CASCADING_FAILURE: {"diagnosis": 0.25, "ownership": 0.15, "remediation": 0.30,
                               "resolution": 0.20, "efficiency": 0.10, "reasoning": 0.0},
    TaskId.AMBIGUOUS_PAYMENT_DEGRADATION: {"diagnosis": 0.25, "ownership": 0.10, "remediation": 0.25,
                                           "resolution": 0.20, "efficiency": 0.10, "reasoning": 0.10},
}

WASTED = frozenset(
    {
        Outcome.INVALID, Outcome.REPEATED, Outcome.INVESTIGATE_UNRELATED, Outcome.INVESTIGATE_UNKNOWN,
        Outcome.ASSIGN_WRONG, Outcome.ASSIGN_UNKNOWN, Outcome.ESCALATE_UNNEEDED,
        Outcome.MITIGATE_PREMATURE, Outcome.FIX_WRONG, Outcome.FIX_ELSEWHERE, Outcome.FIX_UNKNOWN,
        Outcome.FIX_REDUNDANT, Outcome.RESOLVE_EARLY,
    }
)
_FIX_ATTEMPTS = frozenset({Outcome.FIX_FULL, Outcome.FIX_PARTIAL, Outcome.FIX_WRONG,
                           Outcome.FIX_ELSEWHERE, Outcome.FIX_UNKNOWN})
_WRONG_FIXES = frozenset({Outcome.FIX_WRONG, Outcome.FIX_ELSEWHERE, Outcome.FIX_UNKNOWN})
_NAMES = {
    Hypothesis.DB_OVERLOAD: re.compile(r"db[_ ]overload|database overload|overloaded database|database saturat"),
    Hypothesis.RATE_LIMIT: re.compile(r"rate[_ -]?limit|\b429\b|throttl"),
    Hypothesis.MEMORY_LEAK: re.compile(r"memory[_ ]leak|\bleak|\boom"),
}


def named_hypotheses(reasoning: str) -> list[Hypothesis]:
    """The hypotheses named by the last non-empty line of ``reasoning``."""
    lines = [line for line in reasoning.lower().splitlines() if line.strip()]
    if not lines:
        return []
    return [h for h, pattern in _NAMES.items() if pattern.search(lines[-1])]


@dataclass(frozen=True)
class Grade:
    """A grade in [0, 1] and its weighted parts, which sum to it."""

    total: float
    components: dict[str, float]


class Tally:
    """What the grader remembers of a trajectory; ``update`` takes one step."""

    def __init__(self, incident: Incident):
        self.incident = incident
        self.weights = WEIGHTS[incident.task]
        self.seen_root = False
        self.first_fix_on_root: bool | None = None
        self.seen_root_before_fix = False
        self.owner_assigned = False
        self.wrong_teams = 0
        self.escalated = False
        self.full_fix = False
        self.partial_fix = False
        self.wrong_fixes = 0
        self.resolved = False
        self.early_resolves = 0
        self.wasted = 0
        self.conclusion: Hypothesis | None = None

    def update(self, record: StepRecord) -> None:
        outcome = record.outcome
        if outcome in WASTED:
            self.wasted += 1
        if outcome is Outcome.INVESTIGATE_ROOT and record.revealed:
            self.seen_root = True
        elif outcome in _FIX_ATTEMPTS:
            if self.first_fix_on_root is None:
                self.first_fix_on_root = outcome in (Outcome.FIX_FULL, Outcome.FIX_PARTIAL, Outcome.FIX_WRONG)
                self.seen_root_before_fix = self.seen_root
            if outcome is Outcome.FIX_FULL and not self.full_fix:
                self.full_fix = True
            elif outcome is Outcome.FIX_PARTIAL:
                self.partial_fix = True
            elif outcome in _WRONG_FIXES and not self.full_fix:
                self.wrong_fixes += 1
        elif outcome in (Outcome.ASSIGN_OWNER, Outcome.ASSIGN_OWNER_BUSY):
            self.owner_assigned = True
        elif outcome is Outcome.ASSIGN_WRONG:
            self.wrong_teams += 1
        elif outcome in (Outcome.ESCALATE_NEEDED, Outcome.ESCALATE_UNNEEDED):
            self.escalated = True
        elif outcome is Outcome.RESOLVE_OK:
            self.resolved = True
        elif outcome is Outcome.RESOLVE_EARLY:
            self.early_resolves += 1
        if record.reasoning and self.incident.hypothesis is not None:
            named = named_hypotheses(record.reasoning)
            if named:
                self.conclusion = named[0] if len(named) == 1 else None

    def grade(self) -> Grade:
        """The grade of the trajectory so far."""
        if self.first_fix_on_root is None:
            diagnosis = 0.5 if self.seen_root else 0.0
        elif self.seen_root_before_fix:
            diagnosis = 1.0 if self.first_fix_on_root else 0.5
        else:
            diagnosis = 0.0
        acknowledged = self.escalated or not self.incident.needs_escalation
        ownership = (1.0 if acknowledged else 0.5) if self.owner_assigned else 0.0
        ownership = max(0.0, ownership - 0.5 * self.wrong_teams)
        if self.full_fix:
            remediation = max(0.0, 1.0 - 0.25 * self.wrong_fixes)
        elif self.partial_fix:
            remediation = max(0.0, 0.3 - 0.25 * self.wrong_fixes)
        else:
            remediation = 0.0
        resolution = max(0.0, 1.0 - 0.25 * self.early_resolves) if self.resolved else 0.0
        efficiency = max(0.0, 1.0 - 0.15 * self.wasted) if self.resolved else 0.0
        reasoning = 1.0 if self.conclusion is not None and self.conclusion is self.incident.hypothesis else 0.0
        raw = {"diagnosis": diagnosis, "ownership": ownership, "remediation": remediation,
               "resolution": resolution, "efficiency": efficiency, "reasoning": reasoning}
        components = {key: raw[key] * self.weights[key] for key in GRADE_KEYS}
        total = min(1.0, max(0.0, sum(components.values())))
        return Grade(total, components)


def grade(incident: Incident, trajectory: list[StepRecord] | tuple[StepRecord, ...]) -> Grade:
    """Grade a whole trajectory of ``incident``: pure and deterministic."""
    tally = Tally(incident)
    for record in trajectory:
        tally.update(record)
    return tally.grade()
