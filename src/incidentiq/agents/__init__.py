"""Agents that play IncidentIQ: random, rule-based (heuristic) and walkthrough.

Every agent has ``reset(obs, info)`` and ``act(obs, info) -> str``.
"""

from __future__ import annotations

from incidentiq.agents.baselines import RandomAgent, WalkthroughAgent
from incidentiq.agents.heuristic import HeuristicAgent

AGENTS = ("random", "heuristic", "walkthrough")


def make_agent(name: str, env=None, seed: int | None = None):
    """Build an agent by name; ``walkthrough`` needs the env it will play."""
    if name == "random":
        return RandomAgent(seed)
    if name == "heuristic":
        return HeuristicAgent()
    if name == "walkthrough":
        if env is None:
            raise ValueError("the walkthrough agent needs the env it plays")
        return WalkthroughAgent(env)
    raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}")


def run_episode(env, agent, seed: int | None = None) -> dict:
    """Play one episode; return grade, success, steps and total reward."""
    obs, info = env.reset(seed=seed)
    agent.reset(obs, info)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(agent.act(obs, info))
        total += reward
        steps += 1
        if terminated or truncated:
            break
    grade = info.get("grade", float(obs["score"][0]))
    return {"grade": grade, "success": bool(info.get("is_success", False)), "steps": steps, "return": total}


__all__ = ["AGENTS", "HeuristicAgent", "RandomAgent", "WalkthroughAgent", "make_agent", "run_episode"]
