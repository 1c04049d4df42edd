"""Thin wrappers that turn the text environment into arrays for RL trainers (no torch import).

>>> import incidentiq
>>> env = incidentiq.make_rl_env("IncidentIQ/SingleServiceOutage-v0")
>>> obs, info = env.reset(seed=0)
>>> obs["slots"].shape, env.action_space, env.get_wrapper_attr("action_masks")().dtype
((256,), Discrete(157), dtype('bool'))
"""

from __future__ import annotations

import gymnasium as gym

from incidentiq.wrappers.commands import (
    CATALOG,
    CatalogCommand,
    CommandHistory,
    DiscreteCommands,
    catalog_mask,
    render_command,
)
from incidentiq.wrappers.tokenize import ObservationTokenizer, TokenizeObservation


def wrap_for_rl(env: gym.Env) -> gym.Env:
    """Wrap an IncidentIQ env for SB3: ``CommandHistory(TokenizeObservation(DiscreteCommands(env)))``.

    It is the ``wrapper_class`` to hand to SB3's ``make_vec_env``:
    ``make_vec_env("incidentiq:IncidentIQ/CascadingFailure-v0", 8, wrapper_class=wrap_for_rl,
    env_kwargs={"render_mode": None})`` (``make_vec_env`` asks for ``"rgb_array"`` unless told otherwise).
    """
    return CommandHistory(TokenizeObservation(DiscreteCommands(env)))


def make_rl_env(env_id: str, **kwargs) -> gym.Env:
    """``gym.make(env_id, **kwargs)`` wrapped for SB3 (token observations, discrete commands, masks)."""
    return wrap_for_rl(gym.make(env_id, **kwargs))


__all__ = [
    "CATALOG",
    "CatalogCommand",
    "CommandHistory",
    "DiscreteCommands",
    "ObservationTokenizer",
    "TokenizeObservation",
    "catalog_mask",
    "make_rl_env",
    "render_command",
    "wrap_for_rl",
]
