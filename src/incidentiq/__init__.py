"""IncidentIQ: production incidents as Gymnasium environments.

>>> import gymnasium as gym
>>> import incidentiq
>>> env = gym.make("IncidentIQ/SingleServiceOutage-v0")
>>> obs, info = env.reset(seed=0)
>>> obs["task_id"]
'single_service_outage'
"""

from gymnasium.envs.registration import register, registry

from incidentiq.envs import IncidentEnv
from incidentiq.sim.tasks import Split, TaskId

__version__ = "0.1.0"

ENV_IDS: dict[str, tuple[str | None, int]] = {
    "IncidentIQ/SingleServiceOutage-v0": ("single_service_outage", 10),
    "IncidentIQ/CascadingFailure-v0": ("cascading_failure", 18),
    "IncidentIQ/AmbiguousPaymentDegradation-v0": ("ambiguous_payment_degradation", 25),
    "IncidentIQ/AnyIncident-v0": (None, 25),
}
"""Registered ids: (task_id, max_episode_steps). ``None`` samples a task per reset."""

for _env_id, (_task_id, _max_steps) in ENV_IDS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point="incidentiq.envs:IncidentEnv",
            max_episode_steps=_max_steps,
            kwargs={"task_id": _task_id},
        )


def __getattr__(name: str):
    # The RL wrappers load on first use: plain env users never import them.
    if name == "make_rl_env":
        from incidentiq.wrappers import make_rl_env

        return make_rl_env
    raise AttributeError(f"module 'incidentiq' has no attribute {name!r}")


__all__ = ["ENV_IDS", "IncidentEnv", "Split", "TaskId", "__version__", "make_rl_env"]
