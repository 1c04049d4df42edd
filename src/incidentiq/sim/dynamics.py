"""The world of one episode: apply a command, let time pass, read telemetry.

``World`` owns the mutable state. It never judges: ``apply`` returns an
``Outcome`` that says what happened, and ``scoring`` turns outcomes into
rewards and grades.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import numpy as np

from incidentiq.sim.catalog import MAX_TEAMS, SERVICE_NAMES, SERVICES
from incidentiq.sim.commands import INVALID_MINUTES, MINUTES, Aspect, Command, Fix, Verb
from incidentiq.sim.faults import FIX_ARTIFACT, HYPOTHESES
from incidentiq.sim.generator import MAX_SERVICES, NOISE_ROWS, Incident, Role

LOG_WINDOW = 8
MAX_LINE = 256
OK_BELOW = 0.15
DOWN_FROM = 0.6
STATUS_OK, STATUS_DEGRADED, STATUS_DOWN = 1, 2, 3
"""Status codes in observations; 0 marks an empty (padding) slot."""
STATUS_NAMES = ("-", "ok", "degraded", "down")

MAX_SLOTS = MAX_SERVICES
assert MAX_TEAMS == MAX_SERVICES, "observation flags share one (3, MAX_SLOTS) buffer: rows status, investigated, teams"
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


class StepRecord(NamedTuple):
    """One entry of a trajectory: the grader's whole input besides the incident.

    ``revealed`` marks an investigation that showed the root cause's evidence;
    ``known`` says that evidence had been seen before the command;
    ``repeat`` counts earlier investigations of the same service (0 for the
    first look that reveals the root's cause, at least 1 for a service on the
    causal path as far from the root as one looked at before; for a fix,
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
    known: bool = False


_NOISE = 1.0 + 0.06 * (np.random.default_rng(2026).random((NOISE_ROWS, MAX_SERVICES), dtype=np.float32) - 0.5)
"""Multiplicative metric noise (+-3%), a fixed table: each episode starts at a row its own RNG drew."""
_NOISE_BY_METRIC = np.repeat(_NOISE[:, None, :], 3, axis=1)
"""``_NOISE`` with each row repeated for the three metric rows: a (3, MAX_SERVICES) product needs no broadcasting."""


def _metric_table(per_service) -> np.ndarray:
    """A (3, services + 1) float32 table over ``SERVICE_NAMES``; the last column is an empty slot."""
    columns = [per_service(SERVICES[name]) for name in SERVICE_NAMES] + [(0.0, 0.0, 0.0)]
    return np.array(columns, dtype=np.float32).T.copy()


_METRIC_TABLE = np.stack(
    [
        _metric_table(lambda s: (0.2, s.base_latency_ms, s.base_throughput_rps)),  # offset
        _metric_table(lambda s: (65.0, 14.0 * s.base_latency_ms, -0.9 * s.base_throughput_rps)),  # slope
    ]
)
"""Metrics of a service at level v are offset + slope * v, per row (error %, p99 ms, rps)."""
_EMPTY_COLUMN = len(SERVICE_NAMES)


_MINUTE_STAMPS = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND_STAMPS = tuple(f"{s:02d}Z" for s in range(60))
""""HH:MM:" for every minute of a day and "SSZ" for every second of a minute: log stamps are lookups."""


def _stamp(second_of_day: int) -> str:
    """"HH:MM:SSZ" for a second of the day (taken modulo one day)."""
    minute, second = divmod(second_of_day % 86400, 60)
    return _MINUTE_STAMPS[minute] + _SECOND_STAMPS[second]


_FIX_ATTEMPTS = frozenset({Outcome.FIX_FULL, Outcome.FIX_PARTIAL, Outcome.FIX_WRONG,
                           Outcome.FIX_ELSEWHERE, Outcome.FIX_UNKNOWN})


_OWNERS = {name: service.team.value for name, service in SERVICES.items()}
"""The team that owns each service."""
_CATALOG_LINES = {
    name: f"INFO catalog: {name} is owned by {service.team.value}; it calls {', '.join(service.calls) or 'nothing'}"
    for name, service in SERVICES.items()
}
"""What a service catalog says of each service: its owner and its direct dependencies."""
_PAYMENT = "payment-service"
_HYPOTHESIS_OF_ASPECT = {evidence.aspect: hypothesis for hypothesis, evidence in HYPOTHESES.items()}
_INVESTIGATION_OUTCOMES = {
    Role.ROOT: Outcome.INVESTIGATE_ROOT,
    Role.PATH: Outcome.INVESTIGATE_PATH,
    Role.SITE: Outcome.INVESTIGATE_SITE,
    Role.RED_HERRING: Outcome.INVESTIGATE_UNRELATED,
    Role.DECOY: Outcome.INVESTIGATE_UNRELATED,
}


class World:
    """Mutable state of one incident, advanced one command at a time."""

    def __init__(self, incident: Incident):
        self.incident = incident
        services = incident.services
        n = len(services)
        self.index = {name: i for i, name in enumerate(services)}
        self.badness = list(incident.initial_badness)
        self.spike = [0.0] * n
        self.spiking = False
        # Metrics are offset + slope * level, per listed service, times a row of the shared noise table.
        # Every operand is a contiguous (3, MAX_SERVICES) float32 array: numpy's fastest case.
        columns = list(incident.catalog_index) + [_EMPTY_COLUMN] * (MAX_SERVICES - n)
        self._offset, self._slope = _METRIC_TABLE[:, :, columns].copy()
        self._level_rows = np.zeros((3, MAX_SERVICES), dtype=np.float32)  # padding columns stay 0
        self._noise_start = incident.noise_row
        self.minute = 0
        self.steps = 0
        self.fault_active = True
        self.relief_until = -1
        self.growth = incident.family.growth_per_minute
        self.investigations = [0] * n
        self.any_investigation = False
        self.root_revealed = False
        self.path_hops_seen: set[int] = set()
        self.escalated = False
        self.severity = incident.severity
        self.failed_resolves = 0
        self.fix_attempts = 0
        self.resolved = False
        self.seen: set[str] = set()
        self.root = self.index[incident.root]
        self.driver = self.index[incident.driver]
        # Evidence templates name the root as {service} or {root}, and the episode's artifacts.
        self.fields = {**incident.artifacts, "service": incident.root, "root": incident.root}
        self.path = incident.path
        self.hops = incident.hops
        # Observable flags, one row each: status (0 marks an empty slot), investigated, team available.
        self.flags = np.zeros((3, MAX_SLOTS), dtype=np.int8)
        self.flags[2, : len(incident.busy)] = [not busy for busy in incident.busy]  # the only record of it
        self.status = self._refresh()
        self.flags[0, :n] = self.status
        self._day = f"{incident.date}T"
        # Minute 0 starts on a whole minute so that its lines, 4 s apart, stay inside it.
        self._start_minute = incident.clock_start // 60
        self._stamp_minute, self._line_in_minute = 0, 0
        # The first alerts arrived over the minutes before the incident was opened.
        day, start = self._day, 60 * (self._start_minute - len(incident.initial_logs))
        self.logs = [f"{day}{_stamp(start + 67 * k)} {line}"[:MAX_LINE] for k, line in enumerate(incident.initial_logs)]

    # ---- telemetry -------------------------------------------------------------

    def _emit(self, lines: list[str]) -> None:
        # Stamps never go backwards: lines of the same minute are spaced 4 s apart.
        if self.minute != self._stamp_minute:
            self._stamp_minute, self._line_in_minute = self.minute, 0
        prefix = self._day + _MINUTE_STAMPS[(self._start_minute + self.minute) % 1440]
        k = self._line_in_minute
        logs = self.logs
        for line in lines:
            second = 4 * k if k < 15 else 59  # the 16th line and later share :59
            logs.append(f"{prefix}{_SECOND_STAMPS[second]} {line}"[:MAX_LINE])
            k += 1
        self._line_in_minute = k
        if len(logs) > 4 * LOG_WINDOW:
            del logs[: -LOG_WINDOW]

    def level(self, i: int) -> float:
        """How bad service ``i`` is, in [0, 1]."""
        value = self.badness[i] + self.spike[i]
        return value if value < 1.0 else 1.0

    def _refresh(self) -> list[int]:
        """Recompute every service's level and status; return the new statuses."""
        if self.spiking:
            levels = [b + s if b + s < 1.0 else 1.0 for b, s in zip(self.badness, self.spike)]
        else:
            # Every spike has faded to 0, and badness never leaves [0, 1]: growth is capped at 1, a
            # caller moves part of the way toward a target capped at 1, and fixes only scale it down.
            levels = self.badness[:]
        self.levels = levels
        return [STATUS_OK if v < OK_BELOW else (STATUS_DEGRADED if v < DOWN_FROM else STATUS_DOWN) for v in levels]

    def metrics(self) -> np.ndarray:
        """A new float32 array of rows error rate (%), p99 latency (ms), throughput (rps).

        Columns follow the listed services, padded with zeros to ``MAX_SERVICES``.
        """
        levels = self.levels
        self._level_rows[:, : len(levels)] = levels  # each level, rounded to float32, in every row
        out = self._slope * self._level_rows
        out += self._offset
        out *= _NOISE_BY_METRIC[(self._noise_start + self.steps) % NOISE_ROWS]
        return out

    def recovered(self) -> bool:
        """Recovery is confirmed: the fault is gone and the root and its callers are healthy."""
        if self.fault_active or self.level(self.root) >= OK_BELOW or self.level(self.driver) >= OK_BELOW:
            return False
        return all(self.level(i) < OK_BELOW for i, _ in self.path)

    # ---- dynamics --------------------------------------------------------------

    def advance(self, minutes: int) -> None:
        """Let ``minutes`` pass: the driver degrades, its callers follow, spikes fade.

        The driver is the root, except in the hard task, where payment-service
        shows the degradation whichever of its dependencies is at fault.
        """
        self.minute += minutes
        self.steps += 1
        badness, driver = self.badness, self.driver
        if self.fault_active:
            if self.relief_until < self.minute:
                # Relief wears off: growth resumes, faster, after the window.
                value = badness[driver] + self.growth * minutes
                badness[driver] = value if value < 1.0 else 1.0
        else:
            badness[driver] = badness[self.root] = 0.0
        keep = SETTLE**minutes
        spike = self.spike
        for i, j in self.path:
            target = CASCADE_GAIN * (badness[j] + spike[j])
            if target > 1.0:
                target = 1.0
            badness[i] = target + (badness[i] - target) * keep
        if self.spiking:
            fade = 0.5**minutes
            self.spike = [s * fade if s > 0.01 else 0.0 for s in self.spike]
            self.spiking = any(self.spike)
        status = self._refresh()
        lines = []
        if status != self.status:
            for i, (old, new) in enumerate(zip(self.status, status)):
                if new != old:
                    name = self.incident.services[i]
                    if new == STATUS_OK:
                        lines.append(f"INFO {name}: recovered, error rate back under threshold")
                    elif new == STATUS_DOWN:
                        lines.append(f"CRIT {name}: health checks failing, marked down")
                    elif old == STATUS_OK:
                        lines.append(f"WARN {name}: error rate above threshold, degraded")
            self.status = status
            self.flags[0, : len(status)] = status
        if not lines:
            worst = self.levels.index(max(self.levels))
            if status[worst] != STATUS_OK:
                name = self.incident.services[worst]
                lines.append(f"ERROR {name}: alert still firing ({STATUS_NAMES[status[worst]]})")
        if lines:
            self._emit(lines)

    # ---- commands --------------------------------------------------------------

    def apply(self, command: Command | None, reasoning: str = "", canonical: str = "") -> tuple[StepRecord, str]:
        """Apply one command (``None`` for unparseable text); return its record and feedback."""
        if command is None:
            self.advance(INVALID_MINUTES)
            return StepRecord(None, Outcome.INVALID, self.minute, reasoning), ""
        verb = command.verb
        if verb is not Verb.RESOLVE:
            self.failed_resolves = 0
            if canonical in self.seen:
                self.advance(INVALID_MINUTES)
                feedback = f"Already done: '{canonical}'. Repeating a command changes nothing."
                return StepRecord(command, Outcome.REPEATED, self.minute, reasoning), feedback
            self.seen.add(canonical)
        known = self.root_revealed
        outcome, feedback, lines, extra = _HANDLERS[verb](self, command)
        if outcome in _FIX_ATTEMPTS:
            extra = {"repeat": self.fix_attempts}
            self.fix_attempts += 1
        if lines:
            self._emit(lines)
        self.advance(MINUTES[verb])
        return StepRecord(command, outcome, self.minute, reasoning, known=known, **extra), feedback

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
        # The first look that reveals the root's cause counts as new, whatever was asked before.
        first_reveal = False
        self.flags[1, i] = 1
        role = incident.roles[i]
        findings = self._findings(i, command.aspect)
        revealed = role is Role.ROOT and (
            incident.diagnostic_aspect is None or command.aspect is incident.diagnostic_aspect
        )
        if revealed and not self.root_revealed:
            self.root_revealed = first_reveal = True
        if first_reveal:
            repeat = 0
        elif role is Role.PATH:
            # A second caller as far from the root shows the same symptom: nothing new, as a repeat.
            hops = self.hops[i]
            if hops in self.path_hops_seen:
                repeat = max(repeat, 1)
            self.path_hops_seen.add(hops)
        lines = [*findings, _CATALOG_LINES[name]]
        feedback = f"Investigated {name}: {' | '.join(findings)} | owner {_OWNERS[name]}"
        outcome = _INVESTIGATION_OUTCOMES[role]
        return outcome, feedback, lines, {"revealed": revealed, "repeat": repeat, "hops": self.hops[i]}

    def _findings(self, i: int, aspect: Aspect | None) -> list[str]:
        incident = self.incident
        name = incident.services[i]
        role = incident.roles[i]
        if incident.hypothesis is not None:
            return self._hard_findings(name, aspect)
        if role is Role.ROOT:
            return [t.format_map(self.fields) for t in incident.family.evidence]
        if role is Role.PATH:
            return [f"ERROR {name}: {incident.family.symptom.format(target=incident.next_hop[i])}"]
        if role is Role.RED_HERRING:
            return [f"INFO {name}: errors come from a batch job on a draining node; user traffic unaffected"]
        return [f"INFO {name}: all checks passing"]

    def _hard_findings(self, name: str, aspect: Aspect | None) -> list[str]:
        """The hard task: the root only answers the right question; the sites settle hypotheses."""
        incident = self.incident
        truth, root, fields = incident.hypothesis, incident.root, self.fields
        if name == root and aspect is incident.diagnostic_aspect:
            return [t.format_map(fields) for t in incident.family.evidence]
        asked = _HYPOTHESIS_OF_ASPECT.get(aspect) if name == _PAYMENT else None
        if asked is not None:  # payment-service settles the hypothesis it is asked about
            evidence = HYPOTHESES[asked]
            return [(evidence.payment_pointer if asked is truth else evidence.payment_ruled_out).format_map(fields)]
        if name in (root, _PAYMENT):  # the wrong question: symptoms, not the cause
            where = aspect.value if aspect else "general logs"
            return [f"WARN {name}: error rate and retries rising; nothing conclusive in {where}"]
        for hypothesis, evidence in HYPOTHESES.items():
            if evidence.site == name:
                return [(evidence.site_pointer if hypothesis is truth else evidence.ruled_out).format_map(fields)]
        if name == "checkout-service":
            return ["ERROR checkout-service: charge calls to payment-service timing out"]
        return [f"INFO {name}: no errors, dependencies healthy"]

    def _assign(self, command: Command):
        team = command.team
        incident = self.incident
        if team not in incident.teams:
            return Outcome.ASSIGN_UNKNOWN, f"There is no team '{team}' on the roster.", [], {}
        if team != incident.owner:
            return Outcome.ASSIGN_WRONG, f"Assigned to {team}. They do not own the failing service.", [], {}
        if not self.flags[2, incident.teams.index(team)]:
            feedback = f"{team} is busy and did not acknowledge. Escalate to page the secondary on-call."
            return Outcome.ASSIGN_OWNER_BUSY, feedback, [f"WARN pager: {team} primary on-call did not acknowledge"], {}
        return Outcome.ASSIGN_OWNER, f"{team} acknowledged the incident.", [f"INFO pager: {team} acknowledged"], {}

    def _escalate(self, command: Command):
        incident = self.incident
        needed = not self.escalated and (incident.owner_busy or self.severity == 0)
        self.escalated = True
        self.severity = max(0, self.severity - 1)
        self.flags[2, : len(incident.teams)] = 1
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
        applied = fix.value
        line = f"INFO deploy-bot: {applied} applied to {name}"
        if i != self.root:
            if fix is Fix.RESTART:
                self.spike[i] = 0.35
                self.spiking = True
                return Outcome.FIX_ELSEWHERE, f"Restarted {name}: a short error spike, nothing fixed.", [line], {}
            if fix is Fix.ROLLBACK:
                return Outcome.FIX_ELSEWHERE, f"{name} has no recent deploy to roll back.", [], {}
            return Outcome.FIX_ELSEWHERE, f"Applied {applied} to {name}; it made no difference.", [line], {}
        if not self.fault_active:
            return Outcome.FIX_REDUNDANT, f"{name} is already fixed.", [], {}
        kind = FIX_ARTIFACT.get(fix)
        if command.artifact and kind and command.artifact != self.incident.artifacts[kind]:
            return Outcome.FIX_WRONG, f"{command.artifact} does not match anything on {name}.", [], {}
        if fix in family.full_fixes:
            self.fault_active = False
            return Outcome.FIX_FULL, f"Applied {applied} to {name}: the fault is cleared.", [line], {}
        if fix in family.partial_fixes:
            self.relief_until = self.minute + RELIEF_MINUTES
            self.badness[i] *= 0.3
            self.badness[self.driver] *= 0.3
            self.growth = 2.0 * family.growth_per_minute
            feedback = f"Applied {applied} to {name}: temporary relief; the cause is still there."
            return Outcome.FIX_PARTIAL, feedback, [line], {}
        return Outcome.FIX_WRONG, f"Applied {applied} to {name}; it did not help.", [line], {}

    def _resolve(self, command: Command):
        if self.recovered():
            self.resolved = True
            return Outcome.RESOLVE_OK, "Recovery confirmed. Incident resolved.", ["INFO incident: resolved"], {}
        self.failed_resolves += 1
        return Outcome.RESOLVE_EARLY, "Cannot resolve: recovery is not confirmed.", [], {}


_HANDLERS = {verb: getattr(World, f"_{verb.value}") for verb in Verb}
"""``World.apply`` calls ``_HANDLERS[verb](world, command)``."""
