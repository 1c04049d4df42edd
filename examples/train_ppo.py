"""Train a MaskablePPO policy on one IncidentIQ task and grade it on held-out incidents.

Everything a user of Stable-Baselines3 needs in one file: a vector env built
by SB3's ``make_vec_env`` with IncidentIQ's RL wrappers, MaskablePPO with the
token features extractor and catalog policy from ``incidentiq.train``, and an
evaluation on test-split incidents, whose (fault family, root service) pairs
training never draws. Needs the train extra: pip install "incidentiq[train]".

Usage: python examples/train_ppo.py --env-id IncidentIQ/SingleServiceOutage-v0 --timesteps 300000
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import incidentiq  # noqa: F401  (registers the IncidentIQ ids)
from incidentiq.agents import run_episode
from incidentiq.train import CatalogPolicy, PPOAgent, PPOSettings
from incidentiq.wrappers import wrap_for_rl


@dataclass(frozen=True)
class Settings:
    """One training run."""

    env_id: str = "IncidentIQ/SingleServiceOutage-v0"
    timesteps: int = 300_000
    n_envs: int = 8
    seed: int = 0
    eval_episodes: int = 200
    save: str = ""
    progress: bool = False


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Read ``Settings`` from the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in Settings().__dict__.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=f"(default: {default})")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"(default: {default!r})")
    return Settings(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> float:
    """Train, then print and return the mean grade on ``eval_episodes`` held-out incidents."""
    settings = parse_settings(argv)
    vec_env = make_vec_env(
        f"incidentiq:{settings.env_id}",
        n_envs=settings.n_envs,
        seed=settings.seed,
        wrapper_class=wrap_for_rl,  # token observations, a Discrete command catalog, action_masks()
        env_kwargs={"split": "train", "render_mode": None},
    )
    ppo = PPOSettings(n_envs=settings.n_envs)
    model = MaskablePPO(CatalogPolicy, vec_env, seed=settings.seed, device="cpu", **ppo.model_kwargs())
    model.learn(settings.timesteps, progress_bar=settings.progress)
    vec_env.close()
    if settings.save:
        model.save(settings.save)

    # The trained policy plays the plain text env like any other agent.
    env = gym.make(settings.env_id, split="test")
    agent = PPOAgent(model)
    grades = [run_episode(env, agent, seed=seed)["grade"] for seed in range(settings.eval_episodes)]
    env.close()
    mean = float(np.mean(grades))
    print(f"{settings.env_id}: mean grade {mean:.3f} on {settings.eval_episodes} held-out incidents "
          f"after {settings.timesteps} steps")
    return mean


if __name__ == "__main__":
    main()
