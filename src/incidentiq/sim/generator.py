"""Draw an incident from a numpy ``Generator``.

``generate(rng, task, split)`` is the only entry point. All randomness comes
from ``rng``; every collection it samples from is a sorted tuple, so the same
seed gives the same incident in any process.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from incidentiq.sim.catalog import CALLERS, SERVICE_NAMES, SERVICES, TEAM_NAMES
from incidentiq.sim.commands import Aspect, Command, Verb
from incidentiq.sim.faults import (
    CLUES,
    FAMILIES,
    FAMILY_BY_NAME,
    FIX_ARTIFACT,
    HARD_COMBOS,
    TEST_COMBOS,
    FaultFamily,
    Hypothesis,
)
from incidentiq.sim.tasks import TASKS, Split, TaskId

MAX_SERVICES = 8
"""Most services an incident lists; observation arrays are padded to this."""


class Role(enum.IntEnum):
    """What a listed service is to the incident (ground truth, never observed)."""

    ROOT = 0
    PATH = 1  # degraded because a dependency is: on the causal path
    SITE = 2  # hard task: where a hypothesis is confirmed or ruled out
    RED_HERRING = 3  # alarming, unrelated errors
    DECOY = 4  # healthy bystander


@dataclass(frozen=True)
class Incident:
    """Ground truth and the starting state of one episode.

    Lists are aligned with ``services`` (the shuffled order the agent sees).
    """

    task: TaskId
    description: str
    family: FaultFamily
    root: str
    services: tuple[str, ...]
    roles: tuple[Role, ...]
    next_hop: tuple[str, ...]  # for PATH services: the dependency leading toward the root
    edges: tuple[tuple[int, int], ...]  # observed (caller, callee) index pairs, possibly noisy
    artifacts: dict[str, str]
    teams: tuple[str, ...]  # roster order
    busy: tuple[bool, ...]  # aligned with teams
    severity: int  # 0 = P0, 1 = P1, 2 = P2
    hypotheses: tuple[str, ...]  # hard task only, shuffled
    hypothesis: Hypothesis | None
    initial_badness: tuple[float, ...]
    initial_logs: tuple[str, ...]  # untimestamped lines, oldest first
    log_noise: float
    clock_start: int  # seconds since midnight of ``date``
    date: str

    @property
    def owner(self) -> str:
        """The team that must take the incident."""
        return SERVICES[self.root].team.value

    @property
    def root_index(self) -> int:
        """Position of the root in ``services``."""
        return self.services.index(self.root)

    @property
    def owner_busy(self) -> bool:
        """Whether the owning team is busy (and needs the secondary paged)."""
        return self.busy[self.teams.index(self.owner)]

    @property
    def needs_escalation(self) -> bool:
        """Escalate is the right move when the owner is busy or the incident is P0."""
        return self.owner_busy or self.severity == 0

    @property
    def diagnostic_aspect(self) -> Aspect | None:
        """The aspect an investigation of the root needs to reveal the cause (hard task only)."""
        if self.task is TaskId.AMBIGUOUS_PAYMENT_DEGRADATION and self.root == "payment-service":
            return self.family.aspect
        return None

    @property
    def artifact(self) -> str | None:
        """The artifact the family's fixes may name (a deploy id, a pid, ...)."""
        return self.artifacts[self.family.artifact] if self.family.artifact else None

    def walkthrough(self) -> list[str]:
        """The optimal commands for this incident, computed from ground truth."""
        fix = self.family.full_fixes[0]
        investigate = Command(Verb.INVESTIGATE, service=self.root, aspect=self.diagnostic_aspect)
        mitigate = Command(
            Verb.MITIGATE,
            service=self.root,
            fix=fix,
            artifact=self.artifacts[FIX_ARTIFACT[fix]] if fix in FIX_ARTIFACT else None,
        )
        commands = [investigate.text]
        if self.needs_escalation:
            commands.append("escalate")
        commands.append(f"assign to {self.owner}")
        mitigate_text = mitigate.text
        if self.hypothesis is not None:
            mitigate_text += f"\nroot cause: {self.hypothesis.value}"
        commands += [mitigate_text, "resolve"]
        return commands


def _combos() -> dict[tuple[TaskId, Split], tuple[tuple[str, str], ...]]:
    pairs = sorted((family.name, root) for family in FAMILIES for root in family.roots)
    by_task = {
        TaskId.SINGLE_SERVICE_OUTAGE: pairs,
        # A cascade needs at least two callers to cascade to.
        TaskId.CASCADING_FAILURE: [p for p in pairs if len(CALLERS[p[1]]) >= 2],
        TaskId.AMBIGUOUS_PAYMENT_DEGRADATION: sorted(HARD_COMBOS),
    }
    table = {}
    for task, task_pairs in by_task.items():
        table[task, Split.ALL] = tuple(task_pairs)
        table[task, Split.TEST] = tuple(p for p in task_pairs if p in TEST_COMBOS)
        table[task, Split.TRAIN] = tuple(p for p in task_pairs if p not in TEST_COMBOS)
    return table


