"""The FastAPI application: the HTTP API over sessions, plus OpenEnv's WebSocket and schema routes.

Routes (request and response models in :mod:`incidentiq.server.models`, shown at ``/docs``):

| route | what it does |
|---|---|
| ``POST /reset`` | start an episode: ``{"task_id", "seed", "split", "episode_id"}``, all optional |
| ``POST /step`` | one action: ``{"action": {"action": "...", "reasoning": "..."}}`` |
| ``GET /state`` | the episode's progress; its ground truth once over (or with the admin token) |
| ``GET /incident-meta`` | ground truth and grade: 403 during an episode without the admin token |
| ``GET /runbook?service=`` | generic diagnostic steps (the same whatever the incident) |
| ``GET /tasks`` | the tasks and the action language |
| ``GET /health`` | ``{"status": "healthy", ...}`` |
| ``DELETE /session`` | end a session and free its slot |
| ``WS /ws``, ``GET /schema``, ``GET /metadata``, ``POST /mcp`` | OpenEnv's, for its clients and tools |

Sessions: the ``X-Session-Id`` header names the session (a request without it
uses the session ``default``); every response to a session route echoes the
id in the same header. ``POST /reset`` creates the session if needed; the
other routes need an existing one: an unknown, evicted or deleted id is a 404,
a ``default`` session never reset is a 409. The server keeps at most
``max_sessions`` sessions and evicts the least recently used.

OpenEnv's WebSocket sessions are separate: one env per ``/ws`` connection,
closed with it, at most ``max_sessions`` connections at once (OpenEnv refuses
more with ``CAPACITY_REACHED``).

Errors are JSON ``{"error": code, "detail": sentence}`` (plus ``errors``, the
field errors, for a 422): 400 malformed JSON, 403 ground truth without the
admin token, 404 unknown session or route, 409 step before reset or after the
episode ended, 413 body over the size limit, 422 wrong types, unknown fields,
unknown task, action text over ``MAX_ACTION_LENGTH``.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

try:
    import uvicorn
    from fastapi import Body, FastAPI, Header, Query, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from openenv.core.env_server.http_server import HTTPEnvServer
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.websockets import WebSocketDisconnect
except ImportError as exc:
    raise ImportError(
        f'the IncidentIQ server needs the "server" extra ({exc}): pip install "incidentiq[server]"'
    ) from exc

from incidentiq import __version__
from incidentiq.language.parser import MAX_ACTION_LENGTH
from incidentiq.language.render import COMMAND_HELP
from incidentiq.server.models import (
    ADMIN_HEADER,
    DEFAULT_SESSION,
    DEFAULT_TASK,
    SESSION_HEADER,
    SESSION_ID_PATTERN,
    TASK_ENV_IDS,
    ErrorResponse,
    HealthResponse,
    IncidentMeta,
    ResetRequest,
    RunbookResponse,
    SessionClosed,
    StateResponse,
    StepRequest,
    StepResponse,
    TasksResponse,
    error_summary,
)
from incidentiq.server.openenv_adapter import IncidentIQAction, IncidentIQEnvironment, IncidentIQObservation
from incidentiq.server.runbook import known_service, runbook
from incidentiq.server.sessions import ApiError, Forbidden, NoEpisode, NotFound, SessionNotFound, SessionStore
from incidentiq.sim.commands import Fix
from incidentiq.sim.tasks import TASKS, Split, TaskId

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DEFAULT_MAX_SESSIONS = 256
MAX_BODY_BYTES = 64 * 1024
"""Requests declaring a larger body get a 413 before it is read (an action is at most 1 KiB of text)."""
ENV_ADMIN_TOKEN = "INCIDENTIQ_ADMIN_TOKEN"
"""Environment variable read for the admin token when none is given (keeps it out of the process list)."""
ENV_MAX_SESSIONS = "INCIDENTIQ_MAX_SESSIONS"
"""Environment variable read by :func:`settings_from_environ` (the module-level ``app``)."""
_MAX_ERRORS_SHOWN = 3


@dataclass(frozen=True)
class ServerSettings:
    """How a server runs: where it listens, how many sessions it keeps, its admin token."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_sessions: int = DEFAULT_MAX_SESSIONS
    admin_token: str | None = None
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {self.max_sessions}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.admin_token is not None and not self.admin_token:
            raise ValueError("the admin token must not be empty")


