"""An agent that asks a chat model for each command, over any OpenAI-compatible API.

It needs the ``llm`` extra (``pip install "incidentiq[llm]"``, the official
``openai`` client) and three settings, read from the environment unless given
to the constructor:

| variable | meaning |
|---|---|
| ``API_BASE_URL`` | the API's base URL, such as ``https://host/v1`` (required) |
| ``MODEL_NAME`` | the model to ask (required) |
| ``HF_TOKEN`` | the API key (optional: local servers often need none) |

The system prompt is built from the env's own documentation (the Description,
Action Language and Rewards sections of ``IncidentEnv``'s docstring, and the
command and fix lists of the text view), so it holds nothing about any
particular incident. Each turn sends the text view of the observation
(:func:`incidentiq.language.render.render_text`) and the last few commands with
their feedback, and asks for the command on the first line of the reply and
reasoning on the lines after it, the shape the env reads.

Replies are cleaned (thinking blocks, code fences, quotes, ``Action:``
prefixes) and checked with :func:`incidentiq.language.parser.parse`. An empty
or unparseable reply, or a transient API error (connection, timeout, 408,
409, 429, 5xx), is retried up to ``retries`` times, a bad reply with a note
saying why it was rejected; after that the agent plays
:func:`fallback_command` (investigate the first listed service not yet
investigated, else ``escalate``). Every retry and fallback is recorded in
:attr:`LLMAgent.log`.
Other API errors (a wrong key, model or URL) are raised at once: retrying
them cannot help. Requests use temperature 0 and a fixed ``seed``, which
servers that support it use for repeatable sampling.
"""

from __future__ import annotations

import enum
import inspect
import os
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from incidentiq.envs.incident_env import IncidentEnv
from incidentiq.language.parser import parse
from incidentiq.language.render import COMMAND_HELP, FIX_HELP, render_text

BASE_URL_VAR = "API_BASE_URL"
"""Environment variable with the API's base URL."""
MODEL_VAR = "MODEL_NAME"
"""Environment variable with the model name."""
API_KEY_VAR = "HF_TOKEN"
"""Environment variable with the API key."""
NO_API_KEY = "none"
"""Sent when no key is configured: the client requires one, keyless local servers ignore it."""
INSTALL_HINT = 'pip install "incidentiq[llm]"'
TRANSIENT_STATUS = frozenset({408, 409, 429})
"""HTTP statuses worth retrying besides 5xx (timeouts, conflicts, rate limits)."""
_DOC_SECTIONS = ("Description", "Action Language", "Rewards")
"""The env docstring sections the system prompt quotes (the first paragraph of each)."""
_WHOLE_SECTIONS = ("Action Language",)
"""Sections quoted whole rather than by their first paragraph."""


