"""Episodes and sessions, with no web framework in sight.

An :class:`Episode` owns one ``gym.make`` env and the bookkeeping the API
reports (history, totals, the final grade). A :class:`SessionStore` maps
session ids to episodes, at most ``max_sessions`` of them, evicting the least
recently used; it remembers recently evicted and deleted ids so a request for
one gets a clear "evicted" or "deleted" error, never a silent new episode.

Locking: the store's lock guards only the map; every session has its own
lock, held for the whole of a reset or step, so sessions never wait on each
other and one session's requests are applied one at a time.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from incidentiq.scoring.grader import grade as grade_trajectory
from incidentiq.server.models import TASK_ENV_IDS, info_to_json, observation_to_json
from incidentiq.sim.tasks import Split

TOMBSTONES = 10_000
"""How many evicted or deleted session ids the store remembers, to name them in its errors."""


class ApiError(Exception):
    """An error the API reports with an HTTP status, a code and a sentence."""

    status = 400
    code = "bad_request"

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class SessionNotFound(ApiError):
    """The session id is unknown, or its session was evicted or deleted (``reason``)."""

    status = 404
    code = "session_not_found"

    def __init__(self, detail: str, reason: str = "unknown"):
        super().__init__(detail)
        self.reason = reason


class NotFound(ApiError):
    """Something other than a session does not exist."""

    status = 404
    code = "not_found"


class NoEpisode(ApiError):
    """The session has no episode yet: reset first."""

    status = 409
    code = "no_episode"


class EpisodeOver(ApiError):
    """The episode has ended: reset to start another."""

    status = 409
    code = "episode_over"


class Forbidden(ApiError):
    """Ground truth asked for during an episode without (or with a wrong) admin token."""

    status = 403
    code = "forbidden"


class Episode:
    """One env and the episode being played in it; not thread-safe (the session's lock guards it)."""

    def __init__(self) -> None:
        self.env: gym.Env | None = None
        self.env_id = ""
        self.task_id = ""
        self.split = Split.TRAIN
        self.seed: int | None = None
        self.episode_id = ""
        self.history: list[dict[str, Any]] = []
        self.total_reward = 0.0
        self.terminated = False
        self.truncated = False
        self.last_obs: dict | None = None
        self.last_info: dict[str, Any] = {}

    @property
    def started(self) -> bool:
        """Whether a reset has happened."""
        return self.last_obs is not None

    @property
    def done(self) -> bool:
        """Whether the current episode has ended."""
        return self.terminated or self.truncated

    def reset(
        self, task: str, seed: int | None = None, split: Split = Split.TRAIN, episode_id: str | None = None
    ) -> dict[str, Any]:
        """Start an episode of ``task`` (a name of ``TASK_ENV_IDS``); return the JSON ``/reset`` response."""
        env_id = TASK_ENV_IDS[task]
        split = Split(split)
        if self.env is None or (self.env_id, self.split) != (env_id, split):
            self.close()
            self.env = gym.make(env_id, split=split.value)
            self.env_id, self.split = env_id, split
        obs, info = self.env.reset(seed=seed)
        self.task_id = task
        self.seed = seed
        self.episode_id = episode_id or uuid.uuid4().hex
        self.history = []
        self.total_reward = 0.0
        self.terminated = self.truncated = False
        return self._response(obs, 0.0, info)

    def step(self, text: str) -> dict[str, Any]:
        """Apply one action (command, then reasoning lines); return the JSON ``/step`` response."""
        if not self.started:
            raise NoEpisode("no episode in this session yet: POST /reset first")
        if self.done:
            ending = "resolved" if self.last_info.get("is_success") else ("truncated" if self.truncated else "failed")
            raise EpisodeOver(
                f"episode {self.episode_id} is over ({ending} after {len(self.history)} steps): "
                "POST /reset to start a new one"
            )
        obs, reward, terminated, truncated, info = self.env.step(text)
        reward = float(reward)
        self.terminated, self.truncated = bool(terminated), bool(truncated)
        self.total_reward += reward
        self.history.append(
            {
                "step": len(self.history) + 1,
                "action": text,
                "parsed_action": info["parsed_action"],
                "action_valid": bool(info["action_valid"]),
                "reward": reward,
            }
        )
        return self._response(obs, reward, info)

    def state(self, session_id: str, admin: bool = False) -> dict[str, Any]:
        """The JSON ``/state`` response; ground truth only once the episode is over, or for the admin."""
        self._require_started()
        final = self.done
        obs = self.last_obs
        return {
            "session_id": session_id,
            "episode_id": self.episode_id,
            "task_id": obs["task_id"],
            "env_id": self.env_id,
            "split": self.split.value,
            "seed": self.seed,
            "step_count": len(self.history),
            "elapsed_minutes": int(self.last_info["elapsed_minutes"]),
            "total_reward": self.total_reward,
            "score": float(obs["score"][0]),
            "done": final,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "grade": self.last_info.get("grade"),
            "grade_components": self.last_info.get("grade_components"),
            "is_success": self.last_info.get("is_success"),
            "history": list(self.history),
            "ground_truth": self.ground_truth() if final or admin else None,
        }

    def incident_meta(self, session_id: str, admin: bool = False) -> dict[str, Any]:
        """The JSON ``/incident-meta`` response; :class:`Forbidden` during an episode without the admin token."""
        self._require_started()
        if not (self.done or admin):
            raise Forbidden(
                "the incident's ground truth is hidden while its episode runs; it is served once the episode "
                "is over, or to a request carrying the admin token the server was started with"
            )
        env = self.env.unwrapped
        grade = grade_trajectory(env.incident, env.trajectory)
        return {
            "session_id": session_id,
            "episode_id": self.episode_id,
            "task_id": self.last_obs["task_id"],
            "done": self.done,
            "grade": grade.total,
            "grade_components": dict(grade.components),
            "is_success": bool(self.last_info.get("is_success", False)),
            "ground_truth": self.ground_truth(),
        }

    def ground_truth(self) -> dict[str, Any]:
        """The incident's answer, from the env's ground truth."""
        self._require_started()
        env = self.env.unwrapped
        incident = env.incident
        family = incident.family
        return {
            "root_service": incident.root,
            "fault_family": family.name,
            "fault_title": family.title,
            "owner_team": incident.owner,
            "full_fixes": [fix.value for fix in family.full_fixes],
            "partial_fixes": [fix.value for fix in family.partial_fixes],
            "artifacts": dict(incident.artifacts),
            "needs_escalation": bool(incident.needs_escalation),
            "hypothesis": incident.hypothesis.value if incident.hypothesis is not None else None,
            "diagnostic_aspect": incident.diagnostic_aspect.value if incident.diagnostic_aspect is not None else None,
            "walkthrough": env.walkthrough(),
        }

    def close(self) -> None:
        """Close the env (a later reset makes a new one)."""
        if self.env is not None:
            self.env.close()
            self.env = None

    def _require_started(self) -> None:
        if not self.started:
            raise NoEpisode("no episode in this session yet: POST /reset first")

    def _response(self, obs: dict, reward: float, info: dict) -> dict[str, Any]:
        self.last_obs = obs
        self.last_info = info_to_json(info)
        return {
            "observation": observation_to_json(obs),
            "reward": reward,
            "done": self.done,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "info": self.last_info,
        }


@dataclass
class Session:
    """A session id's episode and the lock that serializes its requests."""

    session_id: str
    episode: Episode = field(default_factory=Episode)
    lock: threading.Lock = field(default_factory=threading.Lock)
    alive: bool = True
    """False once evicted or deleted (set under the store's lock)."""


class SessionStore:
    """At most ``max_sessions`` sessions, least recently used evicted first; thread-safe."""

    def __init__(self, max_sessions: int):
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._gone: OrderedDict[str, str] = OrderedDict()  # id -> "evicted" or "deleted"
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> Session:
        """The session with this id (now the most recently used); :class:`SessionNotFound` if there is none."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                self._sessions.move_to_end(session_id)
                return session
            reason = self._gone.get(session_id)
        if reason == "evicted":
            raise SessionNotFound(
                f"session {session_id!r} was evicted: the server keeps the {self.max_sessions} most recently "
                "used sessions; POST /reset to start a new episode in it",
                reason,
            )
        if reason == "deleted":
            raise SessionNotFound(
                f"session {session_id!r} was deleted; POST /reset to start a new episode in it", reason
            )
        raise SessionNotFound(f"unknown session {session_id!r}; POST /reset with this session id to start one")

    def get_or_create(self, session_id: str) -> Session:
        """The session with this id, created (evicting the least recently used if full) if it does not exist."""
        evicted: list[Session] = []
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None:
                self._sessions.move_to_end(session_id)
                return session
            while len(self._sessions) >= self.max_sessions:
                _, old = self._sessions.popitem(last=False)
                old.alive = False
                self._bury(old.session_id, "evicted")
                evicted.append(old)
            session = Session(session_id)
            self._sessions[session_id] = session
            self._gone.pop(session_id, None)
        for old in evicted:
            with old.lock:  # let a request still running in it finish first
                old.episode.close()
        return session

    def delete(self, session_id: str) -> None:
        """Remove a session and close its env; :class:`SessionNotFound` if there is none."""
        session = self.get(session_id)
        with self._lock:
            if self._sessions.get(session_id) is not session:
                raise SessionNotFound(f"session {session_id!r} was deleted", "deleted")
            del self._sessions[session_id]
            session.alive = False
            self._bury(session_id, "deleted")
        with session.lock:
            session.episode.close()

    def close(self) -> None:
        """Close every session's env (at server shutdown)."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
            for session in sessions:
                session.alive = False
        for session in sessions:
            with session.lock:
                session.episode.close()

    @contextmanager
    def locked(self, session_id: str, create: bool = False) -> Iterator[Session]:
        """The session, held under its lock for the duration of the ``with`` block.

        A session evicted or deleted while the request waited for its lock is
        not used: with ``create`` a fresh one takes its place, otherwise the
        request gets :class:`SessionNotFound`.
        """
        while True:
            session = self.get_or_create(session_id) if create else self.get(session_id)
            with session.lock:
                if session.alive:
                    yield session
                    return
            if not create:
                self.get(session_id)  # raises, naming why the session is gone

    def _bury(self, session_id: str, reason: str) -> None:
        self._gone[session_id] = reason
        self._gone.move_to_end(session_id)
        while len(self._gone) > TOMBSTONES:
            self._gone.popitem(last=False)
