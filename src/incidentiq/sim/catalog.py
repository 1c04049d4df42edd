"""The service catalog: which services exist, whom they call and who owns them.

Everything here is static data. An episode uses a subgraph of it, chosen by
the generator. Tuples (not sets) keep every iteration order stable across
processes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Team(str, enum.Enum):
    """The teams an incident can be routed to."""

    BACKEND = "backend"
    PLATFORM = "platform"
    PAYMENTS_ONCALL = "payments-oncall"
    DATABASE = "database"
    SEARCH = "search"
    IDENTITY = "identity"
    GROWTH = "growth"


class Kind(str, enum.Enum):
    """What sort of component a service is; fault families pick roots by it."""

    APP = "app"
    EDGE = "edge"
    DATA = "data"
    EXTERNAL = "external"


@dataclass(frozen=True)
class Service:
    """One entry of the catalog.

    ``calls`` are the direct dependencies: a failure in one of them propagates
    to this service. Baselines are the healthy metrics the telemetry starts from.
    """

    name: str
    team: Team
    kind: Kind
    calls: tuple[str, ...]
    tls: bool
    base_latency_ms: float
    base_throughput_rps: float


def _svc(name, team, kind, calls=(), tls=False, latency=40.0, rps=400.0) -> Service:
    return Service(name, team, kind, tuple(calls), tls, latency, rps)


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        _svc(
            "api-gateway",
            Team.PLATFORM,
            Kind.EDGE,
            ("auth-service", "user-service", "search-service", "checkout-service",
             "recommendation-service", "order-service"),
            tls=True, latency=25.0, rps=2400.0,
        ),
        _svc("auth-service", Team.IDENTITY, Kind.APP,
             ("config-service", "cache-cluster", "db-replica"), tls=True, latency=18.0, rps=1800.0),
        _svc("user-service", Team.IDENTITY, Kind.APP,
             ("db-primary", "cache-cluster", "config-service"), tls=True, latency=35.0, rps=900.0),
        _svc("checkout-service", Team.PAYMENTS_ONCALL, Kind.APP,
             ("payment-service", "order-service", "inventory-service", "auth-service"),
             tls=True, latency=120.0, rps=220.0),
        _svc("payment-service", Team.PAYMENTS_ONCALL, Kind.APP,
             ("stripe-api", "db-primary", "fraud-service", "queue-worker", "config-service"),
             tls=True, latency=180.0, rps=210.0),
        _svc("fraud-service", Team.PAYMENTS_ONCALL, Kind.APP,
             ("db-replica", "cache-cluster", "stripe-api"), latency=45.0, rps=210.0),
        _svc("order-service", Team.BACKEND, Kind.APP,
             ("db-primary", "inventory-service", "queue-worker", "payment-service"),
             latency=60.0, rps=450.0),
        _svc("inventory-service", Team.BACKEND, Kind.APP,
             ("db-primary", "cache-cluster"), latency=30.0, rps=650.0),
        _svc("search-service", Team.SEARCH, Kind.APP,
             ("indexer", "cache-cluster"), latency=70.0, rps=800.0),
        _svc("indexer", Team.SEARCH, Kind.APP, ("db-replica",), latency=300.0, rps=60.0),
        _svc("recommendation-service", Team.GROWTH, Kind.APP,
             ("search-service", "user-service", "cache-cluster"), latency=90.0, rps=500.0),
        _svc("notification-svc", Team.GROWTH, Kind.APP,
             ("queue-worker", "user-service"), latency=50.0, rps=300.0),
        _svc("queue-worker", Team.PLATFORM, Kind.APP,
             ("db-primary", "stripe-api"), latency=150.0, rps=350.0),
        _svc("config-service", Team.PLATFORM, Kind.EDGE, (), tls=True, latency=8.0, rps=1500.0),
        _svc("cache-cluster", Team.PLATFORM, Kind.DATA, (), latency=2.0, rps=6000.0),
        _svc("db-primary", Team.DATABASE, Kind.DATA, (), latency=12.0, rps=3000.0),
        _svc("db-replica", Team.DATABASE, Kind.DATA, ("db-primary",), latency=10.0, rps=2500.0),
        _svc("stripe-api", Team.PAYMENTS_ONCALL, Kind.EXTERNAL, (), tls=True, latency=220.0, rps=200.0),
    )
}

SERVICE_NAMES: tuple[str, ...] = tuple(sorted(SERVICES))
TEAM_NAMES: tuple[str, ...] = tuple(t.value for t in Team)
MAX_TEAMS = 8
"""Room in observations for the roster (the catalog has fewer teams)."""


def _callers() -> dict[str, tuple[str, ...]]:
    callers: dict[str, list[str]] = {name: [] for name in SERVICE_NAMES}
    for name in SERVICE_NAMES:
        for dep in SERVICES[name].calls:
            callers[dep].append(name)
    return {name: tuple(sorted(found)) for name, found in callers.items()}


CALLERS: dict[str, tuple[str, ...]] = _callers()
"""Reverse edges: for each service, the services that call it (sorted)."""


def owner(service: str) -> Team:
    """The team that owns ``service``."""
    return SERVICES[service].team
