"""The HTTP API's typed requests and responses, and the JSON form of an observation.

This module needs only pydantic and numpy (core dependencies), so the HTTP
client (:mod:`incidentiq.client`) shares it without the ``server`` extra.

An observation travels as JSON with the env's own field names: numpy arrays
become lists (padded to the env's 8 slots, as in the env), tuples become
lists and ``score`` becomes a float. :func:`observation_to_json` and
:func:`observation_from_json` convert both ways, exactly: float32 values
survive the trip through JSON unchanged.

>>> import gymnasium as gym
>>> import incidentiq
>>> env = gym.make("IncidentIQ/SingleServiceOutage-v0")
>>> obs, info = env.reset(seed=3)
>>> data = observation_to_json(obs)
>>> data["metrics"]["status"][:2] == obs["metrics"]["status"][:2].tolist()
True
>>> env.observation_space.contains(observation_from_json(data))
True
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from incidentiq import ENV_IDS
from incidentiq.language.parser import MAX_ACTION_LENGTH
from incidentiq.sim.tasks import Split

SESSION_HEADER = "X-Session-Id"
"""Request header naming the session; responses echo it."""
ADMIN_HEADER = "X-Admin-Token"
"""Request header carrying the admin token the server was started with."""
DEFAULT_SESSION = "default"
"""The session of requests without an ``X-Session-Id`` header."""
SESSION_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
"""What a session id may look like (a UUID fits)."""
ANY_TASK = "any"
"""The task name of ``IncidentIQ/AnyIncident-v0``: each reset draws one of the three tasks from the seed."""
TASK_ENV_IDS: dict[str, str] = {
    (task_id if task_id is not None else ANY_TASK): env_id for env_id, (task_id, _) in ENV_IDS.items()
}
"""Task name (the three task ids and ``any``) -> registered env id."""
DEFAULT_TASK = ANY_TASK
"""The task of a reset that names none."""
_ENV_ID_PREFIX = "incidentiq:"
_MAX_SEED = 2**64 - 1


def resolve_task(value: str | None) -> str:
    """A task name from a task id, ``any`` or a registered env id (any case); ``None`` is the default task.

    >>> resolve_task("IncidentIQ/CascadingFailure-v0")
    'cascading_failure'
    >>> resolve_task(None)
    'any'
    """
    if value is None:
        return DEFAULT_TASK
    key = value.strip().casefold().removeprefix(_ENV_ID_PREFIX)
    for name, env_id in TASK_ENV_IDS.items():
        if key in (name, env_id.casefold()):
            return name
    raise ValueError(f"unknown task {value!r}; choose one of {', '.join(TASK_ENV_IDS)} or a registered env id")


# ---- observations -----------------------------------------------------------------------


class Metrics(BaseModel):
    """Per-service metrics, aligned with ``affected_services`` and padded to 8 slots."""

    error_rate_pct: list[float] = Field(description="error rate in percent, per slot")
    latency_p99_ms: list[float] = Field(description="p99 latency in milliseconds, per slot")
    throughput_rps: list[float] = Field(description="requests per second, per slot")
    status: list[int] = Field(description="0 empty slot, 1 ok, 2 degraded, 3 down, per slot")


class TeamRoster(BaseModel):
    """The teams an incident can be routed to and which of them are available now."""

    teams: list[str] = Field(description="team names, shuffled each episode")
    available: list[int] = Field(description="1 if the team at that position is available, padded to 8")


class IncidentObservation(BaseModel):
    """One observation, field for field the env's ``Dict`` observation in JSON form."""

    task_id: str = Field(description="single_service_outage, cascading_failure or ambiguous_payment_degradation")
    incident_description: str = Field(description="the incident's title")
    affected_services: list[str] = Field(description="services listed in this incident, shuffled (at most 8)")
    severity: int = Field(description="0 is P0 (most severe), 1 is P1, 2 is P2")
    logs: list[str] = Field(description="the 8 most recent log lines, ISO-8601 UTC timestamps first")
    metrics: Metrics
    feedback: str = Field(description="the result of the last command")
    score: float = Field(description="the grade of the trajectory so far, in [0, 1]")
    sla_remaining: int = Field(description="simulated minutes left before the SLA is breached")
    team_roster: TeamRoster
    step_count: int = Field(description="steps taken in this episode")
    dependencies: list[list[int]] = Field(description="8x8 observed caller -> callee edges among the listed services")
    investigated: list[int] = Field(description="1 where the listed service has been investigated, padded to 8")
    hypotheses: list[str] = Field(description="the hard task's candidate causes (else empty)")


