"""Reward (named parts per step) and grader (pure function of a trajectory)."""

from incidentiq.scoring.grader import Grade, Tally, grade
from incidentiq.scoring.reward import REWARD_KEYS, reward_components

__all__ = ["REWARD_KEYS", "Grade", "Tally", "grade", "reward_components"]
