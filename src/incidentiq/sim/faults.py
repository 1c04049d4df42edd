"""Fault families as data.

A family says where it can start (``roots``), what an investigation of the
root reveals (``evidence``), what it looks like from a caller (``symptom``),
which fixes end it (``full_fixes``) or only relieve it (``partial_fixes``) and,
for the hard task, which hypothesis it belongs to. Adding a family is adding
one entry to ``FAMILIES`` (and, if it needs one, an artifact kind).

Templates are ``str.format`` strings over ``service`` and the artifacts drawn
for the episode (see ``ARTIFACT_KEYS``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from incidentiq.sim.commands import Aspect, Fix


class Hypothesis(str, enum.Enum):
    """The competing explanations of the hard task."""

    DB_OVERLOAD = "db_overload"
    RATE_LIMIT = "rate_limit"
    MEMORY_LEAK = "memory_leak"


@dataclass(frozen=True)
class FaultFamily:
    """One kind of failure, with its own evidence and fixes."""

    name: str
    title: str
    roots: tuple[str, ...]
    aspect: Aspect
    alert: str
    evidence: tuple[str, ...]
    symptom: str
    full_fixes: tuple[Fix, ...]
    partial_fixes: tuple[Fix, ...] = ()
    hypothesis: Hypothesis | None = None
    growth_per_minute: float = 0.03


ARTIFACT_KEYS = ("deploy", "flag", "canary", "pid", "shard", "cert", "port", "count", "heap", "restarts", "ms",
                 "gc_ms", "query_ms", "upstream_ms")
"""Artifacts drawn for every episode; templates may use any of them."""

FIX_ARTIFACT: dict[Fix, str] = {
    Fix.ROLLBACK: "deploy",
    Fix.DISABLE_FLAG: "flag",
    Fix.DISABLE_CANARY: "canary",
    Fix.KILL_QUERY: "pid",
    Fix.REBUILD_INDEX: "shard",
    Fix.RENEW_CERT: "cert",
}
"""The artifact a fix may name (``rollback deploy-48213``). Naming a wrong one makes the fix miss."""


FAMILIES: tuple[FaultFamily, ...] = (
    FaultFamily(
        name="connection_pool_exhaustion",
        title="requests timing out waiting for database connections",
        roots=("inventory-service", "order-service", "payment-service", "queue-worker", "user-service"),
        aspect=Aspect.DATABASE,
        alert="ERROR {service}: HikariPool-1 - connection is not available, request timed out after 30000ms",
        evidence=(
            "ERROR {service}: connection pool exhausted (active={count}/{count}, waiting={ms})",
            "WARN {service}: {restarts} retries failing: timeout waiting for connection from pool",
        ),
        symptom="timeouts waiting on {target}",
        full_fixes=(Fix.RESTART, Fix.INCREASE_POOL),
        hypothesis=Hypothesis.DB_OVERLOAD,
    ),
    FaultFamily(
        name="bad_config_deploy",
        title="errors after a configuration deploy",
        roots=("api-gateway", "auth-service", "config-service"),
        aspect=Aspect.DEPLOYS,
        alert="ERROR {service}: config reload failed validation after {deploy}",
        evidence=(
            "INFO deploy-bot: {deploy} rolled out to {service}, feature flag {flag} enabled",
            "ERROR {service}: {flag} code path raising NullPointerException since {deploy}",
        ),
        symptom="bad responses from {target} since a config change",
        full_fixes=(Fix.ROLLBACK, Fix.DISABLE_FLAG),
        partial_fixes=(Fix.RESTART,),
        growth_per_minute=0.05,
    ),
    FaultFamily(
        name="memory_leak",
        title="pods restarting under memory pressure",
        roots=("checkout-service", "fraud-service", "notification-svc", "order-service",
               "payment-service", "queue-worker", "recommendation-service", "user-service"),
        aspect=Aspect.MEMORY,
        alert="CRIT {service}: container OOMKilled (exit code 137), restart count {restarts}",
        evidence=(
            "WARN {service}: heap grew from 1.1GiB to {heap}GiB since {deploy}",
            "CRIT {service}: container OOMKilled (exit code 137), restart count {restarts}",
        ),
        symptom="connection resets from {target} (pods restarting)",
        full_fixes=(Fix.ROLLBACK,),
        partial_fixes=(Fix.RESTART, Fix.INCREASE_MEMORY),
        hypothesis=Hypothesis.MEMORY_LEAK,
    ),
    FaultFamily(
        name="certificate_expiry",
        title="TLS handshakes failing",
        roots=("api-gateway", "auth-service", "checkout-service", "payment-service", "user-service"),
        aspect=Aspect.CERTIFICATES,
        alert="ERROR {service}: x509: certificate has expired ({cert})",
        evidence=(
            "ERROR {service}: x509: certificate {cert} has expired",
            "ERROR {service}: TLS handshake failed on port {port}: certificate expired",
        ),
        symptom="TLS handshake failures calling {target}",
        full_fixes=(Fix.RENEW_CERT,),
        growth_per_minute=0.06,
    ),
    FaultFamily(
        name="upstream_rate_limiting",
        title="upstream provider rejecting requests",
        roots=("fraud-service", "payment-service", "queue-worker"),
        aspect=Aspect.UPSTREAM,
        alert="ERROR {service}: stripe-api returned 429 Too Many Requests ({count} in 1m)",
        evidence=(
            "ERROR {service}: stripe-api returned 429 Too Many Requests ({count} in the last minute)",
            "WARN {service}: retry storm: {restarts}x retries per request without backoff",
        ),
        symptom="slow responses from {target} (upstream retries)",
        full_fixes=(Fix.THROTTLE,),
        hypothesis=Hypothesis.RATE_LIMIT,
    ),
    FaultFamily(
        name="database_degradation",
        title="database saturated",
        roots=("db-primary", "db-replica"),
        aspect=Aspect.DATABASE,
        alert="CRIT {service}: FATAL: sorry, too many clients already (max_connections={count})",
        evidence=(
            "CRIT {service}: FATAL: too many clients already (max_connections={count})",
            "ERROR {service}: long-running query pid {pid} holding locks for 612s, deadlock detected",
        ),
        symptom="query timeouts against {target}",
        full_fixes=(Fix.KILL_QUERY, Fix.FAILOVER),
        hypothesis=Hypothesis.DB_OVERLOAD,
    ),
    FaultFamily(
        name="search_index_corruption",
        title="search results failing",
        roots=("indexer", "search-service"),
        aspect=Aspect.DEPLOYS,
        alert="ERROR {service}: CorruptIndexException in {shard}: checksum mismatch",
        evidence=(
            "ERROR {service}: CorruptIndexException in {shard}: checksum mismatch",
            "WARN {service}: {shard} marked unassigned, queries failing over",
        ),
        symptom="failed queries from {target}",
        full_fixes=(Fix.REBUILD_INDEX,),
        partial_fixes=(Fix.PURGE_CACHE,),
    ),
    FaultFamily(
        name="canary_regression",
        title="regression after a canary rollout",
        roots=("checkout-service", "inventory-service", "order-service", "recommendation-service",
               "search-service", "user-service"),
        aspect=Aspect.DEPLOYS,
        alert="ERROR {service}: canary {canary} error budget burn 14x since {deploy}",
        evidence=(
            "INFO deploy-bot: canary {canary} enabled on {service} with {deploy}",
            "ERROR {service}: p99 regression on canary {canary}: 5xx rate up since {deploy}",
        ),
        symptom="5xx responses from {target}",
        full_fixes=(Fix.ROLLBACK, Fix.DISABLE_CANARY),
        partial_fixes=(Fix.RESTART,),
    ),
)

FAMILY_BY_NAME: dict[str, FaultFamily] = {family.name: family for family in FAMILIES}

TEST_COMBOS: frozenset[tuple[str, str]] = frozenset(
    {
        ("connection_pool_exhaustion", "payment-service"),
        ("bad_config_deploy", "auth-service"),
        ("memory_leak", "order-service"),
        ("memory_leak", "fraud-service"),
        ("certificate_expiry", "user-service"),
        ("upstream_rate_limiting", "queue-worker"),
        ("database_degradation", "db-replica"),
        ("search_index_corruption", "indexer"),
        ("canary_regression", "inventory-service"),
    }
)
"""(family, root service) pairs that only ``split="test"`` produces.

