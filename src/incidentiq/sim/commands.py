"""Structured commands: what the parser produces and the dynamics consume."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verb(str, enum.Enum):
    """The five things a responder can do."""

    INVESTIGATE = "investigate"
    ASSIGN = "assign"
    MITIGATE = "mitigate"
    ESCALATE = "escalate"
    RESOLVE = "resolve"


class Aspect(str, enum.Enum):
    """What an investigation looks at. ``None`` means a general look."""

    MEMORY = "memory"
    DATABASE = "database"
    UPSTREAM = "upstream"
    DEPLOYS = "deploys"
    CERTIFICATES = "certificates"


class Fix(str, enum.Enum):
    """Remediations. A fault family lists which of these fix it fully or partly."""

    RESTART = "restart"
    ROLLBACK = "rollback"
    DISABLE_FLAG = "disable-flag"
    INCREASE_POOL = "increase-pool"
    INCREASE_MEMORY = "increase-memory"
    RENEW_CERT = "renew-cert"
    THROTTLE = "throttle"
    KILL_QUERY = "kill-query"
    FAILOVER = "failover"
    REBUILD_INDEX = "rebuild-index"
    PURGE_CACHE = "purge-cache"
    DISABLE_CANARY = "disable-canary"


MINUTES: dict[Verb, int] = {
    Verb.INVESTIGATE: 2,
    Verb.ASSIGN: 1,
    Verb.MITIGATE: 3,
    Verb.ESCALATE: 1,
    Verb.RESOLVE: 1,
}
"""Simulated minutes each command takes. Invalid commands cost one minute."""

INVALID_MINUTES = 1


@dataclass(frozen=True)
class Command:
    """One parsed intent.

    ``service`` and ``team`` are plain names: whether they exist in the
    current incident is decided by the dynamics, not the parser.
    """

    verb: Verb
    service: str | None = None
    team: str | None = None
    fix: Fix | None = None
    aspect: Aspect | None = None
    artifact: str | None = None

    @property
    def text(self) -> str:
        """The canonical text of the command; parsing it gives the same command."""
        verb = self.verb
        if verb is Verb.INVESTIGATE:
            return f"investigate {self.service} {self.aspect.value}" if self.aspect else f"investigate {self.service}"
        if verb is Verb.ASSIGN:
            return f"assign to {self.team}"
        if verb is Verb.MITIGATE:
            parts = ["mitigate:", self.fix.value]
            if self.service:
                parts.append(self.service)
            if self.artifact:
                parts.append(self.artifact)
            return " ".join(parts)
        return verb.value

    @property
    def minutes(self) -> int:
        """Simulated minutes this command takes."""
        return MINUTES[self.verb]
