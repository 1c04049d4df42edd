"""Free text to one ``Command``.

The first line of the text is the command; further lines are reasoning and are
never read for commands. Words are matched case-insensitively against a phrase
table (longest phrase first), so people can type what they would type
("roll back", "look at", "hand off to", with or without ``mitigate:``).

A command must carry one intent: two verbs, two fixes, two services or two
teams make it ambiguous, and it is rejected with feedback saying why. That
rule is what makes stuffing every keyword into one command useless.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import lru_cache

from incidentiq.sim.catalog import SERVICE_NAMES, TEAM_NAMES
from incidentiq.sim.commands import Aspect, Command, Fix, Verb
from incidentiq.sim.faults import FIX_ARTIFACT

MAX_ACTION_LENGTH = 1024
"""Longer actions are truncated to this many characters before parsing."""

_VERB, _FIX, _ASPECT, _SERVICE, _TEAM, _WORD = "verb", "fix", "aspect", "service", "team", "word"
_MITIGATE_MARK = "mitigate-mark"
_DISABLE = "disable"

_PHRASES: dict[str, list[tuple[str, object]]] = {}


def _add(category: str, value: object, *phrases: str) -> None:
    for phrase in phrases:
        _PHRASES.setdefault(phrase, []).append((category, value))


_add(_VERB, Verb.INVESTIGATE, "investigate", "check", "inspect", "examine", "diagnose", "debug",
     "analyze", "analyse", "look at", "look into", "look", "view", "dig into", "show", "probe")
_add(_VERB, Verb.ASSIGN, "assign", "route", "hand off", "handoff", "hand over", "transfer",
     "delegate", "reassign")
_add(_VERB, Verb.ESCALATE, "escalate", "raise severity", "bump severity", "page secondary",
     "page", "sev up")
_add(_VERB, Verb.RESOLVE, "resolve", "resolved", "close", "close incident", "mark resolved")
_add(_MITIGATE_MARK, None, "mitigate", "mitigation", "fix", "apply", "remediate")
_add(_FIX, Fix.RESTART, "restart", "reboot", "bounce", "recycle", "restart pods")
_add(_FIX, Fix.ROLLBACK, "rollback", "roll back", "revert", "undo deploy", "roll-back")
_add(_FIX, Fix.DISABLE_FLAG, "disable-flag", "disable flag", "disable feature flag",
     "turn off flag", "turn off feature flag", "flip off flag")
_add(_FIX, Fix.INCREASE_POOL, "increase-pool", "increase pool", "raise pool", "pool size",
     "increase connection pool", "raise connection pool", "bigger pool", "bump pool",
     "increase max connections", "scale pool")
_add(_FIX, Fix.INCREASE_MEMORY, "increase-memory", "increase memory", "raise memory",
     "memory limit", "bump memory", "more memory", "add memory", "increase heap", "scale memory")
_add(_FIX, Fix.RENEW_CERT, "renew-cert", "renew", "rotate", "renew cert", "renew certificate",
     "rotate cert", "rotate certificate", "replace certificate", "replace cert", "renew tls")
_add(_FIX, Fix.THROTTLE, "throttle", "enable backoff", "backoff", "add backoff", "reduce rate",
     "throttle requests", "slow down requests")
_add(_FIX, Fix.KILL_QUERY, "kill-query", "kill query", "kill", "terminate query", "cancel query",
     "kill blocking query")
_add(_FIX, Fix.FAILOVER, "failover", "fail over", "promote replica", "scale database", "scale db",
     "scale up database", "scale up db")
_add(_FIX, Fix.REBUILD_INDEX, "rebuild-index", "rebuild index", "rebuild", "reindex", "rebuild shard")
_add(_FIX, Fix.PURGE_CACHE, "purge-cache", "purge cache", "purge", "flush cache", "clear cache",
     "invalidate cache")
_add(_FIX, Fix.DISABLE_CANARY, "disable-canary", "disable canary", "halt canary", "stop canary",
     "abort canary", "pause canary")
_add(_DISABLE, None, "disable", "turn off")
_add(_ASPECT, Aspect.MEMORY, "memory", "heap", "oom", "gc")
_add(_ASPECT, Aspect.DATABASE, "database", "db", "connections", "connection", "pool", "queries", "sql")
_add(_ASPECT, Aspect.UPSTREAM, "upstream", "rate", "rate limit", "429", "upstreams", "rate-limit")
_add(_ASPECT, Aspect.DEPLOYS, "deploys", "deploy", "deployments", "releases", "changes", "config",
     "flags", "canary")
_add(_ASPECT, Aspect.CERTIFICATES, "certificates", "certificate", "cert", "certs", "tls", "ssl")
_add(_WORD, "flag", "flag", "feature flag")
_add(_WORD, "canary", "canary")
for _name in SERVICE_NAMES:
    _add(_SERVICE, _name, _name, _name.replace("-", " "))
_add(_SERVICE, "notification-svc", "notification-service", "notification service")
_add(_SERVICE, "stripe-api", "stripe")
for _team in TEAM_NAMES:
    _add(_TEAM, _team, _team, _team.replace("-", " "))
_add(_TEAM, "payments-oncall", "payments")

_LONGEST = max(len(p.split()) for p in _PHRASES)
_TABLE = {tuple(p.split()): matches for p, matches in _PHRASES.items()}
_FILLER = frozenset(
    "the a an to for on in of its it please now with and then from by size pods pod "
    "team incident this that our".split()
)
_ARTIFACT_KINDS = {
    "deploy": re.compile(r"deploy-\d+"),
    "flag": re.compile(r"ff_[a-z0-9_]+"),
    "canary": re.compile(r"canary-[a-z]+-\d+"),
    "pid": re.compile(r"\d{3,}"),
    "shard": re.compile(r"shard-\d+"),
    "cert": re.compile(r"cert-[a-z]+-\d+"),
}
_ARTIFACT = re.compile("|".join(p.pattern for p in _ARTIFACT_KINDS.values()))
_TOKEN = re.compile(r"[a-z0-9_\-]+")
_SERVICE_LIKE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")


@dataclass(frozen=True)
class ParseResult:
    """A command, or ``None`` with ``error`` saying why the text was rejected.

    ``canonical`` is the command's canonical text ("" when rejected).
    """

    command: Command | None
    error: str = ""
    reasoning: str = ""
    canonical: str = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "canonical", self.command.text if self.command is not None else "")


def normalize(text: str) -> str:
    """NFKC-normalize, drop what is not ASCII and truncate to ``MAX_ACTION_LENGTH``."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).encode("ascii", "ignore").decode("ascii")
    return text[:MAX_ACTION_LENGTH]


