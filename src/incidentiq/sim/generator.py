"""Draw an incident from a numpy ``Generator``.

``generate(rng, task, split)`` is the only entry point. All randomness comes
from ``rng``; every collection it samples from is a sorted tuple, so the same
seed gives the same incident in any process.
"""

from __future__ import annotations

import enum
import itertools
from typing import NamedTuple

import numpy as np

from incidentiq.sim.catalog import CALLERS, SERVICE_NAMES, SERVICES, TEAM_NAMES
from incidentiq.sim.commands import Aspect, Command, Verb
from incidentiq.sim.faults import (
    FAMILIES,
    FAMILY_BY_NAME,
    FIX_ARTIFACT,
    HARD_COMBOS,
    HYPOTHESES,
    TEST_COMBOS,
    FaultFamily,
    Hypothesis,
)
from incidentiq.sim.tasks import TASKS, Split, TaskId

MAX_SERVICES = 8
"""Most services an incident lists; observation arrays are padded to this."""
NOISE_ROWS = 4096
"""Rows of the metric noise table an incident may start reading at."""


class Role(enum.IntEnum):
    """What a listed service is to the incident (ground truth, never observed)."""

    ROOT = 0
    PATH = 1  # degraded because a dependency is: on the causal path
    SITE = 2  # hard task: where a hypothesis is confirmed or ruled out
    RED_HERRING = 3  # alarming, unrelated errors
    DECOY = 4  # healthy bystander


class Incident(NamedTuple):
    """Ground truth and the starting state of one episode (immutable).

    Lists are aligned with ``services`` (the shuffled order the agent sees).
    """

    task: TaskId
    description: str
    family: FaultFamily
    root: str
    driver: str  # the service whose degradation the alerts show: the root, or payment-service in the hard task
    services: tuple[str, ...]
    roles: tuple[Role, ...]
    next_hop: tuple[str, ...]  # for PATH services: the dependency leading toward the root
    path: tuple[tuple[int, int], ...]  # (caller, next hop) index pairs, nearest the driver first
    hops: tuple[int, ...]  # distance from the root along the path (0 off the path)
    catalog_index: tuple[int, ...]  # position of each service in ``SERVICE_NAMES``
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
    noise_row: int  # where this episode starts reading the metric noise table
    clock_start: int  # seconds since midnight of ``date``
    date: str

    @property
    def cause(self) -> str:
        """``"family@root"``, e.g. ``"connection_pool_exhaustion@payment-service"``: what results are broken down by."""
        return f"{self.family.name}@{self.root}"

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
        """The aspect an investigation of the root needs to reveal the cause (hard task only).

        In the hard task every root answers only the question its fault calls for (memory for a
        leak, database for a pool or the database itself, upstream for a rate limit), so the
        question is part of the skill: a pointer from a hypothesis site says which one to ask next.
        """
        if self.hypothesis is not None:
            return self.family.aspect
        return None

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
_PAYMENT = "payment-service"
_HARD_SITES = ("db-primary", "fraud-service", "queue-worker", "stripe-api")
"""Where the hard task's fault may sit besides payment-service, or its evidence shows."""
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
_CATALOG_INDEX = {name: i for i, name in enumerate(SERVICE_NAMES)}
_CALLS = {name: service.calls for name, service in SERVICES.items()}
_HYPOTHESIS_ORDER = tuple(sorted(Hypothesis, key=lambda h: h.value))
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

    __slots__ = ("uniform",)

    def __init__(self, rng: np.random.Generator, count: int = 64):
        def more():
            while True:
                yield from rng.random(64).tolist()

        self.uniform = itertools.chain(rng.random(count).tolist(), more()).__next__

    def index(self, n: int) -> int:
        """A uniform integer in ``[0, n)``.

        ``uniform()`` is at most 1 - 2**-53, so the product rounds below ``n``
        for any ``n`` under 2**52.
        """
        return int(self.uniform() * n)

    def sample(self, items: list, k: int) -> list:
        """``k`` distinct items of ``items`` (which it consumes), in draw order."""
        return [items.pop(int(self.uniform() * len(items))) for _ in range(min(k, len(items)))]

    def shuffled(self, items) -> tuple:
        """The items in a uniformly random order (Fisher-Yates)."""
        out = list(items)
        uniform = self.uniform
        for i in range(len(out) - 1, 0, -1):
            j = int(uniform() * (i + 1))
            out[i], out[j] = out[j], out[i]
        return tuple(out)