One root per family (two for memory_leak, the family with the most roots):
9 of the 34 combinations, about a quarter. The hard task keeps every
hypothesis and family in both splits: its test incidents are pool exhaustion
in payment-service, rate limiting in queue-worker and a leak in fraud-service.
"""

HARD_COMBOS: tuple[tuple[str, str], ...] = (
    ("connection_pool_exhaustion", "payment-service"),
    ("connection_pool_exhaustion", "queue-worker"),
    ("database_degradation", "db-primary"),
    ("memory_leak", "fraud-service"),
    ("memory_leak", "payment-service"),
    ("memory_leak", "queue-worker"),
    ("upstream_rate_limiting", "fraud-service"),
    ("upstream_rate_limiting", "payment-service"),
    ("upstream_rate_limiting", "queue-worker"),
)
"""The causes of the hard task's payment degradation.

Every family here has a root in the train split, so the held-out incidents
(the pairs in ``TEST_COMBOS``) ask for known evidence at a new root. Leaks
and rate limits have train roots both in payment-service and in one of its
dependencies, so "fix payment-service" is not a rule that fits the train
split. Pool exhaustion's only train root is queue-worker: its held-out root,
payment-service, is the one service whose train faults never call for a
restart or a bigger pool, and whose database never shows a root in train.
"""

@dataclass(frozen=True)
class HypothesisEvidence:
    """Where and how a hard-task hypothesis is confirmed or ruled out.

    ``site`` is the service that settles it (for a memory leak, payment-service
    itself, asked about ``aspect``); payment-service answers questions about
    ``aspect`` too. Templates may use ``{root}`` and the episode's artifacts.
    """

    site: str
    aspect: Aspect
    clue: str  # shallow: in the first alerts whether or not the hypothesis is true
    ruled_out: str  # at the site, when the hypothesis is false
    site_pointer: str  # at the site, when true but the fault sits in {root}
    payment_ruled_out: str = ""  # payment-service asked about ``aspect``, when false (default: as the site)
    payment_pointer: str = ""  # payment-service asked about ``aspect``, when true but the fault sits elsewhere

    def __post_init__(self):
        # When the site is payment-service itself, what it answers is what the site says.
        object.__setattr__(self, "payment_ruled_out", self.payment_ruled_out or self.ruled_out)
        object.__setattr__(self, "payment_pointer", self.payment_pointer or self.site_pointer)


HYPOTHESES: dict[Hypothesis, HypothesisEvidence] = {
    Hypothesis.DB_OVERLOAD: HypothesisEvidence(
        site="db-primary",
        aspect=Aspect.DATABASE,
        clue="WARN payment-service: slow query on payments table ({query_ms}ms)",
        ruled_out="INFO db-primary: 41/{count} connections in use, no blocking queries, replication lag 0s",
        payment_ruled_out="INFO payment-service: connection pool healthy (12/50 in use), query times normal",
        site_pointer="WARN db-primary: connections normal, but {root} clients time out waiting on their pool",
        payment_pointer="WARN payment-service: queries to {root} blocked waiting on locks",
    ),
    Hypothesis.RATE_LIMIT: HypothesisEvidence(
        site="stripe-api",
        aspect=Aspect.UPSTREAM,
        clue="WARN payment-service: stripe-api p99 latency elevated ({upstream_ms}ms)",
        ruled_out="INFO stripe-api: no 429 responses in the last 15m, p99 within contract",
        payment_ruled_out="INFO payment-service: stripe-api calls succeed, no 429 responses",
        site_pointer="ERROR stripe-api: 429 Too Many Requests for client {root} ({count} in the last minute)",
        payment_pointer="WARN payment-service: capture jobs on {root} failing with 429 from stripe-api",
    ),
    Hypothesis.MEMORY_LEAK: HypothesisEvidence(
        site="payment-service",
        aspect=Aspect.MEMORY,
        clue="WARN payment-service: GC pause {gc_ms}ms (young gen)",
        ruled_out="INFO payment-service: heap stable at 1.1GiB of 4GiB, 0 restarts",
        site_pointer="WARN payment-service: heap stable, but calls to {root} are reset (pods restarting)",
    ),
}
"""The hard task's three hypotheses: each has one shallow clue and one place that settles it."""