def parse(text: str) -> ParseResult:
    """Parse one action.

    >>> parse("Roll back auth-service deploy-12345").command.text
    'mitigate: rollback auth-service deploy-12345'
    >>> parse("check payment-service memory\\nheap keeps growing").command.text
    'investigate payment-service memory'
    >>> parse("restart auth-service and rollback user-service").error
    'One intent per command: it names 2 services (auth-service, user-service).'
    """
    if not isinstance(text, str):
        raise TypeError(f"an action must be a str, got {type(text).__name__}")
    if not text.isascii() or len(text) > MAX_ACTION_LENGTH:  # else normalizing changes nothing: skip the call
        text = normalize(text)
    first, _, rest = text.partition("\n")
    result = _parse_line(first)
    reasoning = rest.strip()
    return replace(result, reasoning=reasoning) if reasoning else result


@lru_cache(maxsize=16384)
def _parse_line(first: str) -> ParseResult:
    """Parse a command line (pure, so cached: agents repeat themselves)."""
    tokens = [t for t in _TOKEN.findall(first.lower()) if t not in _FILLER]
    if not tokens:
        return ParseResult(None, "Empty command. Try: investigate <service>.")
    found: dict[str, list[object]] = {}
    unknown: list[str] = []
    artifacts: list[str] = []
    i = 0
    while i < len(tokens):
        for size in range(min(_LONGEST, len(tokens) - i), 0, -1):
            matches = _TABLE.get(tuple(tokens[i : i + size]))
            if matches:
                for category, value in matches:
                    values = found.setdefault(category, [])
                    if value not in values:
                        values.append(value)
                i += size
                break
        else:
            token = tokens[i]
            if _ARTIFACT.fullmatch(token):
                if token not in artifacts:
                    artifacts.append(token)
            else:
                unknown.append(token)
            i += 1
    return _decide(found, unknown, artifacts)


