"""Gymnasium environments."""

from incidentiq.envs.incident_env import IncidentEnv

__all__ = ["IncidentEnv"]
