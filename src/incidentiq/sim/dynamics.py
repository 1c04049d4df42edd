"""The world of one episode: apply a command, let time pass, read telemetry.

``World`` owns the mutable state. It never judges: ``apply`` returns an
``Outcome`` that says what happened, and ``scoring`` turns outcomes into
rewards and grades.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from incidentiq.sim.catalog import SERVICES
from incidentiq.sim.commands import INVALID_MINUTES, Aspect, Command, Fix, Verb
from incidentiq.sim.faults import FIX_ARTIFACT, HYPOTHESIS_SITES, RULED_OUT, SITE_POINTERS
from incidentiq.sim.generator import Incident, Role
from incidentiq.sim.tasks import TaskId

LOG_WINDOW = 8
OK_BELOW = 0.15
DOWN_FROM = 0.6
STATUS_OK, STATUS_DEGRADED, STATUS_DOWN = 1, 2, 3
"""Status codes in observations; 0 marks an empty (padding) slot."""
STATUS_NAMES = ("-", "ok", "degraded", "down")

RELIEF_MINUTES = 6
CASCADE_GAIN = 1.3  # callers fail harder than the dependency that drags them down
SETTLE = 0.35  # per minute, the share of the gap to its target a service keeps


class Outcome(str, enum.Enum):
    """What one command did. Scoring reads only these (and the incident)."""

    INVALID = "invalid"
    REPEATED = "repeated"
    INVESTIGATE_ROOT = "investigate_root"
    INVESTIGATE_PATH = "investigate_path"
    INVESTIGATE_SITE = "investigate_site"
    INVESTIGATE_UNRELATED = "investigate_unrelated"
    INVESTIGATE_UNKNOWN = "investigate_unknown"
    ASSIGN_OWNER = "assign_owner"
    ASSIGN_OWNER_BUSY = "assign_owner_busy"
    ASSIGN_WRONG = "assign_wrong"
    ASSIGN_UNKNOWN = "assign_unknown"
    ESCALATE_NEEDED = "escalate_needed"
    ESCALATE_UNNEEDED = "escalate_unneeded"
    MITIGATE_PREMATURE = "mitigate_premature"
    FIX_FULL = "fix_full"
    FIX_PARTIAL = "fix_partial"
    FIX_WRONG = "fix_wrong"
    FIX_ELSEWHERE = "fix_elsewhere"
    FIX_UNKNOWN = "fix_unknown"
    FIX_REDUNDANT = "fix_redundant"
    RESOLVE_OK = "resolve_ok"
    RESOLVE_EARLY = "resolve_early"


@dataclass(frozen=True)
class StepRecord:
    """One entry of a trajectory: the grader's whole input besides the incident.

    ``revealed`` marks an investigation that showed the root cause's evidence;
    ``repeat`` counts earlier investigations of the same service (for a fix,
    earlier fix attempts); ``hops`` is
    the distance from the root of an investigated service on the causal path.
    """

    command: Command | None
    outcome: Outcome
    minute: int
    reasoning: str = ""
    revealed: bool = False
    repeat: int = 0
    hops: int = 0


_HANDLERS = {verb: f"_{verb.value}" for verb in Verb}
_FIX_ATTEMPTS = frozenset({Outcome.FIX_FULL, Outcome.FIX_PARTIAL, Outcome.FIX_WRONG,
                           Outcome.FIX_ELSEWHERE, Outcome.FIX_UNKNOWN})


def _fmt(template: str, incident: Incident, **extra: str) -> str:
    return template.format(**incident.artifacts, **extra)


class World:
    """Mutable state of one incident, advanced one command at a time."""

    def __init__(self, incident: Incident, rng: np.random.Generator):
        self.incident = incident
        n = len(incident.services)
        self.index = {name: i for i, name in enumerate(incident.services)}
        self.badness = list(incident.initial_badness)
        self.spike = [0.0] * n
        # Seeded jitter for the metrics, one row per step, drawn once.
        self.jitter = (rng.random(n * 32) - 0.5).tolist()
        self.minute = 0
        self.steps = 0
        self.fault_active = True
        self.relief_until = -1
        self.growth = incident.family.growth_per_minute
        self.investigations = [0] * n
        self.any_investigation = False
        self.assigned: str | None = None
        self.escalated = False
        self.severity = incident.severity
        self.busy = list(incident.busy)
        self.failed_resolves = 0
        self.fix_attempts = 0
        self.resolved = False
        self.seen: set[str] = set()
        self.root = self.index[incident.root]
        # Callers on the causal path, nearest the root first, with their next hop.
        hops = {incident.root: 0}
        path = []
        pending = [i for i, role in enumerate(incident.roles) if role is Role.PATH]
        while pending:
            ready = [i for i in pending if incident.next_hop[i] in hops]
            for i in ready:
                hops[incident.services[i]] = hops[incident.next_hop[i]] + 1
                path.append((i, self.index[incident.next_hop[i]]))
            pending = [i for i in pending if i not in ready]
        self.path = path
        self.hops = [hops.get(name, 0) for name in incident.services]
        self.status = [self._status(i) for i in range(n)]
        self.logs: list[str] = []
        for k, line in enumerate(incident.initial_logs):
            self.logs.append(f"{self._stamp(k - len(incident.initial_logs), k)} {line}")

    # ---- telemetry -------------------------------------------------------------

    def _stamp(self, minute: int, k: int) -> str:
        seconds = self.incident.clock_start + 60 * minute + 7 * k
        hours, rest = divmod(seconds % 86400, 3600)
        return f"{self.incident.date}T{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"

    def _emit(self, lines: list[str]) -> None:
        for k, line in enumerate(lines):
            self.logs.append(f"{self._stamp(self.minute, k)} {line}")
        if len(self.logs) > 4 * LOG_WINDOW:
            del self.logs[: -LOG_WINDOW]

    def level(self, i: int) -> float:
        """How bad service ``i`` is, in [0, 1]."""
        value = self.badness[i] + self.spike[i]
        return value if value < 1.0 else 1.0

    def _status(self, i: int) -> int:
        value = self.level(i)
        return STATUS_OK if value < OK_BELOW else (STATUS_DEGRADED if value < DOWN_FROM else STATUS_DOWN)

    def metrics(self) -> list[list[float]]:
        """Rows error_rate_pct, latency_p99_ms, throughput_rps, one column per service."""
        row = (self.steps % 32) * len(self.badness)
        errors, latency, throughput = [], [], []
        for i, name in enumerate(self.incident.services):
            value = self.level(i)
            noise = 1.0 + 0.06 * self.jitter[row + i]
            service = SERVICES[name]
            errors.append(min(100.0, (0.2 + 65.0 * value) * noise))
            latency.append(service.base_latency_ms * (1.0 + 14.0 * value) * noise)
            throughput.append(service.base_throughput_rps * (1.0 - 0.9 * value) * noise)
        return [errors, latency, throughput]

    def recovered(self) -> bool:
        """Recovery is confirmed: the fault is gone and the causal path is healthy."""
        if self.fault_active or self.level(self.root) >= OK_BELOW:
            return False
        return all(self.level(i) < OK_BELOW for i, _ in self.path)

    # ---- dynamics --------------------------------------------------------------

    def advance(self, minutes: int) -> None:
        """Let ``minutes`` pass: the fault grows, the path follows, spikes fade."""
        self.minute += minutes
        self.steps += 1
        root = self.root
        if self.fault_active:
            if self.relief_until < self.minute:
                # Relief wears off gradually: growth resumes after the window.
                self.badness[root] = min(1.0, self.badness[root] + self.growth * minutes)
        else:
            self.badness[root] = 0.0
        keep = SETTLE**minutes
        for i, j in self.path:
            target = min(1.0, CASCADE_GAIN * self.level(j))
            self.badness[i] = target + (self.badness[i] - target) * keep
        if any(self.spike):
            fade = 0.5**minutes
            self.spike = [s * fade if s > 0.01 else 0.0 for s in self.spike]
        lines = []
        for i, name in enumerate(self.incident.services):
            status = self._status(i)
            if status != self.status[i]:
                if status == STATUS_OK:
                    lines.append(f"INFO {name}: recovered, error rate back under threshold")
                elif status == STATUS_DOWN:
                    lines.append(f"CRIT {name}: health checks failing, marked down")
                elif self.status[i] == STATUS_OK:
                    lines.append(f"WARN {name}: error rate above threshold, degraded")
                self.status[i] = status
        if not lines:
            worst = max(range(len(self.badness)), key=self.level)
            if self.status[worst] != STATUS_OK:
                name = self.incident.services[worst]
                lines.append(f"ERROR {name}: alert still firing ({STATUS_NAMES[self.status[worst]]})")
        self._emit(lines)

    # ---- commands --------------------------------------------------------------

    def apply(self, command: Command | None, reasoning: str = "", canonical: str = "") -> tuple[StepRecord, str]:
        """Apply one command (``None`` for unparseable text); return its record and feedback."""
        if command is None:
            self.advance(INVALID_MINUTES)
            return StepRecord(None, Outcome.INVALID, self.minute, reasoning), ""
        if command.verb is not Verb.RESOLVE:
            self.failed_resolves = 0
            if canonical in self.seen:
                self.advance(INVALID_MINUTES)
                feedback = f"Already done: '{canonical}'. Repeating a command changes nothing."
                return StepRecord(command, Outcome.REPEATED, self.minute, reasoning), feedback
            self.seen.add(canonical)
        outcome, feedback, lines, extra = getattr(self, _HANDLERS[command.verb])(command)
        if outcome in _FIX_ATTEMPTS:
            extra = {"repeat": self.fix_attempts}
            self.fix_attempts += 1
        self._emit(lines)
        self.advance(command.minutes)
        return StepRecord(command, outcome, self.minute, reasoning, **extra), feedback

    def _investigate(self, command: Command):
        name = command.service
        i = self.index.get(name)
        if i is None:
            where = "is not part of this incident" if name in SERVICES else "is not a known service"
            return Outcome.INVESTIGATE_UNKNOWN, f"{name} {where}.", [], {}
        incident = self.incident
        self.any_investigation = True
        repeat = self.investigations[i]
        self.investigations[i] += 1
        role = incident.roles[i]
        findings = self._findings(i, command.aspect)
        revealed = role is Role.ROOT and (
            incident.diagnostic_aspect is None or command.aspect is incident.diagnostic_aspect
        )
        service = SERVICES[name]
        calls = ", ".join(service.calls) if service.calls else "nothing"
        owner_line = f"INFO catalog: {name} is owned by {service.team.value}; it calls {calls}"
        lines = [*findings, owner_line]
        feedback = f"Investigated {name}: " + " | ".join(findings + [f"owner {service.team.value}"])
        outcome = {
            Role.ROOT: Outcome.INVESTIGATE_ROOT,
            Role.PATH: Outcome.INVESTIGATE_PATH,
            Role.SITE: Outcome.INVESTIGATE_SITE,
        }.get(role, Outcome.INVESTIGATE_UNRELATED)
        return outcome, feedback, lines, {"revealed": revealed, "repeat": repeat, "hops": self.hops[i]}

    def _findings(self, i: int, aspect: Aspect | None) -> list[str]:
        incident = self.incident
        name = incident.services[i]
        role = incident.roles[i]
        family = incident.family
        hard = incident.task is TaskId.AMBIGUOUS_PAYMENT_DEGRADATION
        truth = incident.hypothesis
        asked = None
        if hard and aspect is not None:
            asked = next((h for h, (_, a) in HYPOTHESIS_SITES.items() if a is aspect), None)
        if role is Role.ROOT:
            wanted = incident.diagnostic_aspect
            if wanted is None or aspect is wanted:
                return [_fmt(t, incident, service=name) for t in family.evidence]
            found = [f"WARN {name}: error rate and retries rising; nothing conclusive in {aspect.value if aspect else 'general logs'}"]
            if asked is not None and asked is not truth:
                found.append(_fmt(RULED_OUT[asked], incident))
            return found
        if role is Role.PATH:
            if hard and asked is not None and HYPOTHESIS_SITES[asked][0] == name:
                template = SITE_POINTERS[asked] if asked is truth else RULED_OUT[asked]
                return [_fmt(template, incident, root=incident.root)]
            symptom = family.symptom.format(target=incident.next_hop[i])
            return [f"ERROR {name}: {symptom}"]
        if role is Role.SITE:
            for hypothesis, (site, _) in HYPOTHESIS_SITES.items():
                if site == name:
                    template = SITE_POINTERS[hypothesis] if hypothesis is truth else RULED_OUT[hypothesis]
                    return [_fmt(template, incident, root=incident.root)]
            return [f"INFO {name}: no errors, dependencies healthy"]
        if role is Role.RED_HERRING:
            return [f"INFO {name}: errors come from a batch job on a draining node; user traffic unaffected"]
        return [f"INFO {name}: all checks passing"]

    def _assign(self, command: Command):
        team = command.team
        incident = self.incident
        if team not in incident.teams:
            return Outcome.ASSIGN_UNKNOWN, f"There is no team '{team}' on the roster.", [], {}
        self.assigned = team
        if team != incident.owner:
            return Outcome.ASSIGN_WRONG, f"Assigned to {team}. They do not own the failing service.", [], {}
        if self.busy[incident.teams.index(team)]:
            feedback = f"{team} is busy and did not acknowledge. Escalate to page the secondary on-call."
            return Outcome.ASSIGN_OWNER_BUSY, feedback, [f"WARN pager: {team} primary on-call did not acknowledge"], {}
        return Outcome.ASSIGN_OWNER, f"{team} acknowledged the incident.", [f"INFO pager: {team} acknowledged"], {}

    def _escalate(self, command: Command):
        incident = self.incident
        needed = not self.escalated and (incident.owner_busy or self.severity == 0)
        self.escalated = True
        self.severity = max(0, self.severity - 1)
        self.busy = [False] * len(self.busy)
        lines = [f"WARN pager: severity raised to P{self.severity}, secondary on-call paged"]
        if needed:
            return Outcome.ESCALATE_NEEDED, f"Escalated to P{self.severity}; the secondary on-call is paged.", lines, {}
        return Outcome.ESCALATE_UNNEEDED, f"Escalated to P{self.severity}, though nothing called for it.", lines, {}

    def _mitigate(self, command: Command):
        name = command.service
        fix = command.fix
        i = self.index.get(name)
        if i is None:
            where = "is not part of this incident" if name in SERVICES else "is not a known service"
            return Outcome.FIX_UNKNOWN, f"{name} {where}; nothing was changed.", [], {}
        if not self.any_investigation:
            return Outcome.MITIGATE_PREMATURE, "Investigate before mitigating: the change was not applied.", [], {}
        family = self.incident.family
        line = f"INFO deploy-bot: {fix.value} applied to {name}"
        if i != self.root:
            if fix is Fix.RESTART:
                self.spike[i] = 0.35
                return Outcome.FIX_ELSEWHERE, f"Restarted {name}: a short error spike, nothing fixed.", [line], {}
            if fix is Fix.ROLLBACK:
                return Outcome.FIX_ELSEWHERE, f"{name} has no recent deploy to roll back.", [], {}
            return Outcome.FIX_ELSEWHERE, f"Applied {fix.value} to {name}; it made no difference.", [line], {}
        if not self.fault_active:
            return Outcome.FIX_REDUNDANT, f"{name} is already fixed.", [], {}
        kind = FIX_ARTIFACT.get(fix)
        if command.artifact and kind and command.artifact != self.incident.artifacts[kind]:
            return Outcome.FIX_WRONG, f"{command.artifact} does not match anything on {name}.", [], {}
        if fix in family.full_fixes:
            self.fault_active = False
            return Outcome.FIX_FULL, f"Applied {fix.value} to {name}: the fault is cleared.", [line], {}
        if fix in family.partial_fixes:
            self.relief_until = self.minute + RELIEF_MINUTES
            self.badness[i] *= 0.3
            self.growth = 2.0 * family.growth_per_minute
            feedback = f"Applied {fix.value} to {name}: temporary relief; the cause is still there."
            return Outcome.FIX_PARTIAL, feedback, [line], {}
        return Outcome.FIX_WRONG, f"Applied {fix.value} to {name}; it did not help.", [line], {}

    def _resolve(self, command: Command):
        if self.recovered():
            self.resolved = True
            return Outcome.RESOLVE_OK, "Recovery confirmed. Incident resolved.", ["INFO incident: resolved"], {}
        self.failed_resolves += 1
        return Outcome.RESOLVE_EARLY, "Cannot resolve: recovery is not confirmed.", [], {}