def _names(values: list[object]) -> str:
    return ", ".join(v.value if hasattr(v, "value") else str(v) for v in values)


def _decide(found, unknown, artifacts) -> ParseResult:
    def reject(message: str) -> ParseResult:
        return ParseResult(None, message)

    verbs: list[Verb] = list(found.get(_VERB, []))
    fixes: list[Fix] = list(found.get(_FIX, []))
    if _DISABLE in found:
        words = found.get(_WORD, [])
        if "canary" in words or any(a.startswith("canary-") for a in artifacts):
            fixes.append(Fix.DISABLE_CANARY)
        elif "flag" in words or any(a.startswith("ff_") for a in artifacts):
            fixes.append(Fix.DISABLE_FLAG)
        else:
            return reject("Disable what? Name a feature flag or a canary.")
    if fixes or _MITIGATE_MARK in found:
        verbs.append(Verb.MITIGATE)
    if len(verbs) > 1:
        return reject(f"One intent per command: it mixes {_names(verbs)}.")
    if not verbs:
        return reject(
            "Unknown command. Use one of: investigate <service> [aspect], assign to <team>, "
            "mitigate: <fix> <service>, escalate, resolve."
        )
    verb = verbs[0]
    if verb is Verb.ASSIGN:
        # Any word that is not a known name may be a team the roster does not have.
        teams = found.get(_TEAM, []) or [t for t in unknown if t != "service"][:2]
        if len(teams) > 1:
            return reject(f"One intent per command: it names 2 teams ({_names(teams)}).")
        if not teams:
            return reject("Assign to which team? Name one from the team roster.")
        return ParseResult(Command(verb, team=str(teams[0])))
    services: list[str] = list(found.get(_SERVICE, []))
    if not services:
        services = [t for t in unknown if _SERVICE_LIKE.fullmatch(t)][:2]
    if len(services) > 1 and verb in (Verb.INVESTIGATE, Verb.MITIGATE):
        return reject(f"One intent per command: it names 2 services ({_names(services)}).")
    service = services[0] if services else None
    if verb is Verb.INVESTIGATE:
        if service is None:
            return reject("Investigate which service? Name one from the affected services.")
        aspects = found.get(_ASPECT, [])
        if len(aspects) > 1:
            return reject(f"Investigate one aspect at a time, not {_names(aspects)}.")
        return ParseResult(Command(verb, service=service, aspect=aspects[0] if aspects else None))
    if verb is Verb.MITIGATE:
        if len(fixes) > 1:
            return reject(f"One intent per command: it names {len(fixes)} fixes ({_names(fixes)}).")
        if not fixes:
            return reject("Mitigate how? Name one fix, e.g. 'mitigate: restart <service>'.")
        fix = fixes[0]
        if service is None:
            return reject(f"Apply {fix.value} to which service? Name exactly one.")
        kind = FIX_ARTIFACT.get(fix)
        named = [a for a in artifacts if kind and _ARTIFACT_KINDS[kind].fullmatch(a)]
        if len(named) > 1:
            return reject(f"Name at most one {kind}, not {', '.join(named)}.")
        artifact = named[0] if named else None
        return ParseResult(Command(verb, service=service, fix=fix, artifact=artifact))
    return ParseResult(Command(verb))
