"""IncidentIQ as an OpenEnv ``Environment``, for OpenEnv's clients (``EnvClient``, ``GenericEnvClient``).

OpenEnv's clients talk over the WebSocket ``/ws``: each connection gets its
own :class:`IncidentIQEnvironment` and sends ``reset``, ``step`` and ``state``
messages. The environment plays the same episodes as the HTTP routes (one
:class:`~incidentiq.server.sessions.Episode` each), so a seed gives the same
incident over either transport.

- ``reset`` takes the ``/reset`` body's fields: ``task_id``, ``seed``,
  ``split``, ``episode_id``.
- ``step`` takes ``{"action": "...", "reasoning": "..."}`` (:class:`IncidentIQAction`).
- An observation carries the env's fields plus ``terminated``, ``truncated``
  and the step's ``info`` (OpenEnv moves ``reward`` and ``done`` beside it).
- ``state`` is the ``/state`` document; its ``ground_truth`` stays ``null``
  until the episode is over (a WebSocket client has no admin token).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
from pydantic import Field, ValidationError

from incidentiq import __version__
from incidentiq.server.models import DEFAULT_TASK, IncidentAction, IncidentObservation, ResetRequest, error_summary
from incidentiq.server.sessions import Episode

DESCRIPTION = (
    "Respond to a simulated production incident as an on-call SRE: investigate services, route the incident "
    "to the owning team, apply one targeted fix and resolve it before the SLA runs out. Free-text commands; "
    "dense reward; a deterministic grade in [0, 1]."
)


class IncidentIQAction(Action, IncidentAction):
    """One command and optional reasoning (OpenEnv's ``Action``: also takes ``metadata``)."""


class IncidentIQObservation(Observation, IncidentObservation):
    """The env's observation with ``terminated``, ``truncated`` and the step's ``info``."""

    terminated: bool = Field(default=False, description="the incident ended (resolved, failed or out of SLA)")
    truncated: bool = Field(default=False, description="the task's step limit was reached")
    info: dict[str, Any] = Field(default_factory=dict, description="the env's info for this step")


class IncidentIQState(State):
    """The ``/state`` document (OpenEnv's ``State``: ``episode_id``, ``step_count`` and the rest as extras)."""


class IncidentIQEnvironment(Environment[IncidentIQAction, IncidentIQObservation, IncidentIQState]):
    """One OpenEnv session: an IncidentIQ episode played through ``reset``/``step``/``state``."""

    SUPPORTS_CONCURRENT_SESSIONS = True
    """Each instance owns its env and shares nothing, so sessions may run side by side."""

    def __init__(self) -> None:
        super().__init__()
        self._episode = Episode()
        self._session_id = f"openenv-{uuid.uuid4().hex[:12]}"

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> IncidentIQObservation:
        """Start an episode; ``kwargs`` may hold ``task_id`` and ``split`` (unknown keys are an error)."""
        given = {"seed": seed, "episode_id": episode_id, **kwargs}
        fields = {key: value for key, value in given.items() if value is not None}
        # The values arrived as JSON, so they are validated as JSON (a split is a string there).
        try:
            request = ResetRequest.model_validate_json(json.dumps(fields))
        except ValidationError as exc:
            raise ValueError(f"invalid reset: {error_summary(exc.errors())}") from None
        response = self._episode.reset(request.task_id or DEFAULT_TASK, request.seed, request.split, request.episode_id)
        return self._observation(response)

    def step(self, action: IncidentIQAction, timeout_s: float | None = None, **kwargs: Any) -> IncidentIQObservation:
        """Apply one action; an error if no episode is running."""
        return self._observation(self._episode.step(action.text))

    @property
    def state(self) -> IncidentIQState:
        """The episode's state document (just ``step_count`` 0 before the first reset)."""
        if not self._episode.started:
            return IncidentIQState()
        return IncidentIQState(**self._episode.state(self._session_id))

    def get_metadata(self) -> EnvironmentMetadata:
        """Name, description and version, for OpenEnv's ``/metadata``."""
        return EnvironmentMetadata(name="IncidentIQ", description=DESCRIPTION, version=__version__)

    def close(self) -> None:
        """Close the env."""
        self._episode.close()

    @staticmethod
    def _observation(response: dict[str, Any]) -> IncidentIQObservation:
        return IncidentIQObservation(
            **response["observation"],
            reward=response["reward"],
            done=response["done"],
            terminated=response["terminated"],
            truncated=response["truncated"],
            info=response["info"],
        )