def settings_from_environ(environ: dict[str, str] | None = None) -> ServerSettings:
    """Settings from ``INCIDENTIQ_ADMIN_TOKEN`` and ``INCIDENTIQ_MAX_SESSIONS`` (for ``uvicorn ...app:app``)."""
    environ = os.environ if environ is None else environ
    max_sessions = environ.get(ENV_MAX_SESSIONS)
    return ServerSettings(
        max_sessions=int(max_sessions) if max_sessions else DEFAULT_MAX_SESSIONS,
        admin_token=environ.get(ENV_ADMIN_TOKEN) or None,
    )


SessionIdHeader = Annotated[
    str | None,
    Header(
        alias=SESSION_HEADER,
        pattern=SESSION_ID_PATTERN,
        description=f"the session (letters, digits and ._:-, at most 128); without it: '{DEFAULT_SESSION}'",
    ),
]
AdminTokenHeader = Annotated[
    str | None,
    Header(alias=ADMIN_HEADER, description="the admin token the server was started with: reveals ground truth"),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "malformed JSON"),
        (404, "unknown, evicted or deleted session"),
        (409, "no episode yet, or the episode is over"),
        (422, "invalid request"),
    )
}


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the application for ``settings`` (defaults: 127.0.0.1:7860, 256 sessions, no admin token)."""
    settings = settings if settings is not None else ServerSettings()
    store = SessionStore(settings.max_sessions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        title="IncidentIQ",
        version=__version__,
        summary="Production incidents as environments: investigate, route, fix and resolve before the SLA runs out.",
        description=(__doc__ or "").partition("\n\n")[2],
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.settings = settings
    app.add_middleware(_BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(_QuietWebSocketClose)
    _add_error_handlers(app)

    def admin(token: str | None) -> bool:
        if token is None:
            return False
        if settings.admin_token is None:
            raise Forbidden(f"this server was started without an admin token; drop the {ADMIN_HEADER} header")
        if not secrets.compare_digest(token.encode(), settings.admin_token.encode()):
            raise Forbidden(f"wrong {ADMIN_HEADER}")
        return True

    @app.post(
        "/reset",
        response_model=StepResponse,
        response_model_exclude_none=True,
        tags=["episode"],
        responses=_ERRORS,
        summary="Start a new episode in the session",
    )
    def reset(
        response: Response,
        body: Annotated[ResetRequest | None, Body()] = None,
        session_id: SessionIdHeader = None,
    ) -> dict[str, Any]:
        """Draw a new incident (``task_id``, ``seed``, ``split``: all optional) and return its first observation."""
        request = body if body is not None else ResetRequest()
        session_id = session_id or DEFAULT_SESSION
        response.headers[SESSION_HEADER] = session_id
        with store.locked(session_id, create=True) as session:
            return session.episode.reset(
                request.task_id or DEFAULT_TASK, request.seed, request.split, request.episode_id
            )

    @app.post(
        "/step",
        response_model=StepResponse,
        response_model_exclude_none=True,
        tags=["episode"],
        responses=_ERRORS,
        summary="Take one action",
    )
    def step(request: StepRequest, response: Response, session_id: SessionIdHeader = None) -> dict[str, Any]:
        """Apply one command (reasoning, if any, follows it on the next lines) and return what happened."""
        with _session(store, session_id, response) as session:
            return session.episode.step(request.action.text)

    @app.get("/state", response_model=StateResponse, tags=["episode"], responses=_ERRORS, summary="The episode so far")
    def state(response: Response, session_id: SessionIdHeader = None, token: AdminTokenHeader = None) -> dict:
        """Progress, history and grade; ``ground_truth`` is null during an episode unless the admin token is sent."""
        is_admin = admin(token)
        with _session(store, session_id, response) as session:
            return session.episode.state(session.session_id, admin=is_admin)

    @app.get(
        "/incident-meta",
        response_model=IncidentMeta,
        tags=["episode"],
        responses={**_ERRORS, 403: {"model": ErrorResponse, "description": "the episode runs, or a wrong admin token"}},
        summary="The incident's ground truth and grade",
    )
    def incident_meta(response: Response, session_id: SessionIdHeader = None, token: AdminTokenHeader = None) -> dict:
        """What the grader knows: served once the episode is over, or during it with the admin token."""
        is_admin = admin(token)
        with _session(store, session_id, response) as session:
            return session.episode.incident_meta(session.session_id, admin=is_admin)

    @app.delete("/session", response_model=SessionClosed, tags=["episode"], responses=_ERRORS, summary="End a session")
    def delete_session(response: Response, session_id: SessionIdHeader = None) -> dict:
        """Close the session's env and free its slot; later requests naming it get a 404."""
        session_id = session_id or DEFAULT_SESSION
        response.headers[SESSION_HEADER] = session_id
        store.delete(session_id)
        return {"session_id": session_id, "closed": True}

    @app.get("/runbook", response_model=RunbookResponse, tags=["info"], summary="Generic diagnostic steps")
    async def get_runbook(
        service: Annotated[str | None, Query(max_length=64, description="a service name (optional)")] = None,
    ) -> dict:
        """Which aspects to investigate and which fixes exist; the same for every service, whatever the incident."""
        if service is None:
            return runbook()
        name = known_service(service)
        if name is None:
            raise NotFound(f"unknown service {service!r}: the catalog has no such service")
        return runbook(name)

    @app.get("/tasks", response_model=TasksResponse, tags=["info"], summary="The tasks and the action language")
    async def tasks() -> dict:
        """Every task with its env id, difficulty, step limit and SLA, and the command grammar."""
        return _TASKS_RESPONSE

    @app.get("/health", response_model=HealthResponse, tags=["info"], summary="Health check")
    async def health() -> dict:
        """``status`` is ``healthy`` while the server runs."""
        return {
            "status": "healthy",
            "version": __version__,
            "sessions": len(store),
            "max_sessions": settings.max_sessions,
        }

    _mount_openenv(app, settings)
    return app


