"""Blind strategies: agents that never read the logs, used to check the grader's invariants.

Each has ``reset(obs, info)`` and ``act(obs, info) -> str`` like the agents in
``incidentiq.agents``. They may read the names an observation lists (services,
roster teams) but none of the evidence, so a grade above the spec's 0.20 bound
means the grader rewards something other than diagnosis.
"""

from __future__ import annotations

import itertools

from incidentiq.sim.commands import Fix

VERB_WORDS = ("investigate", "assign to", "mitigate:", "escalate", "resolve")
GENERIC_SCRIPT = (
    "investigate payment-service",
    "assign to payments-oncall",
    "mitigate: restart payment-service",
    "resolve",
)


class KeywordStuffingAgent:
    """Every command names every fix word, every listed service and every roster team, cycling verbs."""

    name = "keyword_stuffing"

    def reset(self, obs: dict, info: dict) -> None:
        words = [fix.value for fix in Fix] + list(obs["affected_services"]) + list(obs["team_roster"]["teams"])
        self.tail = " ".join(words)
        self.verbs = itertools.cycle(VERB_WORDS)

    def act(self, obs: dict, info: dict) -> str:
        return f"{next(self.verbs)} {self.tail}"


class SpamAgent:
    """Alternates resolve and escalate, whatever happens."""

    name = "resolve_escalate_spam"

    def reset(self, obs: dict, info: dict) -> None:
        self.commands = itertools.cycle(("resolve", "escalate"))

    def act(self, obs: dict, info: dict) -> str:
        return next(self.commands)


class InvestigateEverythingAgent:
    """Investigates every listed service, then applies every fix to every listed service in turn.

    ``order="by_fix"`` tries one fix on every service before the next fix; ``"by_service"`` tries
    every fix on one service before the next service.
    """

    name = "investigate_then_fix_everything"

    def __init__(self, order: str = "by_fix"):
        if order not in ("by_fix", "by_service"):
            raise ValueError(f"order must be 'by_fix' or 'by_service', got {order!r}")
        self.order = order

    def reset(self, obs: dict, info: dict) -> None:
        services = list(obs["affected_services"])
        if self.order == "by_fix":
            pairs = [(fix, service) for fix in Fix for service in services]
        else:
            pairs = [(fix, service) for service in services for fix in Fix]
        self.commands = [f"investigate {service}" for service in services]
        self.commands += [f"mitigate: {fix.value} {service}" for fix, service in pairs]

    def act(self, obs: dict, info: dict) -> str:
        return self.commands.pop(0) if self.commands else "resolve"


class ScriptAgent:
    """Replays the same commands on every episode, then keeps resolving."""

    name = "fixed_script"

    def __init__(self, commands, name: str = "fixed_script"):
        self.script = tuple(commands)
        self.name = name

    def reset(self, obs: dict, info: dict) -> None:
        self.commands = list(self.script)

    def act(self, obs: dict, info: dict) -> str:
        return self.commands.pop(0) if self.commands else "resolve"
