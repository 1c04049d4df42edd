"""A ``Discrete`` action space over a catalog of commands built from slots."""

from __future__ import annotations

import functools
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from incidentiq.sim.catalog import MAX_TEAMS
from incidentiq.sim.commands import Aspect, Fix, Verb
from incidentiq.sim.faults import Hypothesis
from incidentiq.sim.generator import MAX_SERVICES

MAX_HYPOTHESES = len(Hypothesis)
"""Room for the hard task's candidate causes (``obs["hypotheses"]``)."""


class CatalogCommand(NamedTuple):
    """One entry of the catalog: a verb and the slot, team, fix, aspect or hypothesis it acts on."""

    verb: Verb
    slot: int | None = None
    team: int | None = None
    fix: Fix | None = None
    aspect: Aspect | None = None
    hypothesis: int | None = None


def _build_catalog() -> tuple[CatalogCommand, ...]:
    commands = [
        CatalogCommand(Verb.INVESTIGATE, slot=i, aspect=aspect)
        for i in range(MAX_SERVICES)
        for aspect in (None, *Aspect)
    ]
    commands += [CatalogCommand(Verb.ASSIGN, team=j) for j in range(MAX_TEAMS)]
    commands += [CatalogCommand(Verb.MITIGATE, slot=i, fix=fix) for fix in Fix for i in range(MAX_SERVICES)]
    commands += [CatalogCommand(Verb.ESCALATE), CatalogCommand(Verb.RESOLVE)]
    commands += [CatalogCommand(Verb.RESOLVE, hypothesis=k) for k in range(MAX_HYPOTHESES)]
    return tuple(commands)


CATALOG: tuple[CatalogCommand, ...] = _build_catalog()
"""Every command of the discrete action space, by index: investigate slot i (a general
look, then each aspect), assign roster team j, each fix on slot i, escalate, resolve, and
resolve concluding the k-th listed hypothesis (hard task: ``root cause: NAME`` as reasoning)."""


def render_command(command: CatalogCommand, services, teams, hypotheses=()) -> str:
    """The text of ``command`` for an episode's listed ``services``, roster ``teams`` and ``hypotheses``.

    An empty slot, roster or hypothesis position renders as a name no incident
    has, which the env reads as an invalid command or an empty conclusion (the
    action mask rules these out).

    >>> render_command(CATALOG[1], ("auth-service",), ("identity",))
    'investigate auth-service memory'
    >>> render_command(CATALOG[-1], (), (), ("db_overload", "rate_limit", "memory_leak")).splitlines()
    ['resolve', 'root cause: memory_leak']
    """
    verb = command.verb
    if verb is Verb.INVESTIGATE or verb is Verb.MITIGATE:
        i = command.slot
        service = services[i] if i < len(services) else f"empty-slot-{i}"
        if verb is Verb.MITIGATE:
            return f"mitigate: {command.fix.value} {service}"
        return f"investigate {service} {command.aspect.value}" if command.aspect else f"investigate {service}"
    if verb is Verb.ASSIGN:
        j = command.team
        return f"assign to {teams[j] if j < len(teams) else f'empty-team-{j}'}"
    if command.hypothesis is not None:
        k = command.hypothesis
        return f"resolve\nroot cause: {hypotheses[k] if k < len(hypotheses) else 'unknown'}"
    return verb.value


class _Form(NamedTuple):
    """A catalog command's text around the one name it takes: ``prefix + names[group][position] + suffix``."""

    group: int  # 0 services, 1 roster teams, 2 hypotheses; -1 when the command names nothing
    position: int
    prefix: str
    suffix: str


def _form(command: CatalogCommand) -> _Form:
    """``command``'s text split around its name, read off :func:`render_command` with a placeholder name."""
    for group, position in enumerate((command.slot, command.team, command.hypothesis)):
        if position is not None:
            names: list[tuple[str, ...]] = [(), (), ()]
            names[group] = ("\0",) * (position + 1)
            prefix, suffix = render_command(command, *names).split("\0")
            return _Form(group, position, prefix, suffix)
    return _Form(-1, 0, render_command(command, (), ()), "")