def observation_to_json(obs: dict) -> dict[str, Any]:
    """The JSON form of an env observation (plain lists, ints, floats and strings)."""
    metrics = obs["metrics"]
    roster = obs["team_roster"]
    return {
        "task_id": obs["task_id"],
        "incident_description": obs["incident_description"],
        "affected_services": list(obs["affected_services"]),
        "severity": int(obs["severity"]),
        "logs": list(obs["logs"]),
        "metrics": {
            "error_rate_pct": metrics["error_rate_pct"].tolist(),
            "latency_p99_ms": metrics["latency_p99_ms"].tolist(),
            "throughput_rps": metrics["throughput_rps"].tolist(),
            "status": metrics["status"].tolist(),
        },
        "feedback": obs["feedback"],
        "score": float(obs["score"][0]),
        "sla_remaining": int(obs["sla_remaining"]),
        "team_roster": {"teams": list(roster["teams"]), "available": roster["available"].tolist()},
        "step_count": int(obs["step_count"]),
        "dependencies": obs["dependencies"].tolist(),
        "investigated": obs["investigated"].tolist(),
        "hypotheses": list(obs["hypotheses"]),
    }


def observation_from_json(data: dict[str, Any]) -> dict:
    """An env observation (numpy arrays, tuples) from its JSON form: inside the env's observation space."""
    metrics = data["metrics"]
    roster = data["team_roster"]
    return {
        "task_id": data["task_id"],
        "incident_description": data["incident_description"],
        "affected_services": tuple(data["affected_services"]),
        "severity": int(data["severity"]),
        "logs": tuple(data["logs"]),
        "metrics": {
            "error_rate_pct": np.asarray(metrics["error_rate_pct"], dtype=np.float32),
            "latency_p99_ms": np.asarray(metrics["latency_p99_ms"], dtype=np.float32),
            "throughput_rps": np.asarray(metrics["throughput_rps"], dtype=np.float32),
            "status": np.asarray(metrics["status"], dtype=np.int8),
        },
        "feedback": data["feedback"],
        "score": np.array([data["score"]], dtype=np.float32),
        "sla_remaining": int(data["sla_remaining"]),
        "team_roster": {"teams": tuple(roster["teams"]), "available": np.asarray(roster["available"], dtype=np.int8)},
        "step_count": int(data["step_count"]),
        "dependencies": np.asarray(data["dependencies"], dtype=np.int8),
        "investigated": np.asarray(data["investigated"], dtype=np.int8),
        "hypotheses": tuple(data["hypotheses"]),
    }


