"""Shared fixtures: the registered ids and an env factory that closes what it makes."""

from __future__ import annotations

import gymnasium as gym
import pytest

import incidentiq

ENV_IDS = tuple(incidentiq.ENV_IDS)
"""Every registered id; conformance tests run over all of them."""


@pytest.fixture(scope="session")
def env_ids() -> tuple[str, ...]:
    return ENV_IDS


@pytest.fixture(params=ENV_IDS)
def env_id(request) -> str:
    """Parametrizes a test over every registered id."""
    return request.param


@pytest.fixture
def make_env():
    """``gym.make`` that closes every env it made when the test ends."""
    made = []

    def factory(env_id: str, **kwargs):
        env = gym.make(env_id, **kwargs)
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()
