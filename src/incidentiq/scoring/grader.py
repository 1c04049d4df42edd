"""The grader: a pure function of an incident's ground truth and a trajectory.

``grade(incident, trajectory)`` folds a ``Tally`` over the trajectory; the env
keeps one ``Tally`` and updates it each step, so ``observation["score"]`` is
the grade of the trajectory so far at no extra cost, and at the end it equals
``info["grade"]``.

Components, each in [0, 1] before weighting:

- diagnosis: 1.0 when the root's evidence was seen before the first fix and
  that fix went to the root; 0.5 while the evidence is seen and nothing has
  been fixed yet; 0 when the first fix went elsewhere or came before the evidence;
- ownership: the owning team was assigned and acknowledged (a busy team, or a
  P0, needs an escalation first); each wrong team costs 0.5;
- remediation: a full fix on the root, less 0.25 per other fix attempted
  before it (wrong, misplaced or partial); a partial fix alone earns 0.3;
- resolution: the incident was resolved, less 0.25 per premature resolve;
- efficiency: counted only once resolved; 1 less 0.15 per wasted step
  (invalid, repeated, off-path investigations, wrong teams or fixes, ...);
- reasoning (hard task): the latest reasoning that names a hypothesis names
  exactly the true one.

Ownership, remediation, resolution and efficiency count half when the first
fix came before the root's evidence was seen: a fix nobody diagnosed is a
lucky guess, and a fixed script that guesses right a third of the time must
not look competent.
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

_WEIGHT_ROWS = {task: tuple(weights[key] for key in GRADE_KEYS) for task, weights in WEIGHTS.items()}

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
_FIXES_ON_ROOT = frozenset({Outcome.FIX_FULL, Outcome.FIX_PARTIAL, Outcome.FIX_WRONG})
_OWNER_ASSIGNED = frozenset({Outcome.ASSIGN_OWNER, Outcome.ASSIGN_OWNER_BUSY})
_ESCALATED = frozenset({Outcome.ESCALATE_NEEDED, Outcome.ESCALATE_UNNEEDED})
_WASTE_ONLY = frozenset(
    {
        Outcome.INVALID, Outcome.REPEATED, Outcome.INVESTIGATE_PATH, Outcome.INVESTIGATE_SITE,
        Outcome.INVESTIGATE_UNRELATED, Outcome.INVESTIGATE_UNKNOWN, Outcome.ASSIGN_UNKNOWN,
        Outcome.MITIGATE_PREMATURE, Outcome.FIX_REDUNDANT,
    }
)
"""Outcomes that change nothing ``Tally`` keeps but the wasted-step count."""
# Set lookups, not tuples of ``Outcome.X``: on Python 3.11 each enum attribute access costs ~60 ns.
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
        self._weights = _WEIGHT_ROWS[incident.task]
        # Constants of the incident, read every step.
        self._hypothesis = incident.hypothesis
        self._needs_escalation = incident.needs_escalation
        self.seen_root = False
        self.first_fix_on_root: bool | None = None
        self.seen_root_before_fix = False
        self.owner_assigned = False
        self.wrong_teams = 0
        self.escalated = False
        self.full_fix = False
        self.partial_fix = False
        self.missed_fixes = 0  # fix attempts before the full fix
        self.resolved = False
        self.early_resolves = 0
        self.wasted = 0
        self.conclusion: Hypothesis | None = None
        self._total: float | None = None  # the grade so far, until a step changes what it reads

    def update(self, record: StepRecord) -> None:
        """Take one more step of the trajectory into account."""
        outcome = record.outcome
        if outcome in WASTED:
            self.wasted += 1
        if outcome is Outcome.INVESTIGATE_ROOT and record.revealed:
            self.seen_root = True
        elif outcome in _FIX_ATTEMPTS:
            if self.first_fix_on_root is None:
                self.first_fix_on_root = outcome in _FIXES_ON_ROOT
                self.seen_root_before_fix = self.seen_root
            if not self.full_fix:
                if outcome is Outcome.FIX_FULL:
                    self.full_fix = True
                else:
                    self.missed_fixes += 1
                    self.partial_fix = self.partial_fix or outcome is Outcome.FIX_PARTIAL
        elif outcome in _OWNER_ASSIGNED:
            self.owner_assigned = True
        elif outcome is Outcome.ASSIGN_WRONG:
            self.wrong_teams += 1
        elif outcome in _ESCALATED:
            self.escalated = True
        elif outcome is Outcome.RESOLVE_OK:
            self.resolved = True
        elif outcome is Outcome.RESOLVE_EARLY:
            self.early_resolves += 1
        if record.reasoning and self._hypothesis is not None:
            named = named_hypotheses(record.reasoning)
            if named:
                self.conclusion = named[0] if len(named) == 1 else None
        # Most steps of a random or early policy change only the waste count, which the grade reads
        # once the incident is resolved: the grade so far stands, and total() need not recompute it.
        if outcome not in _WASTE_ONLY or self.resolved or record.reasoning:
            self._total = None

    @property
    def concluded_correctly(self) -> bool:
        """The latest reasoning that names one hypothesis names the true one (hard task)."""
        return self.conclusion is not None and self.conclusion is self._hypothesis

    def total(self) -> float:
        """The grade of the trajectory so far, as one number (the env calls this every step)."""
        if self._total is None:
            d, o, m, r, e, q = self._raw()
            wd, wo, wm, wr, we, wq = self._weights
            total = d * wd + o * wo + m * wm + r * wr + e * we + q * wq
            self._total = 1.0 if total > 1.0 else (total if total > 0.0 else 0.0)
        return self._total

    def grade(self) -> Grade:
        """The grade of the trajectory so far, with its weighted parts."""
        parts = {key: r * w for key, r, w in zip(GRADE_KEYS, self._raw(), self._weights)}
        return Grade(min(1.0, max(0.0, sum(parts.values()))), parts)

    def _raw(self) -> tuple[float, ...]:
        """Each component in [0, 1], in ``GRADE_KEYS`` order."""
        if self.first_fix_on_root is None:
            diagnosis = 0.5 if self.seen_root else 0.0
            justified = 1.0
        else:
            diagnosis = 1.0 if self.seen_root_before_fix and self.first_fix_on_root else 0.0
            justified = 1.0 if self.seen_root_before_fix else 0.5
        acknowledged = self.escalated or not self._needs_escalation
        ownership = (1.0 if acknowledged else 0.5) if self.owner_assigned else 0.0
        ownership = justified * max(0.0, ownership - 0.5 * self.wrong_teams)
        if self.full_fix:
            remediation = justified * max(0.0, 1.0 - 0.25 * self.missed_fixes)
        elif self.partial_fix:
            remediation = justified * max(0.0, 0.3 - 0.25 * (self.missed_fixes - 1))
        else:
            remediation = 0.0
        resolution = justified * max(0.0, 1.0 - 0.25 * self.early_resolves) if self.resolved else 0.0
        efficiency = justified * max(0.0, 1.0 - 0.15 * self.wasted) if self.resolved else 0.0
        reasoning = 1.0 if self.concluded_correctly else 0.0
        return diagnosis, ownership, remediation, resolution, efficiency, reasoning


def grade(incident: Incident, trajectory: list[StepRecord] | tuple[StepRecord, ...]) -> Grade:
    """Grade a whole trajectory of ``incident``: pure and deterministic."""
    tally = Tally(incident)
    for record in trajectory:
        tally.update(record)
    return tally.grade()