def info_to_json(info: dict) -> dict[str, Any]:
    """The JSON form of a step's ``info`` (numpy scalars become Python numbers)."""
    return {key: _plain(value) for key, value in info.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def error_summary(errors: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """One line saying where and why a request is invalid, from pydantic's ``errors()``.

    The offending input is never repeated: it can be large (an over-long action).

    >>> from pydantic import ValidationError
    >>> try:
    ...     ResetRequest.model_validate_json('{"seed": "42", "sead": 1}')
    ... except ValidationError as exc:
    ...     print(error_summary(exc.errors()))
    seed: Input should be a valid integer; sead: Extra inputs are not permitted
    """
    parts = [f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in errors[:limit]]
    if len(errors) > limit:
        parts.append(f"and {len(errors) - limit} more")
    return "; ".join(parts)


# ---- requests ----------------------------------------------------------------------------


class _Strict(BaseModel):
    # Wrong types are errors (no "42" -> 42), and so are unknown fields: a typo must not be ignored.
    model_config = ConfigDict(extra="forbid", strict=True)


class IncidentAction(_Strict):
    """One action: a command and optional free-form reasoning (read by the hard task's grader)."""

    action: StrictStr = Field(description="one command, e.g. 'investigate auth-service' or 'assign to identity'")
    reasoning: StrictStr | None = Field(default=None, description="why; graded in the hard task")

    @model_validator(mode="after")
    def _within_limit(self) -> IncidentAction:
        length = len(self.text)
        if length > MAX_ACTION_LENGTH:
            # A custom error keeps the error's context JSON-serializable (a ValueError in it is not).
            raise PydanticCustomError(
                "action_too_long",
                "action text is {length} characters (command plus reasoning); the limit is {limit}",
                {"length": length, "limit": MAX_ACTION_LENGTH},
            )
        return self

    @property
    def text(self) -> str:
        """What the env reads: the command, then the reasoning on the following lines."""
        return self.action if not self.reasoning else f"{self.action}\n{self.reasoning}"


class ResetRequest(_Strict):
    """Start a new episode. Every field is optional."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"task_id": "single_service_outage", "seed": 42}, {}]},
    )

    task_id: StrictStr | None = Field(
        default=None,
        description=f"{', '.join(TASK_ENV_IDS)} or a registered env id (default: {DEFAULT_TASK})",
    )
    seed: StrictInt | None = Field(
        default=None, ge=0, le=_MAX_SEED, description="the incident's seed (default: random)"
    )
    # JSON has no enums: the split arrives as a string.
    split: Split = Field(
        default=Split.TRAIN, strict=False, description="which (fault family, root service) pairs to draw from"
    )
    episode_id: StrictStr | None = Field(
        default=None, max_length=128, description="a label for the episode (default: a new UUID)"
    )

    @field_validator("task_id")
    @classmethod
    def _known_task(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return resolve_task(value)
        except ValueError as exc:
            raise PydanticCustomError("unknown_task", str(exc)) from None


class StepRequest(_Strict):
    """Take one action in the session's episode."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"action": {"action": "investigate auth-service"}}]},
    )

    action: IncidentAction


# ---- responses ---------------------------------------------------------------------------


class StepInfo(BaseModel):
    """The env's ``info``: the last three fields appear only on an episode's last step."""

    action_valid: bool
    parsed_action: str = Field(description="the canonical command, '' if the action was invalid")
    reward_components: dict[str, float] = Field(description="named parts that sum to the reward")
    elapsed_minutes: int
    grade: float | None = Field(default=None, description="the episode's grade in [0, 1] (last step)")
    grade_components: dict[str, float] | None = Field(default=None, description="weighted parts of the grade")
    is_success: bool | None = Field(default=None, description="whether the incident was resolved (last step)")


class StepResponse(BaseModel):
    """What ``/reset`` and ``/step`` return."""

    observation: IncidentObservation
    reward: float
    done: bool = Field(description="terminated or truncated: the episode is over")
    terminated: bool
    truncated: bool
    info: StepInfo


class GroundTruth(BaseModel):
    """The incident's answer: never served during an episode without the admin token."""

    root_service: str
    fault_family: str
    fault_title: str
    owner_team: str
    full_fixes: list[str]
    partial_fixes: list[str]
    artifacts: dict[str, str] = Field(description="the episode's deploy ids, flags, pids, ... that fixes may name")
    needs_escalation: bool
    hypothesis: str | None = Field(description="the true hypothesis (hard task)")
    diagnostic_aspect: str | None = Field(description="the aspect that reveals the cause at the root (hard task)")
    walkthrough: list[str] = Field(description="the optimal commands")


class HistoryEntry(BaseModel):
    """One step of the episode so far."""

    step: int
    action: str = Field(description="the text the env read: the command, then any reasoning on later lines")
    parsed_action: str
    action_valid: bool
    reward: float


class StateResponse(BaseModel):
    """The session's episode: progress, history and, once it is over (or for the admin), its answer."""

    session_id: str
    episode_id: str
    task_id: str
    env_id: str
    split: str
    seed: int | None
    step_count: int
    elapsed_minutes: int
    total_reward: float
    score: float
    done: bool
    terminated: bool
    truncated: bool
    grade: float | None
    grade_components: dict[str, float] | None
    is_success: bool | None
    history: list[HistoryEntry]
    ground_truth: GroundTruth | None = Field(description="null during an episode unless the admin token is sent")


class IncidentMeta(BaseModel):
    """The incident's ground truth and the grade so far (final once ``done``)."""

    session_id: str
    episode_id: str
    task_id: str
    done: bool
    grade: float
    grade_components: dict[str, float]
    is_success: bool
    ground_truth: GroundTruth


class TaskInfo(BaseModel):
    """One task."""

    task_id: str
    env_id: str
    difficulty: str
    max_steps: int
    sla_minutes: int
    description: str


class TasksResponse(BaseModel):
    """The tasks, the splits and the action language."""

    tasks: list[TaskInfo]
    default_task: str
    splits: list[str]
    commands: list[str]
    fixes: list[str]
    max_action_length: int


class RunbookAspect(BaseModel):
    """One question an investigation can ask."""

    aspect: str
    command: str
    looks_at: str


class RunbookFix(BaseModel):
    """One fix of the command grammar."""

    fix: str
    command: str
    addresses: str
    artifact: str | None = Field(description="the kind of artifact the fix may name, if any")


class RunbookResponse(BaseModel):
    """Generic diagnostic steps: the same for every service, whatever the incident."""

    service: str | None
    steps: list[str]
    aspects: list[RunbookAspect]
    fixes: list[RunbookFix]


class HealthStatus(str, enum.Enum):
    """Server health values (``healthy`` is what OpenEnv tooling checks for)."""

    HEALTHY = "healthy"


class HealthResponse(BaseModel):
    """The server is up; how many sessions it holds."""

    status: HealthStatus = HealthStatus.HEALTHY
    version: str
    sessions: int
    max_sessions: int


class SessionClosed(BaseModel):
    """``DELETE /session`` succeeded."""

    session_id: str
    closed: bool = True


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx body: a machine-readable ``error`` code and a sentence in ``detail``."""

    error: str
    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="field errors of an invalid request")