COMBOS = _combos()
"""(family, root) pairs each task draws from, per split."""

_FLAG_WORDS = ("async_ledger", "batch_auth", "checkout_v2", "edge_cache", "fast_path",
               "new_pricing", "smart_retry", "token_verifier_v2")
_CANARY_WORDS = ("atlas", "borealis", "cobalt", "delta", "ember", "falcon", "granite", "helix")
_DECOY_POOL = tuple(
    name for name in SERVICE_NAMES if name not in ("stripe-api", "db-primary", "payment-service")
)
_HARD_SERVICES = ("checkout-service", "db-primary", "fraud-service", "payment-service", "queue-worker", "stripe-api")
_NOISE_LINES = (
    "INFO {service}: health check ok",
    "INFO cron: nightly backup of {service} completed",
    "INFO {service}: autoscaler holding at {restarts} replicas",
    "DEBUG {service}: cache warm-up finished",
)
_RED_HERRING_LINES = (
    "ERROR {service}: disk usage 93% on /var/log, log rotation behind",
    "ERROR {service}: 3 consecutive health checks failed on a draining node",
    "WARN {service}: batch job reprocessing {count} records, error rate elevated",
)
_CALLER_ALERTS = (
    "ERROR {service}: 5xx rate above SLO ({count} errors in 5m)",
    "WARN {service}: p99 latency above 2s",
    "ERROR {service}: upstream request failures rising",
)



class _Draws:
    """Uniform numbers drawn from ``rng`` in one call, handed out one at a time.

    A reset makes a few dozen small random choices; drawing them as one vector
    costs a single call into numpy instead of one per choice.
    """

    __slots__ = ("_rng", "_values", "_next")

    def __init__(self, rng: np.random.Generator, count: int = 128):
        self._rng = rng
        self._values = rng.random(count).tolist()
        self._next = 0

    def uniform(self) -> float:
        if self._next == len(self._values):
            self._values += self._rng.random(64).tolist()
        value = self._values[self._next]
        self._next += 1
        return value

    def index(self, n: int) -> int:
        """A uniform integer in ``[0, n)``."""
        return min(int(self.uniform() * n), n - 1)

    def permutation(self, n: int) -> list[int]:
        keys = [self.uniform() for _ in range(n)]
        return sorted(range(n), key=keys.__getitem__)

def _draw_artifacts(draws: _Draws, root: str) -> dict[str, str]:
    r = [int(draws.uniform() * (1 << 30)) for _ in range(11)]
    return {
        "deploy": f"deploy-{10000 + r[0] % 90000}",
        "flag": f"ff_{_FLAG_WORDS[r[1] % len(_FLAG_WORDS)]}",
        "canary": f"canary-{_CANARY_WORDS[r[2] % len(_CANARY_WORDS)]}-{1 + r[2] % 9}",
        "pid": str(1000 + r[3] % 60000),
        "shard": f"shard-{r[4] % 24}",
        "cert": f"cert-{root.split('-')[0]}-{100 + r[5] % 900}",
        "port": str(8443 + r[6] % 500),
        "count": str(100 * (2 + r[7] % 8)),
        "heap": f"{3 + r[8] % 3}.{r[8] % 10}",
        "restarts": str(3 + r[9] % 9),
        "ms": str(200 + r[10] % 1800),
    }


def _path_to_root(draws: _Draws, root: str, length: int) -> list[tuple[str, str]]:
    """Callers that the fault cascades to: (service, its dependency toward the root)."""
    path: list[tuple[str, str]] = []
    frontier = [root]
    seen = {root}
    while len(path) < length and frontier:
        callee = frontier.pop(0)
        callers = [c for c in CALLERS[callee] if c not in seen]
        if not callers:
            continue
        order = draws.permutation(len(callers))
        for i in order[: length - len(path)]:
            path.append((callers[i], callee))
            seen.add(callers[i])
            frontier.append(callers[i])
    return path


