"""Pinned digests of what the envs say, seed for seed: a change to any observation, reward or info shows here.

The training results in ``benchmarks/results/`` were produced by these exact
trajectories, so speed work on the simulator or the tokenizer must leave them
bit-identical. A change meant to alter the env (new text, new dynamics, a new
reward) updates the digests below and re-runs ``benchmarks/bench_training.py``.
"""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest

import incidentiq
from incidentiq.language.vocabulary import Vocabulary
from incidentiq.wrappers import DiscreteCommands, make_rl_env

EPISODES = 150

WRAPPED = {
    ("IncidentIQ/SingleServiceOutage-v0", "train"): "d08ab4aa2ad0131c",
    ("IncidentIQ/SingleServiceOutage-v0", "test"): "e0f48dc8a6ab824a",
    ("IncidentIQ/CascadingFailure-v0", "train"): "efd15c3432c02b24",
    ("IncidentIQ/CascadingFailure-v0", "test"): "80857d3bd1975fe7",
    ("IncidentIQ/AmbiguousPaymentDegradation-v0", "train"): "328ba51ac5e42331",
    ("IncidentIQ/AmbiguousPaymentDegradation-v0", "test"): "cc93ec1b337d4860",
    ("IncidentIQ/AnyIncident-v0", "train"): "5b7e948a81ffb3b5",
    ("IncidentIQ/AnyIncident-v0", "test"): "5e62cb0dc0b6d8b7",
}
"""Digest of ``make_rl_env(id, split=...)`` over ``EPISODES`` seeded episodes of random allowed catalog commands."""

RAW = {
    ("IncidentIQ/SingleServiceOutage-v0", "train"): "fe55ee94a6113499",
    ("IncidentIQ/SingleServiceOutage-v0", "test"): "ac1b3a01e3c7388b",
    ("IncidentIQ/CascadingFailure-v0", "train"): "a23323639e5e5872",
    ("IncidentIQ/CascadingFailure-v0", "test"): "641bb73fa682407c",
    ("IncidentIQ/AmbiguousPaymentDegradation-v0", "train"): "c92740705484db8d",
    ("IncidentIQ/AmbiguousPaymentDegradation-v0", "test"): "2d4ea84679b1c6cc",
    ("IncidentIQ/AnyIncident-v0", "train"): "d7859d7f0e308525",
    ("IncidentIQ/AnyIncident-v0", "test"): "dceac2685c83ba12",
}
"""Digest of ``DiscreteCommands(gym.make(id, split=...))``, the text env under the same random catalog play."""

DETOURS = ("", "asdf", "resolve", "escalate and resolve", "investigate db-primary database", "assign to nobody",
           "mitigate: restart payment-service", "resolve")
"""Commands played before each walkthrough in ``WALKTHROUGH``: invalid, ambiguous, premature and off-path ones,
so the pinned grades count wasted steps and premature resolves."""

WALKTHROUGH = {
    "IncidentIQ/SingleServiceOutage-v0": "1bb19b51596c641d",
    "IncidentIQ/CascadingFailure-v0": "49eba5d43885f63a",
    "IncidentIQ/AmbiguousPaymentDegradation-v0": "5cece238c93407e7",
    "IncidentIQ/AnyIncident-v0": "89859375be6fbcb1",
}
"""Digest of ``gym.make(id, split="all")`` playing each incident's walkthrough (after some ``DETOURS``)."""


def _feed(digest, value) -> None:
    """Add ``value`` (nested dicts, sequences, arrays, scalars) to ``digest``, dtypes and shapes included."""
    if isinstance(value, dict):
        for key in sorted(value):
            digest.update(key.encode())
            _feed(digest, value[key])
    elif isinstance(value, np.ndarray):
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode())


def wrapped_digest(env_id: str, split: str, episodes: int = EPISODES, raw: bool = False) -> str:
    """Digest of every observation, mask, reward, flag and info of ``episodes`` random catalog episodes.

    The observations are the tokenizer's, or with ``raw`` the text env's own.
    """
    digest = hashlib.sha256()
    env = DiscreteCommands(gym.make(env_id, split=split)) if raw else make_rl_env(env_id, split=split)
    rng = np.random.default_rng(1)
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        _feed(digest, [obs, info])
        done = False
        while not done:
            mask = env.get_wrapper_attr("action_masks")()
            obs, reward, terminated, truncated, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            _feed(digest, [mask, obs, reward, terminated, truncated, info])
            done = terminated or truncated
    env.close()
    return digest.hexdigest()[:16]


def walkthrough_digest(env_id: str, episodes: int = EPISODES) -> str:
    """Digest of every text observation, reward, flag and info of ``episodes`` walkthroughs.

    Episode k first plays the first ``k % 9`` of ``DETOURS``, so some walkthroughs start late.
    """
    digest = hashlib.sha256()
    env = gym.make(env_id, split="all")
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        _feed(digest, [obs, info])
        for command in (*DETOURS[: seed % (len(DETOURS) + 1)], *env.unwrapped.walkthrough()):
            obs, reward, terminated, truncated, info = env.step(command)
            _feed(digest, [obs, reward, terminated, truncated, info])
            if terminated or truncated:
                break
    env.close()
    return digest.hexdigest()[:16]


@pytest.mark.parametrize(("env_id", "split"), sorted(WRAPPED))
def test_wrapped_trajectories_match_the_pinned_digest(env_id, split):
    assert wrapped_digest(env_id, split) == WRAPPED[env_id, split]


@pytest.mark.parametrize(("env_id", "split"), sorted(RAW))
def test_text_env_trajectories_match_the_pinned_digest(env_id, split):
    assert wrapped_digest(env_id, split, raw=True) == RAW[env_id, split]


@pytest.mark.parametrize("env_id", incidentiq.ENV_IDS)
def test_walkthroughs_match_the_pinned_digest(env_id):
    assert walkthrough_digest(env_id) == WALKTHROUGH[env_id]


def test_the_vocabulary_is_pinned():
    """The vocabulary is read off the string constants of the simulator's modules, dict keys included.

    Renaming one shifts the ids of the words after it, and a trained policy no longer reads its
    observations: a change meant to alter the words updates this pin and re-runs the training benchmark.
    """
    vocabulary = Vocabulary()
    assert vocabulary.size == 596
    assert hashlib.sha256("\n".join(vocabulary.tokens).encode()).hexdigest()[:16] == "8a5de427d5f83ebb"


def test_the_digest_sees_a_one_token_change():
    digest = hashlib.sha256()
    _feed(digest, {"slots": np.array([3, 4], dtype=np.int64)})
    other = hashlib.sha256()
    _feed(other, {"slots": np.array([3, 5], dtype=np.int64)})
    assert digest.hexdigest() != other.hexdigest()
