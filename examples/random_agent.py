"""A random agent on the RL-wrapped env: token observations, discrete commands, action masks.

It shows the interface a trainer sees (``incidentiq.make_rl_env``) and the
grade that blind play earns, the floor any learned policy must beat.

Usage: python examples/random_agent.py --env-id IncidentIQ/SingleServiceOutage-v0 --episodes 20
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

import incidentiq


@dataclass(frozen=True)
class Settings:
    """What to play."""

    env_id: str = "IncidentIQ/SingleServiceOutage-v0"
    episodes: int = 20
    seed: int = 0
    split: str = "test"
    verbose: bool = False


def parse_settings(argv: list[str] | None = None) -> Settings:
    """Read ``Settings`` from the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in Settings().__dict__.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=f"(default: {default})")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"(default: {default})")
    return Settings(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> float:
    """Play ``episodes`` episodes with uniformly random allowed commands; print and return the mean grade."""
    settings = parse_settings(argv)
    env = incidentiq.make_rl_env(settings.env_id, split=settings.split)
    action_masks = env.get_wrapper_attr("action_masks")
    command_text = env.get_wrapper_attr("command_text")
    rng = np.random.default_rng(settings.seed)
    print(f"observation keys: {sorted(env.observation_space.spaces)}; actions: {env.action_space}")
    grades = []
    for episode in range(settings.episodes):
        obs, info = env.reset(seed=settings.seed + episode)
        terminated = truncated = False
        while not (terminated or truncated):
            action = int(rng.choice(np.flatnonzero(action_masks())))
            if settings.verbose:
                print(f"  {action:>3} -> {command_text(action)}")
            obs, reward, terminated, truncated, info = env.step(action)
        grades.append(info["grade"])
        print(f"episode {episode}: grade {info['grade']:.3f}, resolved: {info['is_success']}")
    mean = float(np.mean(grades))
    print(f"mean grade over {settings.episodes} episodes: {mean:.3f}")
    env.close()
    return mean


if __name__ == "__main__":
    main()