def _doc_section(doc: str, title: str, whole: bool) -> str:
    """One ``## title`` section of a docstring, with RST double backticks made single."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", inspect.cleandoc(doc), re.S | re.M)
    if match is None:
        raise ValueError(f"the env docstring has no '## {title}' section")
    text = match.group(1).strip()
    if not whole:
        text = text.split("\n\n", 1)[0]
    return text.replace("``", "`")


def build_system_prompt() -> str:
    """The system prompt: the env's documentation and the reply format, nothing about one incident.

    >>> prompt = build_system_prompt()
    >>> "assign to <team>" in prompt and "Fixes: restart, rollback" in prompt
    True
    """
    sections = [
        f"{title}:\n{_doc_section(IncidentEnv.__doc__ or '', title, title in _WHOLE_SECTIONS)}"
        for title in _DOC_SECTIONS
    ]
    return "\n\n".join(
        [
            "You are the on-call site reliability engineer in IncidentIQ, a simulated production incident. "
            "The environment's documentation follows.",
            *sections,
            "Commands:\n" + "\n".join(f"  {command}" for command in COMMAND_HELP) + f"\nFixes: {FIX_HELP}",
            "Each turn you receive the incident view and your recent commands with their feedback. "
            "Reply with exactly one command on the first line, using service and team names exactly as the "
            "view lists them, and nothing else on that line: no quotes, no code fences, no 'Action:' prefix. "
            "Put your reasoning on the following lines; its last line should state your conclusion.",
        ]
    )


SYSTEM_PROMPT = build_system_prompt()
"""The system prompt every :class:`LLMAgent` sends (the same for every task and incident)."""


# ---- settings, usage and the retry log ---------------------------------------------------------


@dataclass(frozen=True)
class LLMSettings:
    """How an :class:`LLMAgent` reaches its model and how it asks."""

    model: str
    base_url: str
    api_key: str = NO_API_KEY
    temperature: float | None = 0.0
    """Sent as the request's ``temperature`` (``None`` leaves it out, for models that accept only their own)."""
    seed: int | None = 0
    """Sent as the request's ``seed`` (``None`` leaves it out, for servers that reject it)."""
    max_tokens: int | None = 256
    """Sent as ``max_tokens``, which bounds the reasoning lines (``None`` leaves it out)."""
    history: int = 8
    """How many previous commands, with their feedback, each request repeats."""
    retries: int = 2
    """Extra requests for one step after an API error or an empty or unparseable reply."""
    retry_delay: float = 1.0
    """Seconds before the first retry after an API error, doubled on each further one."""
    timeout: float = 60.0

    @classmethod
    def from_env(
        cls,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> LLMSettings:
        """Settings from the arguments, falling back to ``MODEL_NAME``, ``API_BASE_URL`` and ``HF_TOKEN``.

        Raises ``ValueError`` naming the variable to set when the model or base URL is missing.

        >>> LLMSettings.from_env("my-model", environ={"API_BASE_URL": "http://127.0.0.1:8000/v1"}).base_url
        'http://127.0.0.1:8000/v1'
        >>> LLMSettings.from_env(environ={})
        Traceback (most recent call last):
        ...
        ValueError: no model for the LLM agent: set MODEL_NAME or pass one (--agent llm:MODEL)
        """
        environ = os.environ if environ is None else environ
        model = model or environ.get(MODEL_VAR, "").strip()
        base_url = base_url or environ.get(BASE_URL_VAR, "").strip()
        api_key = api_key or environ.get(API_KEY_VAR, "").strip() or NO_API_KEY
        if not model:
            raise ValueError(f"no model for the LLM agent: set {MODEL_VAR} or pass one (--agent llm:MODEL)")
        if not base_url:
            raise ValueError(
                f"no API base URL for the LLM agent: set {BASE_URL_VAR} to an OpenAI-compatible endpoint "
                "such as https://host/v1"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown LLM settings: {', '.join(unknown)}")
        return cls(model=model, base_url=base_url, api_key=api_key, **options)


@dataclass
class TokenUsage:
    """Tokens counted by the API over some requests (``response.usage``; servers that omit it add 0)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, usage: Any) -> None:
        """Count one response's ``usage`` object (``None`` counts the request only)."""
        self.requests += 1
        if usage is not None:
            self.prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)


class EventKind(str, enum.Enum):
    """Why a step needed more than one request, or a command the model did not give."""

    API_ERROR = "api_error"
    EMPTY = "empty"
    UNPARSEABLE = "unparseable"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class LLMEvent:
    """One retry or fallback: the step (1-based), the attempt (0 is the first request), what happened."""

    step: int
    attempt: int
    kind: EventKind
    detail: str


# ---- replies ------------------------------------------------------------------------------------

_THINKING = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)
"""The thinking block some reasoning models put before their answer."""
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)(?:```|\Z)", re.S)
_INLINE_FENCE = re.compile(r"```(.*?)```", re.S)
_PREFIX = re.compile(
    r"^(?:[#>*\-\s]+|\d+[.)]\s+|\*\*|__|(?:next\s+)?(?:action|command|answer|response)\s*\**\s*:\s*\**)",
    re.I,
)
_QUOTES = "\"'`*_ \t"


def _clean_line(line: str) -> str:
    """A reply line without markdown bullets, ``Action:`` prefixes, quotes or a final period."""
    line = line.strip()
    previous = None
    while line != previous:
        previous = line
        line = _PREFIX.sub("", line, count=1).strip(_QUOTES).rstrip(".").strip()
    return line


def extract_action(reply: str | None) -> str:
    """The action a reply means: its first command line, cleaned, then its reasoning lines ("" if empty).

    A ``<think>`` block is dropped and a code fence, if any, is unwrapped first.

    >>> extract_action("```\\ninvestigate db-primary\\n```")
    'investigate db-primary'
    >>> extract_action('Action: "assign to database"\\nthe catalog says database owns it.')
    'assign to database\\nthe catalog says database owns it.'
    >>> extract_action("  \\n")
    ''
    """
    text = _THINKING.sub("", reply or "").strip()
    fenced = _FENCE.search(text) or _INLINE_FENCE.search(text)
    if fenced is not None and fenced.group(1).strip():
        text = fenced.group(1)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        command = _clean_line(line)
        if command:
            reasoning = "\n".join(lines[i + 1 :]).strip()
            return f"{command}\n{reasoning}" if reasoning else command
    return ""


def fallback_command(obs: dict) -> str:
    """What the agent plays when the model gives no usable command.

    Investigating the first listed service not yet investigated gathers evidence
    at a small cost and never repeats; once every service has been seen,
    ``escalate``.
    """
    for service, seen in zip(obs["affected_services"], obs["investigated"]):
        if not seen:
            return f"investigate {service}"
    return "escalate"


def import_openai():
    """The ``openai`` module, or an ``ImportError`` that says which extra to install."""
    try:
        import openai
    except ImportError as exc:
        raise ImportError(f"the LLM agent needs the openai client: {INSTALL_HINT}") from exc
    return openai


# ---- the agent ----------------------------------------------------------------------------------


class LLMAgent:
    """Asks a chat model for each command (see the module docstring for the protocol).

    ``model``, ``base_url`` and ``api_key`` override ``MODEL_NAME``, ``API_BASE_URL``
    and ``HF_TOKEN``; other keyword arguments are :class:`LLMSettings` fields.
    ``client`` replaces the ``openai.OpenAI`` client (anything with
    ``chat.completions.create``).

    Attributes: ``log`` (this episode's :class:`LLMEvent` list), ``usage`` (tokens
    since the agent was made), ``episode_usage`` (tokens this episode).
    """

    name = "llm"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        client: Any = None,
        **options: Any,
    ):
        self.settings = LLMSettings.from_env(model, base_url, api_key, **options)
        self.model = self.settings.model
        self._openai = import_openai()
        if client is None:
            # The client's own retries would be invisible; this agent retries, and records each one.
            client = self._openai.OpenAI(
                base_url=self.settings.base_url,
                api_key=self.settings.api_key,
                max_retries=0,
                timeout=self.settings.timeout,
            )
        self.client = client
        self.system_prompt = SYSTEM_PROMPT
        self.usage = TokenUsage()
        self.episode_usage = TokenUsage()
        self.log: list[LLMEvent] = []
        self.history: deque[tuple[str, str]] = deque(maxlen=self.settings.history)
        self._pending: str | None = None

    def reset(self, obs: dict, info: dict) -> None:
        """Start an episode: clear the history, the retry log and the episode's token count."""
        self.log = []
        self.history.clear()
        self.episode_usage = TokenUsage()
        self._pending = None

    def act(self, obs: dict, info: dict) -> str:
        """Ask the model for the next command, retrying and falling back as documented."""
        if self._pending is not None:
            self.history.append((self._pending, str(obs["feedback"])))
        step = int(obs["step_count"]) + 1
        messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.user_message(obs)},
        ]
        action = ""
        for attempt in range(self.settings.retries + 1):
            try:
                reply = self._complete(messages)
            except self._openai.OpenAIError as exc:
                if not _is_transient(self._openai, exc):
                    raise
                self.log.append(LLMEvent(step, attempt, EventKind.API_ERROR, f"{type(exc).__name__}: {exc}"))
                if attempt < self.settings.retries and self.settings.retry_delay > 0:
                    time.sleep(self.settings.retry_delay * 2**attempt)
                continue
            action = extract_action(reply)
            if not action:
                self.log.append(LLMEvent(step, attempt, EventKind.EMPTY, repr(reply)))
                problem = "it was empty"
            else:
                error = parse(action).error
                if not error:
                    break
                self.log.append(LLMEvent(step, attempt, EventKind.UNPARSEABLE, f"{reply!r}: {error}"))
                problem = f"the environment would reject it: {error}"
                action = ""
            messages = messages + [
                {"role": "assistant", "content": reply or ""},
                {
                    "role": "user",
                    "content": f"That reply is not a command ({problem}). "
                    "Reply with exactly one command on the first line, reasoning after it.",
                },
            ]
        if not action:
            action = fallback_command(obs)
            self.log.append(LLMEvent(step, self.settings.retries, EventKind.FALLBACK, action))
        self._pending = action.partition("\n")[0]
        return action

    def user_message(self, obs: dict) -> str:
        """One turn's request: the recent commands with their feedback, then the incident view."""
        parts = []
        if self.history:
            first = int(obs["step_count"]) - len(self.history) + 1
            lines = [
                f"  step {first + i}: {command}\n    -> {feedback}"
                for i, (command, feedback) in enumerate(self.history)
            ]
            parts.append("Your recent commands and their feedback (oldest first):\n" + "\n".join(lines))
        parts.append("Current incident view:\n" + render_text(obs))
        parts.append("Your next command (first line), then your reasoning:")
        return "\n\n".join(parts)

    def _complete(self, messages: list[dict[str, str]]) -> str:
        """One chat completion; returns the reply text ("" when there is none) and counts its tokens."""
        settings = self.settings
        request: dict[str, Any] = {"model": settings.model, "messages": messages}
        optional = {"temperature": settings.temperature, "seed": settings.seed, "max_tokens": settings.max_tokens}
        request.update((key, value) for key, value in optional.items() if value is not None)
        response = self.client.chat.completions.create(**request)
        usage = getattr(response, "usage", None)
        self.usage.add(usage)
        self.episode_usage.add(usage)
        choices = getattr(response, "choices", None) or []
        if not choices or choices[0].message is None:
            return ""
        return choices[0].message.content or ""


def _is_transient(openai: Any, exc: Exception) -> bool:
    """Whether an API error may go away on a retry (anything but a 4xx other than 408, 409, 429)."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in TRANSIENT_STATUS
    return True


__all__ = [
    "SYSTEM_PROMPT",
    "EventKind",
    "LLMAgent",
    "LLMEvent",
    "LLMSettings",
    "TokenUsage",
    "build_system_prompt",
    "extract_action",
    "fallback_command",
    "import_openai",
]