_FORMS = tuple(_form(command) for command in CATALOG)
"""Each catalog command's form, so that a step joins three strings instead of rendering the command."""


@functools.cache
def catalog_mask(n_services: int, n_teams: int, n_hypotheses: int = 0) -> np.ndarray:
    """Which catalog commands name a listed service, a roster team and a listed hypothesis (read-only).

    It depends only on the three counts: masks never carry the answer.

    >>> int(catalog_mask(5, 3).sum()), int(catalog_mask(5, 3, 3).sum()), len(CATALOG)
    (95, 98, 157)
    """
    mask = np.array(
        [
            (command.slot is None or command.slot < n_services)
            and (command.team is None or command.team < n_teams)
            and (command.hypothesis is None or command.hypothesis < n_hypotheses)
            for command in CATALOG
        ]
    )
    mask.flags.writeable = False
    return mask


class DiscreteCommands(gym.Wrapper):
    """Play IncidentIQ with integer actions: index ``k`` is the command ``CATALOG[k]``.

    The wrapper renders the chosen command as text for the current incident's
    services and roster, and steps the env with it. ``action_masks()`` marks
    the commands that name an empty slot, roster or hypothesis position as impossible (for
    sb3-contrib's ``MaskablePPO``); nothing else is masked, so repeats and
    wrong fixes stay available, as they are to any responder.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.action_space = spaces.Discrete(len(CATALOG))
        self._names: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset the env and remember the incident's services, roster and hypotheses."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._names = tuple(obs["affected_services"]), tuple(obs["team_roster"]["teams"]), tuple(obs["hypotheses"])
        return obs, info

    def step(self, action):
        """Render catalog command ``action`` as text and step the env with it."""
        return self.env.step(self.command_text(action))

    def command_text(self, action) -> str:
        """The text command that catalog index ``action`` stands for in the current episode."""
        if self._names is None:
            raise RuntimeError("DiscreteCommands.step() called before reset(); call reset() first.")
        try:
            index = int(action)
        except (TypeError, ValueError, OverflowError):
            index = -1  # None, text, inf: int()'s own error would not say what an action must be
        if not 0 <= index < len(CATALOG) or index != action:
            raise ValueError(f"action must be an integer in [0, {len(CATALOG)}), got {action!r}")
        group, position, prefix, suffix = _FORMS[index]
        if group < 0:
            return prefix
        names = self._names[group]
        if position < len(names):
            return prefix + names[position] + suffix
        return render_command(CATALOG[index], *self._names)  # an empty position: the mask rules it out

    def action_masks(self) -> np.ndarray:
        """A bool array over the catalog: True for commands this incident's slots and roster allow."""
        if self._names is None:
            raise RuntimeError("action_masks() needs an incident: call reset() first.")
        return catalog_mask(*map(len, self._names)).copy()


class CommandHistory(gym.Wrapper):
    """Adds ``issued``, which catalog commands the agent has sent this episode, to a ``Dict`` observation.

    The env answers a repeated command with "Already done" and a penalty, but
    its observation does not list what was sent before, so a memoryless
    policy can loop on a command. This is the agent's own history, nothing
    of the incident's: ``issued[k]`` is 1 once catalog command ``k`` was sent.
    Wrap an env whose actions are catalog indices and whose observation is a
    ``Dict`` (``make_rl_env`` puts it outermost).
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = spaces.Dict(
            {**env.observation_space.spaces, "issued": spaces.MultiBinary(len(CATALOG))}
        )
        self._issued = np.zeros(len(CATALOG), dtype=np.int8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset the env and forget the commands sent."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._issued = np.zeros(len(CATALOG), dtype=np.int8)
        return {**obs, "issued": self._issued.copy()}, info

    def step(self, action):
        """Step the env, then mark ``action`` as sent."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._issued[int(action)] = 1
        return {**obs, "issued": self._issued.copy()}, reward, terminated, truncated, info


__all__ = [
    "CATALOG",
    "MAX_HYPOTHESES",
    "CatalogCommand",
    "CommandHistory",
    "DiscreteCommands",
    "catalog_mask",
    "render_command",
]