def generate(
    rng: np.random.Generator,
    task: TaskId,
    split: Split = Split.TRAIN,
    decoys: int | None = None,
    log_noise: float = 0.3,
) -> Incident:
    """Draw one incident of ``task`` from the ``split``'s combinations."""
    config = TASKS[task]
    draws = _Draws(rng)
    combos = COMBOS[task, split]
    family_name, root = combos[draws.index(len(combos))]
    family = FAMILY_BY_NAME[family_name]
    n_decoys = config.decoys if decoys is None else decoys
    artifacts = _draw_artifacts(draws, root)

    roles: dict[str, Role] = {root: Role.ROOT}
    next_hop: dict[str, str] = {}
    badness: dict[str, float] = {}
    hypothesis = None
    if task is TaskId.SINGLE_SERVICE_OUTAGE:
        badness[root] = 0.9
        for service, callee in _path_to_root(draws, root, 1):
            roles[service], next_hop[service], badness[service] = Role.PATH, callee, 0.35
    elif task is TaskId.CASCADING_FAILURE:
        badness[root] = 0.3
        for service, callee in _path_to_root(draws, root, 2 + draws.index(2)):
            roles[service], next_hop[service], badness[service] = Role.PATH, callee, 0.55
    else:
        hypothesis = family.hypothesis
        for service in _HARD_SERVICES:
            roles.setdefault(service, Role.SITE)
            badness.setdefault(service, 0.02)
        badness[root] = 0.3
        chain = {"db-primary": "payment-service", "fraud-service": "payment-service",
                 "queue-worker": "payment-service", "payment-service": "checkout-service"}
        hop = root
        while hop in chain:
            caller = chain[hop]
            roles[caller], next_hop[caller], badness[caller] = Role.PATH, hop, 0.45
            hop = caller
        n_decoys = max(0, min(n_decoys, MAX_SERVICES - len(roles)))

    candidates = [s for s in _DECOY_POOL if s not in roles]
    picks = draws.permutation(len(candidates))[: n_decoys + 1]
    red_herring = None
    for k, i in enumerate(picks):
        if task is TaskId.CASCADING_FAILURE and k == 0:
            red_herring = candidates[i]
            roles[red_herring], badness[red_herring] = Role.RED_HERRING, 0.4
        elif k < n_decoys:
            roles[candidates[i]], badness[candidates[i]] = Role.DECOY, 0.02
    listed = sorted(roles)
    order = draws.permutation(len(listed))
    services = tuple(listed[i] for i in order)
    index = {name: i for i, name in enumerate(services)}

    edges = [(index[a], index[b]) for a in services for b in SERVICES[a].calls if b in index]
    if task is TaskId.CASCADING_FAILURE:
        edges = [e for e in edges if draws.uniform() >= 0.25]
        a, b = draws.permutation(len(services))[:2]
        if (a, b) not in edges and (b, a) not in edges:
            edges.append((a, b))
    edges.sort()

    teams = tuple(TEAM_NAMES[i] for i in draws.permutation(len(TEAM_NAMES)))
    busy = tuple(draws.uniform() < 0.2 for _ in teams)
    severity = 0 if draws.uniform() < 0.15 else (2 if task is TaskId.SINGLE_SERVICE_OUTAGE else 1)

    hypotheses: tuple[str, ...] = ()
    if hypothesis is not None:
        names = sorted(h.value for h in Hypothesis)
        hypotheses = tuple(names[i] for i in draws.permutation(len(names)))

    logs = _initial_logs(draws, task, family, root, services, roles, red_herring, artifacts, log_noise)
    path = sorted(s for s in services if roles[s] is Role.PATH)
    if task is TaskId.SINGLE_SERVICE_OUTAGE:
        description = f"{root} is failing health checks and users see errors"
    elif task is TaskId.CASCADING_FAILURE:
        description = f"alerts firing on {', '.join(path)}; customer-facing errors rising"
    else:
        description = "payment-service degraded: charge latency and failure rate rising"
    return Incident(
        task=task,
        description=description,
        family=family,
        root=root,
        services=services,
        roles=tuple(roles[s] for s in services),
        next_hop=tuple(next_hop.get(s, "") for s in services),
        edges=tuple(edges),
        artifacts=artifacts,
        teams=teams,
        busy=busy,
        severity=severity,
        hypotheses=hypotheses,
        hypothesis=hypothesis,
        initial_badness=tuple(badness[s] for s in services),
        initial_logs=logs,
        log_noise=log_noise,
        clock_start=draws.index(22 * 3600),
        date=f"2026-{1 + draws.index(12):02d}-{1 + draws.index(28):02d}",
    )


def _initial_logs(draws, task, family, root, services, roles, red_herring, artifacts, log_noise):
    lines: list[str] = []
    path = [s for s in services if roles[s] is Role.PATH]
    if task is TaskId.SINGLE_SERVICE_OUTAGE:
        lines.append(family.alert.format(service=root, **artifacts))
        lines += [_CALLER_ALERTS[0].format(service=s, **artifacts) for s in path]
    elif task is TaskId.CASCADING_FAILURE:
        for k, service in enumerate(path):
            lines.append(_CALLER_ALERTS[k % len(_CALLER_ALERTS)].format(service=service, **artifacts))
        pick = draws.index(len(_RED_HERRING_LINES))
        lines.append(_RED_HERRING_LINES[pick].format(service=red_herring, **artifacts))
    else:
        lines.append("ERROR payment-service: p99 latency 2.4s, charge failures rising")
        lines += [CLUES[h].format(**artifacts) for h in sorted(Hypothesis, key=lambda h: h.value)]
        lines.append(_CALLER_ALERTS[0].format(service="checkout-service", **artifacts))
    bystanders = [s for s in services if roles[s] is Role.DECOY]
    if bystanders:
        for draw in (draws.uniform(), draws.uniform()):
            if draw < log_noise:
                template = _NOISE_LINES[int(draw * 1000) % len(_NOISE_LINES)]
                lines.append(template.format(service=bystanders[int(draw * 97) % len(bystanders)], **artifacts))
    order = draws.permutation(len(lines))
    return tuple(lines[i] for i in order)