def _draw_artifacts(draws: _Draws, root: str) -> dict[str, str]:
    # Four uniforms give 4 x 52 random bits; each artifact takes its share by mixed-radix digits.
    scale = 1 << 52
    a, b, c, d = (int(draws.uniform() * scale) for _ in range(4))
    return {
        "deploy": f"deploy-{10000 + a % 90000}",
        "flag": f"ff_{_FLAG_WORDS[a // 90000 % len(_FLAG_WORDS)]}",
        "canary": f"canary-{_CANARY_WORDS[a // 720000 % len(_CANARY_WORDS)]}-{1 + a // 5760000 % 9}",
        "pid": str(1000 + b % 60000),
        "shard": f"shard-{b // 60000 % 24}",
        "cert": f"cert-{root.split('-')[0]}-{100 + b // 1440000 % 900}",
        "port": str(8443 + c % 500),
        "count": str(100 * (2 + c // 500 % 8)),
        "heap": f"{3 + c // 4000 % 3}.{c // 12000 % 10}",
        "restarts": str(3 + c // 120000 % 9),
        "ms": str(200 + c // 1080000 % 1800),
        "gc_ms": str(150 + d % 900),
        "query_ms": str(300 + d // 900 % 1500),
        "upstream_ms": str(400 + d // 1350000 % 2000),
    }


def _path_to_root(draws: _Draws, root: str, length: int) -> list[tuple[str, str]]:
    """Callers that the fault cascades to: (service, its dependency toward the root)."""
    path: list[tuple[str, str]] = []
    frontier = [root]
    seen = {root}
    while len(path) < length and frontier:
        callee = frontier.pop(0)
        callers = [c for c in CALLERS[callee] if c not in seen]
        for caller in draws.sample(callers, length - len(path)):
            path.append((caller, callee))
            seen.add(caller)
            frontier.append(caller)
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
    next_hop: dict[str, str] = {}  # insertion order is nearest-the-root first
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
        # Every site, the true root among them, starts alike: only investigation tells them apart.
        hypothesis = family.hypothesis
        for service in _HARD_SITES:
            roles.setdefault(service, Role.SITE)
            badness[service] = 0.05 + 0.3 * draws.uniform()
        roles.setdefault(_PAYMENT, Role.PATH)
        badness[_PAYMENT] = 0.45
        roles["checkout-service"], next_hop["checkout-service"] = Role.PATH, _PAYMENT
        badness["checkout-service"] = 0.5

    candidates = [s for s in _DECOY_POOL if s not in roles]
    red_herrings = 1 if task is TaskId.CASCADING_FAILURE else 0
    n_decoys = max(0, min(n_decoys, MAX_SERVICES - len(roles) - red_herrings))  # as many as there is room for
    picks = draws.sample(candidates, red_herrings + n_decoys)
    red_herring = picks[0] if red_herrings else None
    for service in picks[red_herrings:]:
        roles[service], badness[service] = Role.DECOY, 0.02
    if red_herring is not None:
        # As alarming as the real cascade, or more: metrics alone must not settle where to look.
        roles[red_herring], badness[red_herring] = Role.RED_HERRING, 0.35 + 0.4 * draws.uniform()
    services = draws.shuffled(roles)  # dict order is insertion order: deterministic
    index = {name: i for i, name in enumerate(services)}
    driver = _PAYMENT if task is TaskId.AMBIGUOUS_PAYMENT_DEGRADATION else root
    hops = {root: 0, driver: 0 if driver == root else 1}
    for service, callee in next_hop.items():
        hops[service] = hops[callee] + 1

    edges = [(index[a], index[b]) for a in services for b in _CALLS[a] if b in index]
    if task is TaskId.CASCADING_FAILURE:
        edges = [e for e in edges if draws.uniform() >= 0.25]
        a, b = draws.sample(list(range(len(services))), 2)
        if (a, b) not in edges and (b, a) not in edges:
            edges.append((a, b))
    edges.sort()

    teams = draws.shuffled(TEAM_NAMES)
    busy = tuple(draws.uniform() < 0.2 for _ in teams)
    severity = 0 if draws.uniform() < 0.15 else (2 if task is TaskId.SINGLE_SERVICE_OUTAGE else 1)

    hypotheses: tuple[str, ...] = ()
    if hypothesis is not None:
        hypotheses = draws.shuffled(h.value for h in _HYPOTHESIS_ORDER)

    logs = _initial_logs(draws, task, family, root, services, roles, red_herring, artifacts, log_noise)
    if task is TaskId.SINGLE_SERVICE_OUTAGE:
        description = f"{root} is failing health checks and users see errors"
    elif task is TaskId.CASCADING_FAILURE:
        # The ticket names every alerting service, the red herring among them.
        alerting = sorted(s for s in services if roles[s] in (Role.PATH, Role.RED_HERRING))
        description = f"alerts firing on {', '.join(alerting)}; customer-facing errors rising"
    else:
        description = "payment-service degraded: charge latency and failure rate rising"
    listed_roles, listed_hops, listed_next, listed_badness, catalog_index = [], [], [], [], []
    for name in services:
        listed_roles.append(roles[name])
        listed_hops.append(hops.get(name, 0))
        listed_next.append(next_hop.get(name, ""))
        listed_badness.append(badness[name])
        catalog_index.append(_CATALOG_INDEX[name])
    return Incident(
        task=task,
        description=description,
        family=family,
        root=root,
        driver=driver,
        services=services,
        roles=tuple(listed_roles),
        next_hop=tuple(listed_next),
        path=tuple((index[s], index[c]) for s, c in next_hop.items()),
        hops=tuple(listed_hops),
        catalog_index=tuple(catalog_index),
        edges=tuple(edges),
        artifacts=artifacts,
        teams=teams,
        busy=busy,
        severity=severity,
        hypotheses=hypotheses,
        hypothesis=hypothesis,
        initial_badness=tuple(listed_badness),
        initial_logs=logs,
        log_noise=log_noise,
        noise_row=draws.index(NOISE_ROWS),
        # Between 01:00 and 22:00, so that no episode's log stamps cross midnight.
        clock_start=3600 + draws.index(21 * 3600),
        date=f"2026-{1 + draws.index(12):02d}-{1 + draws.index(28):02d}",
    )


def _initial_logs(draws, task, family, root, services, roles, red_herring, artifacts, log_noise):
    fields = dict(artifacts)

    def fill(template: str, service: str) -> str:
        fields["service"] = service
        return template.format_map(fields)

    lines: list[str] = []
    path = [s for s in services if roles[s] is Role.PATH]
    if task is TaskId.SINGLE_SERVICE_OUTAGE:
        lines.append(fill(family.alert, root))
        lines += [fill(_CALLER_ALERTS[0], s) for s in path]
    elif task is TaskId.CASCADING_FAILURE:
        for k, service in enumerate(path):
            lines.append(fill(_CALLER_ALERTS[k % len(_CALLER_ALERTS)], service))
        pick = draws.index(len(_RED_HERRING_LINES))
        lines.append(fill(_RED_HERRING_LINES[pick], red_herring))
    else:
        lines.append("ERROR payment-service: p99 latency 2.4s, charge failures rising")
        lines += [HYPOTHESES[h].clue.format_map(fields) for h in _HYPOTHESIS_ORDER]
        lines.append(fill(_CALLER_ALERTS[0], "checkout-service"))
    bystanders = [s for s in services if roles[s] is Role.DECOY]
    if bystanders:
        for draw in (draws.uniform(), draws.uniform()):
            if draw < log_noise:
                template = _NOISE_LINES[int(draw * 1000) % len(_NOISE_LINES)]
                lines.append(fill(template, bystanders[int(draw * 97) % len(bystanders)]))
    return draws.shuffled(lines)