_TASKS_RESPONSE: dict[str, Any] = {
    "tasks": [
        {
            "task_id": task.value,
            "env_id": TASK_ENV_IDS[task.value],
            "difficulty": TASKS[task].difficulty,
            "max_steps": TASKS[task].max_steps,
            "sla_minutes": TASKS[task].sla_minutes,
            "description": TASKS[task].description,
        }
        for task in TaskId
    ],
    "default_task": DEFAULT_TASK,
    "splits": [split.value for split in Split],
    "commands": list(COMMAND_HELP),
    "fixes": [fix.value for fix in Fix],
    "max_action_length": MAX_ACTION_LENGTH,
}


@contextmanager
def _session(store: SessionStore, session_id: str | None, response: Response) -> Iterator[Any]:
    """The request's existing session, locked; a 409 (not a 404) for a ``default`` session never reset."""
    session_id = session_id or DEFAULT_SESSION
    response.headers[SESSION_HEADER] = session_id
    try:
        with store.locked(session_id) as session:
            yield session
    except SessionNotFound as exc:
        if session_id == DEFAULT_SESSION and exc.reason == "unknown":
            raise NoEpisode("no episode in the default session yet: POST /reset first") from None
        raise


# ---- errors ---------------------------------------------------------------------------------


def _error(status: int, code: str, detail: str, request: Request | None = None, **extra: Any) -> JSONResponse:
    headers = {}
    if request is not None and request.url.path in _SESSION_ROUTES:
        session_id = request.headers.get(SESSION_HEADER) or DEFAULT_SESSION
        if _VALID_SESSION_ID.fullmatch(session_id):
            headers[SESSION_HEADER] = session_id
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


