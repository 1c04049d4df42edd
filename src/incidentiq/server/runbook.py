"""Generic diagnostic steps for ``GET /runbook``.

Everything here comes from the static catalog and the command grammar, never
from an episode: the runbook of a service is the same whether or not that
service is the root of the incident being played, so it cannot leak the answer.
"""

from __future__ import annotations

from typing import Any

from incidentiq.sim.catalog import SERVICE_NAMES
from incidentiq.sim.commands import Aspect, Fix
from incidentiq.sim.faults import FAMILIES, FIX_ARTIFACT

ASPECT_FOCUS: dict[Aspect, str] = {
    Aspect.MEMORY: "heap usage, garbage-collection pauses, OOM kills and pod restarts",
    Aspect.DATABASE: "connection pools, slow or blocking queries, replication",
    Aspect.UPSTREAM: "calls to external providers: 429 responses, rate limits, upstream latency",
    Aspect.DEPLOYS: "recent deploys, config changes, feature flags, canaries and index builds",
    Aspect.CERTIFICATES: "TLS certificates and handshake failures",
}
"""What an investigation with each aspect looks at."""

STEPS: tuple[str, ...] = (
    "Read the alerts and metrics: which listed services are down or degraded, and which only look alarming.",
    "Follow the observed dependencies from the alerting callers toward their callees; fixing a caller whose "
    "dependency failed does nothing.",
    "Investigate a suspect ('investigate <service>'): it shows the service's findings, its owner and its "
    "dependencies. Ask one aspect at a time ('investigate <service> <aspect>') when several causes fit.",
    "Route the incident to the team that owns the failing service ('assign to <team>'); escalate if that team "
    "is busy or the incident is P0.",
    "Apply one fix that matches the evidence to the failing service, naming the artifact the evidence shows "
    "(deploy id, flag, canary, pid, shard or certificate) when the fix takes one.",
    "Resolve once the metrics show recovery; resolving early is penalized.",
)
"""The generic procedure, in order."""


def _fix_scope(fix: Fix) -> str:
    full = [family.title for family in FAMILIES if fix in family.full_fixes]
    partial = [family.title for family in FAMILIES if fix in family.partial_fixes]
    parts = []
    if full:
        parts.append("fixes " + "; ".join(full))
    if partial:
        parts.append("mitigates " + "; ".join(partial))
    return ", and ".join(parts) or "no known fault"


def known_service(name: str) -> str | None:
    """The catalog name of ``name`` (any case), or ``None`` if the catalog has no such service."""
    key = name.strip().casefold()
    return next((service for service in SERVICE_NAMES if service == key), None)


def runbook(service: str | None = None) -> dict[str, Any]:
    """The runbook for ``service`` (a catalog name) or, with ``None``, for any service.

    >>> book = runbook("auth-service")
    >>> book["aspects"][0]["command"]
    'investigate auth-service memory'
    >>> len(runbook("db-primary")["fixes"]), runbook()["fixes"][0]["command"]
    (12, 'mitigate: restart <service>')
    """
    target = service if service is not None else "<service>"
    return {
        "service": service,
        "steps": list(STEPS),
        "aspects": [
            {
                "aspect": aspect.value,
                "command": f"investigate {target} {aspect.value}",
                "looks_at": ASPECT_FOCUS[aspect],
            }
            for aspect in Aspect
        ],
        "fixes": [
            {
                "fix": fix.value,
                "command": f"mitigate: {fix.value} {target}"
                + (f" <{FIX_ARTIFACT[fix]}>" if fix in FIX_ARTIFACT else ""),
                "addresses": _fix_scope(fix),
                "artifact": FIX_ARTIFACT.get(fix),
            }
            for fix in Fix
        ],
    }
