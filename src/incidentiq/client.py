"""Play IncidentIQ on a server: a small HTTP client and a Gymnasium env that proxies one.

Both need only the standard library (``http.client``) and IncidentIQ's core
dependencies, not the ``server`` extra.

```python
from incidentiq.client import IncidentIQClient, RemoteIncidentEnv

with IncidentIQClient("http://127.0.0.1:7860") as client:      # a session of its own
    first = client.reset(task_id="cascading_failure", seed=7)
    result = client.step("investigate auth-service", reasoning="its callers alert")
    print(result["reward"], result["observation"]["feedback"])

env = RemoteIncidentEnv("http://127.0.0.1:7860", task_id="cascading_failure")
obs, info = env.reset(seed=7)        # numpy observation, inside env.observation_space
```

:class:`RemoteIncidentEnv` has the local env's spaces and returns the same
observations, rewards and infos as ``gym.make`` for the same seed and
commands, so evaluation code written for the local env runs against a server.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

import gymnasium as gym

from incidentiq.envs.incident_env import IncidentEnv
from incidentiq.language.parser import normalize
from incidentiq.language.render import render_text
from incidentiq.server.models import ADMIN_HEADER, SESSION_HEADER, observation_from_json
from incidentiq.sim.tasks import Split

DEFAULT_URL = "http://127.0.0.1:7860"
IDLE_RECONNECT_SECONDS = 2.0
"""A connection idle this long is replaced before the next request (servers close idle ones after about 5 s)."""


class IncidentIQError(RuntimeError):
    """The server answered with an error: ``status`` (HTTP), ``error`` (code) and ``detail`` (sentence)."""

    def __init__(self, status: int, error: str, detail: str):
        super().__init__(f"HTTP {status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


class IncidentIQClient:
    """One session on an IncidentIQ server, over one kept-alive HTTP connection.

    ``session_id=None`` makes a fresh id, so two clients never share a
    session. Each method returns the server's JSON document as a dict and
    raises :class:`IncidentIQError` on an error status. Calls are serialized:
    a client may be shared by threads, but one per thread is faster.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        session_id: str | None = None,
        admin_token: str | None = None,
        timeout: float = 30.0,
    ):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        # A name for this client's server session, nothing more: incidents come from the reset seed alone,
        # so a random name leaves every trajectory reproducible. Pass session_id to choose it.
        self.session_id = session_id if session_id is not None else uuid.uuid4().hex
        self.admin_token = admin_token
        self.timeout = timeout
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._connection: http.client.HTTPConnection | None = None
        self._last_used = 0.0
        self._lock = threading.Lock()

    # ---- the API ----------------------------------------------------------------------------

    def reset(self, task_id: str | None = None, seed: int | None = None, split: str | Split | None = None) -> dict:
        """Start an episode (``POST /reset``); ``None`` leaves a field to the server's default."""
        body: dict[str, Any] = {}
        if task_id is not None:
            body["task_id"] = task_id
        if seed is not None:
            body["seed"] = int(seed)
        if split is not None:
            body["split"] = Split(split).value
        return self._request("POST", "/reset", body)

    def step(self, action: str, reasoning: str | None = None) -> dict:
        """Take one action (``POST /step``)."""
        payload: dict[str, Any] = {"action": action}
        if reasoning is not None:
            payload["reasoning"] = reasoning
        return self._request("POST", "/step", {"action": payload})

    def state(self) -> dict:
        """The episode so far (``GET /state``)."""
        return self._request("GET", "/state")

    def incident_meta(self) -> dict:
        """Ground truth and grade (``GET /incident-meta``): after the episode, or with the admin token."""
        return self._request("GET", "/incident-meta")

    def runbook(self, service: str | None = None) -> dict:
        """Generic diagnostic steps (``GET /runbook``)."""
        return self._request("GET", "/runbook" + (f"?service={quote(service)}" if service is not None else ""))

    def tasks(self) -> dict:
        """The tasks and the action language (``GET /tasks``)."""
        return self._request("GET", "/tasks")

    def health(self) -> dict:
        """``GET /health``."""
        return self._request("GET", "/health")

    def close(self) -> None:
        """End the session on the server (``DELETE /session``) and disconnect.

        A session already gone, or a server no longer reachable, is not an error here.
        """
        try:
            self._request("DELETE", "/session")
        except IncidentIQError as exc:
            if exc.status != 404:
                raise
        except OSError:
            pass
        finally:
            self._disconnect()

    def __enter__(self) -> IncidentIQClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- transport --------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {SESSION_HEADER: self.session_id, "Accept": "application/json"}
        if self.admin_token is not None:
            headers[ADMIN_HEADER] = self.admin_token
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        with self._lock:
            connection = self._connect()
            try:
                connection.request(method, self._prefix + path, body=data, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException):
                self._disconnect()
                raise
            self._last_used = time.monotonic()
            if response.getheader("Connection", "").lower() == "close":
                self._disconnect()
        try:
            document = json.loads(raw) if raw else {}
        except ValueError:
            document = {"error": "bad_response", "detail": raw[:200].decode("utf-8", "replace")}
        if response.status >= 400:
            raise IncidentIQError(response.status, str(document.get("error", "")), str(document.get("detail", "")))
        return document

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is not None and time.monotonic() - self._last_used > IDLE_RECONNECT_SECONDS:
            self._disconnect()
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            connection = kind(self._netloc, timeout=self.timeout)
            connection.connect()
            # Small requests on a kept-alive connection must not wait for delayed ACKs.
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connection = connection
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class RemoteIncidentEnv(gym.Env[dict, str]):
    """An IncidentIQ env played on a server: the local env's spaces, observations, rewards and infos.

    ``task_id`` is a task id, ``any`` or a registered env id; ``options={"task_id": ...}``
    in ``reset`` overrides it for one episode. Actions are normalized and
    truncated as the local env does before they are sent, so any ``str`` works.
    ``close()`` ends the server-side session.
    """

    metadata = IncidentEnv.metadata

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        task_id: str = "cascading_failure",
        split: str | Split = Split.TRAIN,
        session_id: str | None = None,
        admin_token: str | None = None,
        render_mode: str | None = None,
        timeout: float = 30.0,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        template = IncidentEnv(task_id=None)
        self.observation_space = template.observation_space
        self.action_space = template.action_space
        self.task_id = task_id
        self.split = Split(split)
        self.render_mode = render_mode
        self.client = IncidentIQClient(base_url, session_id=session_id, admin_token=admin_token, timeout=timeout)
        self._last_obs: dict | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        """Start an episode on the server (the same incident as the local env draws for ``seed``)."""
        super().reset(seed=seed)
        task_id = (options or {}).get("task_id", self.task_id)
        obs, _, _, _, info = self._unpack(self.client.reset(task_id=task_id, seed=seed, split=self.split))
        return obs, info

    def step(self, action: str) -> tuple[dict, float, bool, bool, dict]:
        """Send one action; returns ``(obs, reward, terminated, truncated, info)`` as the local env does."""
        if not isinstance(action, str):
            raise TypeError(f"IncidentIQ actions are str commands, got {type(action).__name__}: {action!r:.80}")
        return self._unpack(self.client.step(normalize(action)))

    def render(self) -> str | None:
        """The text view of the last observation ("ansi" returns it, "human" prints it)."""
        if self._last_obs is None:
            raise RuntimeError("render() called before reset().")
        text = render_text(self._last_obs)
        if self.render_mode == "human":
            print(text + "\n")
            return None
        return text

    def close(self) -> None:
        """End the server-side session."""
        self.client.close()

    def _unpack(self, result: dict) -> tuple[dict, float, bool, bool, dict]:
        obs = observation_from_json(result["observation"])
        self._last_obs = obs
        if self.render_mode == "human":
            self.render()
        return obs, float(result["reward"]), bool(result["terminated"]), bool(result["truncated"]), result["info"]