_SESSION_ROUTES = frozenset({"/reset", "/step", "/state", "/incident-meta", "/session"})
_VALID_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.detail, request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        for error in errors:
            if error.get("type") == "json_invalid":
                reason = (error.get("ctx") or {}).get("error", "invalid JSON")
                return _error(400, "malformed_json", f"the request body is not valid JSON: {reason}", request)
        shown = [
            {"loc": list(error.get("loc", ())), "msg": str(error.get("msg", "")), "type": error.get("type", "")}
            for error in errors
        ]
        summary = error_summary(shown, limit=_MAX_ERRORS_SHOWN)
        return _error(422, "invalid_request", summary, request, errors=shown)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path}; see /docs"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(detail), request)


class _BodyLimit:
    """ASGI middleware: a 413 for requests whose ``Content-Length`` exceeds ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    size = int(value) if value.isdigit() else -1
                    if size > self.max_bytes or size < 0:
                        declared = f"{size} bytes" if size >= 0 else "of unreadable length"
                        detail = f"the request body is {declared}; the limit is {self.max_bytes} bytes"
                        await JSONResponse({"error": "body_too_large", "detail": detail}, status_code=413)(
                            scope, receive, send
                        )
                        return
                    break
        await self.app(scope, receive, send)


class _QuietWebSocketClose:
    """ASGI middleware: a WebSocket whose client left first ends without an error in the log.

    OpenEnv's ``/ws`` handler closes the socket after its client's ``close``
    message, and the client may already be gone by then; the resulting
    ``WebSocketDisconnect`` says nothing that needs attention.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            pass


# ---- OpenEnv ---------------------------------------------------------------------------------


def _mount_openenv(app: FastAPI, settings: ServerSettings) -> None:
    """Add OpenEnv's routes (``/ws``, ``/schema``, ``/metadata``, ``/mcp``) beside ours.

    OpenEnv's own HTTP ``/reset`` and ``/step`` make a fresh env for every
    request and forget it, so they cannot play an episode; its "production"
    mode leaves them out, and ours, with sessions, take their place. Its
    ``/health`` is dropped as well: ours answers the same ``"status": "healthy"``.
    """
    ours = {getattr(route, "path", None) for route in app.router.routes}
    first_new = len(app.router.routes)
    server = HTTPEnvServer(
        IncidentIQEnvironment, IncidentIQAction, IncidentIQObservation, max_concurrent_envs=settings.max_sessions
    )
    server.register_routes(app, mode="production")
    added = app.router.routes[first_new:]
    app.router.routes[first_new:] = [route for route in added if getattr(route, "path", None) not in ours]
    app.openapi_schema = None
    app.state.openenv = server


# ---- running ---------------------------------------------------------------------------------


def serve(settings: ServerSettings) -> None:
    """Run the server in the foreground until interrupted."""
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)


@contextmanager
def serve_in_thread(settings: ServerSettings | None = None, startup_timeout: float = 30.0) -> Iterator[str]:
    """Run a server in a background thread of this process and yield its base URL; stop it on exit.

    ``port=0`` picks a free port. For tests, notebooks and examples.
    """
    settings = settings if settings is not None else ServerSettings(port=0, log_level="warning")
    # IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on connections of a TCP-protocol socket, and
    # without it a kept-alive connection waits ~40 ms on delayed ACKs.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((settings.host, settings.port))
    host, port = listener.getsockname()[:2]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level=settings.log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="incidentiq-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the IncidentIQ server did not start on {host}:{port}")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def __getattr__(name: str) -> Any:
    # ``uvicorn incidentiq.server.app:app`` (and openenv.yaml) read this attribute; building it on
    # first access keeps imports free of side effects.
    if name == "app":
        application = create_app(settings_from_environ())
        globals()["app"] = application
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
