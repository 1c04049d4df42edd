"""Play a few incidents with the rule-based agent and print what happened.

Usage: python examples/quickstart.py --env-id IncidentIQ/CascadingFailure-v0 --episodes 3
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gymnasium as gym

import incidentiq  # noqa: F401  (registers the IncidentIQ ids)
from incidentiq.agents import HeuristicAgent


@dataclass(frozen=True)
class Settings:
    """What to play."""

    env_id: str = "IncidentIQ/CascadingFailure-v0"
    episodes: int = 3
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


def main(argv: list[str] | None = None) -> None:
    """Play ``episodes`` incidents and print each command, reward and the final grade."""
    settings = parse_settings(argv)
    env = gym.make(settings.env_id, split=settings.split, render_mode="ansi")
    agent = HeuristicAgent()
    for episode in range(settings.episodes):
        obs, info = env.reset(seed=settings.seed + episode)
        agent.reset(obs, info)
        if settings.verbose:
            print(env.render())
        print(f"--- episode {episode} (seed {settings.seed + episode}): {obs['incident_description']}")
        terminated = truncated = False
        while not (terminated or truncated):
            command = agent.act(obs, info)
            obs, reward, terminated, truncated, info = env.step(command)
            print(f"  {command.splitlines()[0]:<50} reward {reward:+.2f}")
        print(f"  grade {info['grade']:.2f}, resolved: {info['is_success']}")
    env.close()


if __name__ == "__main__":
    main()
