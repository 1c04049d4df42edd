"""Reference agents: uniformly random over the command grammar, and the walkthrough."""

from __future__ import annotations

import numpy as np

from incidentiq.sim.catalog import TEAM_NAMES
from incidentiq.sim.commands import Aspect, Fix


class RandomAgent:
    """Draws each command uniformly from the grammar, over the names in the observation.

    A verb is drawn first, then its arguments: a listed service, a roster team,
    any fix, and an aspect half of the time.
    """

    name = "random"

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self, obs: dict, info: dict) -> None:
        """Nothing to remember between episodes."""

    def act(self, obs: dict, info: dict) -> str:
        """A uniformly drawn command over the observation's services and teams."""
        rng = self.rng
        services = list(obs["affected_services"])
        teams = list(obs["team_roster"]["teams"]) or list(TEAM_NAMES)
        verb = int(rng.integers(5))
        if verb == 0:
            service = services[int(rng.integers(len(services)))]
            if rng.random() < 0.5:
                aspects = list(Aspect)
                return f"investigate {service} {aspects[int(rng.integers(len(aspects)))].value}"
            return f"investigate {service}"
        if verb == 1:
            return f"assign to {teams[int(rng.integers(len(teams)))]}"
        if verb == 2:
            fix = list(Fix)[int(rng.integers(len(Fix)))]
            return f"mitigate: {fix.value} {services[int(rng.integers(len(services)))]}"
        return "escalate" if verb == 3 else "resolve"


class WalkthroughAgent:
    """Replays the optimal commands the env computes from ground truth.

    It needs the env itself (not only observations): it exists for tests,
    demonstrations and imitation learning.
    """

    name = "walkthrough"

    def __init__(self, env):
        self.env = env.unwrapped

    def reset(self, obs: dict, info: dict) -> None:
        """Read the new incident's walkthrough from the env."""
        self.commands = list(self.env.walkthrough())

    def act(self, obs: dict, info: dict) -> str:
        """The next walkthrough command ("resolve" once the plan is spent)."""
        return self.commands.pop(0) if self.commands else "resolve"
