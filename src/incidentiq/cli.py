"""The ``incidentiq`` command line: play an incident, evaluate an agent.

```
incidentiq play [--task T] [--seed S] [--split train|test|all]
incidentiq evaluate --agent A [--task T|all] [--split S] [--episodes N] [--seed S] [--json PATH] [--quiet]
                    [--by-cause] [--log-steps | --no-log-steps]
incidentiq serve [--host H] [--port P] [--max-sessions N] [--admin-token T] [--log-level L]
incidentiq train [--task T] [--timesteps N] [--n-envs K] [--seed S] [--out DIR] [--subprocess] [--mix T=K]
                 [--split train|all] [--evidence-conclusions] [--learning-rate LR] [--final-learning-rate LR]
                 [--ent-coef C] [--final-ent-coef C] [--batch-size N] [--n-epochs N] [--n-steps N] [--gamma G]
                 [--quiet]
```

``T`` is a task id (``single_service_outage``, ``cascading_failure``,
``ambiguous_payment_degradation``, ``any``) or a registered env id such as
``IncidentIQ/CascadingFailure-v0``. Every subcommand has ``--help``; bad input
exits with code 2 and a message, like ``argparse`` itself.

Agents are resolved in one place, :func:`resolve_agent`, from a value of the
form ``NAME`` or ``KIND:ARGUMENT`` (the second form is for agents that need a
path or a model name, such as a trained policy), so adding one is one entry
in :data:`AGENT_KINDS`. ``llm`` or ``llm:MODEL`` asks a chat model over an
OpenAI-compatible API (the ``llm`` extra; see :mod:`incidentiq.agents.llm`).

``evaluate --log-steps`` writes each episode as ``[START]``, ``[STEP]`` and
``[END]`` lines and closes with a ``[SUMMARY]`` (:class:`EpisodeLog`); LLM
agents turn it on by default.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import gymnasium as gym

from incidentiq import ENV_IDS, __version__
from incidentiq.agents import AGENTS, make_agent, run_episode
from incidentiq.language.render import COMMAND_HELP, FIX_HELP
from incidentiq.sim.tasks import Split

ANY_TASK = "any"
"""The task name of ``IncidentIQ/AnyIncident-v0``, which samples a task per reset."""
ALL_TASKS = "all"
"""``evaluate --task all``: each of the three tasks in turn."""
ENV_ID_PREFIX = "incidentiq:"
"""Accepted in front of an env id, as ``gym.make`` accepts it."""
USAGE_ERROR = 2
"""Exit code for bad input, as ``argparse`` uses."""
INTERRUPTED = 130
"""Exit code after Ctrl-C outside ``play`` (128 + SIGINT), as shells use."""
QUIT_WORDS = frozenset({"quit", "exit", "q"})
PLAY_HELP = "\n".join(
    [
        "Commands (one intent per command; case does not matter):",
        *(f"  {command}" for command in COMMAND_HELP),
        f"Fixes: {FIX_HELP}",
        "Synonyms work: check / inspect / look at, route / hand off, roll back / revert,",
        "renew / rotate cert, kill query, fail over; the 'mitigate:' prefix is optional.",
        "A command that names two verbs, fixes, services or teams is rejected.",
        "End a line with '\\' to add reasoning lines after the command (the hard task",
        "gives credit for a reasoning that concludes the true hypothesis).",
        "Other: help (this text), quit (leave the game). Ctrl-D / Ctrl-C also quit.",
    ]
)
"""What ``help`` prints during ``incidentiq play``."""


class UsageError(Exception):
    """Bad input discovered after parsing; ``main`` prints it and returns exit code 2."""


# ---- tasks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskChoice:
    """One registered env a subcommand runs: its id and its task name (``any`` for AnyIncident)."""

    env_id: str
    task_id: str


TASK_CHOICES: tuple[TaskChoice, ...] = tuple(
    TaskChoice(env_id, task_id if task_id is not None else ANY_TASK) for env_id, (task_id, _) in ENV_IDS.items()
)
"""Every registered env, in registration order."""


def resolve_tasks(value: str, allow_all: bool = True) -> tuple[TaskChoice, ...]:
    """Turn a ``--task`` value (task id, env id, ``any`` or ``all``) into the envs to run.

    >>> [choice.env_id for choice in resolve_tasks("cascading_failure")]
    ['IncidentIQ/CascadingFailure-v0']
    >>> [choice.task_id for choice in resolve_tasks("all")]
    ['single_service_outage', 'cascading_failure', 'ambiguous_payment_degradation']
    >>> resolve_tasks("incidentiq:IncidentIQ/AnyIncident-v0")[0].task_id
    'any'
    """
    key = value.strip().casefold()
    if allow_all and key == ALL_TASKS:
        return tuple(choice for choice in TASK_CHOICES if choice.task_id != ANY_TASK)
    key = key.removeprefix(ENV_ID_PREFIX)
    for choice in TASK_CHOICES:
        if key in (choice.task_id, choice.env_id.casefold()):
            return (choice,)
    names = [choice.task_id for choice in TASK_CHOICES] + ([ALL_TASKS] if allow_all else [])
    raise ValueError(
        f"unknown task {value!r}; choose one of {', '.join(names)} or an env id such as {TASK_CHOICES[1].env_id}"
    )


# ---- agents -----------------------------------------------------------------------------


class Agent(Protocol):
    """What ``evaluate`` needs from an agent (every agent in ``incidentiq.agents`` has it)."""

    def reset(self, obs: dict, info: dict) -> None:
        """Start a new episode from its first observation."""

    def act(self, obs: dict, info: dict) -> str:
        """Return the next command."""


AgentBuilder = Callable[[gym.Env, int | None], Agent]
"""Builds an agent for one env and a seed (the env is needed by agents that use ground truth)."""


@dataclass(frozen=True)
class AgentSpec:
    """A resolved ``--agent`` value: the name reported in results and how to build the agent."""

    name: str
    build: AgentBuilder
    model: str = ""
    """The model an episode log names (``[START] ... model=``); the agent's name when empty."""
    episodes: int | None = None
    """Episodes per task when ``evaluate`` gets no ``--episodes`` (``None``: :data:`DEFAULT_EPISODES`)."""
    log_steps: bool = False
    """Whether ``evaluate`` prints the per-step episode log even without ``--log-steps``."""


def _builtin_agent(name: str) -> Callable[[str], AgentSpec]:
    def resolve(argument: str) -> AgentSpec:
        if argument:
            raise ValueError(f"agent {name!r} takes no argument, got {name}:{argument}")
        return AgentSpec(name, lambda env, seed: make_agent(name, env=env, seed=seed))

    return resolve


def _llm_agent(argument: str) -> AgentSpec:
    """``llm`` or ``llm:MODEL``: a chat model over an OpenAI-compatible API (the ``llm`` extra).

    The model defaults to ``MODEL_NAME``; the endpoint and key come from
    ``API_BASE_URL`` and ``HF_TOKEN``. Every step is a paid request, so
    ``evaluate`` plays one episode per task unless ``--episodes`` says
    otherwise, and prints the per-step episode log.
    """
    from incidentiq.agents import llm

    settings = llm.LLMSettings.from_env(argument.strip() or None)
    try:
        llm.import_openai()
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    return AgentSpec(
        f"llm:{settings.model}",
        lambda env, seed: llm.LLMAgent(settings.model, settings.base_url, settings.api_key, seed=seed),
        model=settings.model,
        episodes=1,
        log_steps=True,
    )


AGENT_KINDS: dict[str, Callable[[str], AgentSpec]] = {name: _builtin_agent(name) for name in AGENTS}
"""``--agent`` kinds: each maps the text after ``KIND:`` (empty for a plain name) to an :class:`AgentSpec`.

An agent that needs a path or a model name (``ppo:runs/x/model.zip``, ``llm:MODEL``)
is one more entry here; its resolver should import optional extras lazily.
"""
AGENT_KINDS["llm"] = _llm_agent


def _ppo_agent(argument: str) -> AgentSpec:
    """``ppo:PATH``: a MaskablePPO policy saved by ``incidentiq train`` (the ``train`` extra)."""
    path = Path(argument.strip())
    if not argument.strip():
        raise ValueError("agent 'ppo' needs the saved model: ppo:DIR/model.zip")
    if path.is_dir():
        path = path / "model.zip"
    if not path.is_file():
        raise ValueError(f"no trained model at {path}")
    try:
        from incidentiq.train import PPOAgent
    except ImportError as exc:
        raise ValueError(str(exc)) from None
    policy = PPOAgent.load(path)
    return AgentSpec(f"ppo:{path.parent.name or path.name}", lambda env, seed: policy)


AGENT_KINDS["ppo"] = _ppo_agent


def resolve_agent(value: str) -> AgentSpec:
    """Turn an ``--agent`` value (``NAME`` or ``KIND:ARGUMENT``) into an :class:`AgentSpec`.

    >>> resolve_agent("heuristic").name
    'heuristic'
    """
    kind, _, argument = value.strip().partition(":")
    resolver = AGENT_KINDS.get(kind.casefold())
    if resolver is None:
        raise ValueError(f"unknown agent {value!r}; choose one of {', '.join(AGENT_KINDS)}")
    return resolver(argument)


# ---- progress ---------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr: tqdm's when tqdm is installed, else one line updated in place.

    tqdm is optional (the core package depends only on gymnasium, numpy and
    pydantic), so the fallback keeps ``evaluate`` informative without it.
    """

    MIN_INTERVAL = 0.1
    """Seconds between redraws of the built-in line, so a fast loop does not flood the terminal."""

    def __init__(self, total: int, description: str, enabled: bool = True, stream: TextIO | None = None):
        self.total = total
        self.description = description
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.count = 0
        self._last_draw = -math.inf
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=description, file=self.stream, unit="ep", leave=True)

    def update(self, n: int = 1) -> None:
        """Record ``n`` more finished items."""
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled:
            now = time.monotonic()
            if now - self._last_draw >= self.MIN_INTERVAL or self.count >= self.total:
                self._last_draw = now
                self._draw()

    def close(self) -> None:
        """Finish the bar and move to a new line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
            self.enabled = False

    def _draw(self) -> None:
        width = 30
        fraction = self.count / self.total if self.total else 1.0
        filled = int(width * fraction)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(f"\r{self.description}: [{bar}] {self.count}/{self.total} ({fraction:4.0%})")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---- episode log ------------------------------------------------------------------------

LOG_ENV_NAME = "incidentiq"
"""The ``env=`` field of ``[START]`` lines."""
SUMMARY_BAR_WIDTH = 20
"""Characters in each task's score bar under ``[SUMMARY]``."""


def _log_number(value: float) -> str:
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _log_text(text: str) -> str:
    """Free text as one log field: newlines and runs of whitespace become single spaces."""
    return " ".join(text.split())


class EpisodeLog(gym.Wrapper):
    """Writes one line per reset, step and episode end: the log format of LLM inference runs.

    ```
    [START] task=cascading_failure env=incidentiq model=MODEL
    [STEP] step=1 action=investigate auth-service reward=0.23 done=false error=null
    [END] success=true steps=4 score=1.00 rewards=0.23,0.10,0.52,0.30
    ```

    ``action`` is the canonical command, or the first line of the text sent when
    the env rejected it, and ``error`` is then the env's feedback (else ``null``);
    ``score`` is the episode's grade. An episode still open at ``close`` gets an
    ``[END]`` with ``success=false``. :func:`format_log_summary` writes the
    ``[SUMMARY]`` that closes a run.
    """

    def __init__(self, env: gym.Env, model: str, stream: TextIO | None = None):
        super().__init__(env)
        self.model = model
        self.stream = stream if stream is not None else sys.stdout
        self._rewards: list[float] | None = None
        self._score = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset the env and write ``[START]`` (after an ``[END]`` for an unfinished episode)."""
        self._end_open_episode()
        obs, info = self.env.reset(seed=seed, options=options)
        self._rewards = []
        self._score = float(obs["score"][0])
        self._write(f"[START] task={obs['task_id']} env={LOG_ENV_NAME} model={self.model}")
        return obs, info

    def step(self, action: str):
        """Step the env and write ``[STEP]``, then ``[END]`` if the episode is over."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        self._rewards.append(float(reward))
        self._score = float(info.get("grade", obs["score"][0]))
        valid = bool(info["action_valid"])
        shown = info["parsed_action"] if valid else action.partition("\n")[0]
        error = "null" if valid else _log_text(str(obs["feedback"]))
        self._write(
            f"[STEP] step={len(self._rewards)} action={_log_text(shown)} reward={_log_number(reward)} "
            f"done={str(done).lower()} error={error}"
        )
        if done:
            self._end(bool(info["is_success"]))
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """End an unfinished episode's log, then close the env."""
        self._end_open_episode()
        super().close()

    def _end_open_episode(self) -> None:
        if self._rewards is not None:
            self._end(False)

    def _end(self, success: bool) -> None:
        rewards = ",".join(_log_number(r) for r in self._rewards)
        self._write(
            f"[END] success={str(success).lower()} steps={len(self._rewards)} "
            f"score={_log_number(self._score)} rewards={rewards}"
        )
        self._rewards = None

    def _write(self, line: str) -> None:
        # Flushed per line: LLM runs are slow, and whoever reads the log wants each step as it happens.
        print(line, file=self.stream, flush=True)


# ---- evaluate ---------------------------------------------------------------------------

DEFAULT_EPISODES = 100
"""Episodes per task when neither ``--episodes`` nor the agent kind says otherwise."""


@dataclass(frozen=True)
class EvalResult:
    """The summary of one agent on one env over consecutive seeds."""

    task_id: str
    env_id: str
    agent: str
    split: str
    episodes: int
    seed: int
    mean_grade: float
    std_grade: float
    success_rate: float
    mean_steps: float
    mean_return: float
    grade_by_cause: dict[str, float] = field(default_factory=dict)
    """Mean grade per cause, ``"family@root service"``, read from the ground truth once each episode ends."""
    episodes_by_cause: dict[str, int] = field(default_factory=dict)
    """How many of the episodes each cause had."""


def evaluate_agent(
    agent: AgentSpec,
    task: TaskChoice,
    split: str = Split.TEST.value,
    episodes: int = 100,
    seed: int = 0,
    progress: bool = False,
    log: TextIO | None = None,
) -> EvalResult:
    """Play ``episodes`` episodes with seeds ``seed, seed + 1, ...`` and summarise them.

    With ``log``, every episode is also written there step by step (:class:`EpisodeLog`).

    >>> result = evaluate_agent(resolve_agent("walkthrough"), resolve_tasks("single_service_outage")[0], episodes=2)
    >>> result.success_rate
    1.0
    """
    env = gym.make(task.env_id, split=split)
    if log is not None:
        env = EpisodeLog(env, agent.model or agent.name, log)
    try:
        player = agent.build(env, seed)
        episodes_played, by_cause = [], {}
        with Progress(episodes, f"{agent.name} on {task.task_id}", enabled=progress) as bar:
            for k in range(episodes):
                episode = run_episode(env, player, seed=seed + k)
                episodes_played.append(episode)
                incident = env.unwrapped.incident  # the episode is over: its truth may be reported
                by_cause.setdefault(incident.cause, []).append(float(episode["grade"]))
                bar.update()
    finally:
        env.close()
    grades = [float(e["grade"]) for e in episodes_played]
    mean_grade = sum(grades) / episodes
    return EvalResult(
        task_id=task.task_id,
        env_id=task.env_id,
        agent=agent.name,
        split=split,
        episodes=episodes,
        seed=seed,
        mean_grade=mean_grade,
        std_grade=math.sqrt(sum((g - mean_grade) ** 2 for g in grades) / episodes),
        success_rate=sum(bool(e["success"]) for e in episodes_played) / episodes,
        mean_steps=sum(int(e["steps"]) for e in episodes_played) / episodes,
        mean_return=sum(float(e["return"]) for e in episodes_played) / episodes,
        grade_by_cause={cause: sum(g) / len(g) for cause, g in sorted(by_cause.items())},
        episodes_by_cause={cause: len(g) for cause, g in sorted(by_cause.items())},
    )


def format_causes(results: Sequence[EvalResult]) -> str:
    """A plain-text table of the mean grade per cause (fault family and root service), per task."""
    header = f"{'task':<32}{'cause':<48}{'episodes':>9}{'mean grade':>12}"
    rows = [header, "-" * len(header)]
    for r in results:
        for cause, grade in r.grade_by_cause.items():
            rows.append(f"{r.task_id:<32}{cause:<48}{r.episodes_by_cause[cause]:>9}{grade:>12.3f}")
    return "\n".join(rows)


def format_results(results: Sequence[EvalResult]) -> str:
    """A plain-text table of evaluation results, one row per task."""
    # Agent names such as llm:MODEL can be long; the column grows to fit them.
    agent_width = max([13] + [len(r.agent) + 2 for r in results])
    header = (
        f"{'task':<32}{'agent':<{agent_width}}{'split':<7}{'episodes':>9}{'mean grade':>17}"
        f"{'success':>10}{'mean steps':>12}{'mean return':>13}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        grade = f"{r.mean_grade:.3f} \u00b1 {r.std_grade:.3f}"
        rows.append(
            f"{r.task_id:<32}{r.agent:<{agent_width}}{r.split:<7}{r.episodes:>9}{grade:>17}"
            f"{r.success_rate:>10.1%}{r.mean_steps:>12.2f}{r.mean_return:>+13.3f}"
        )
    return "\n".join(rows)


def format_log_summary(results: Sequence[EvalResult]) -> str:
    """The ``[SUMMARY]`` line and one score bar per task that close an episode log.

    ``avg_score`` is the mean over tasks of each task's mean grade, ``total_steps``
    counts every step played and ``all_success`` says whether every episode was resolved.
    """
    total_steps = sum(round(r.mean_steps * r.episodes) for r in results)
    avg_score = sum(r.mean_grade for r in results) / len(results)
    all_success = all(r.success_rate == 1.0 for r in results)
    lines = [
        f"[SUMMARY] tasks={len(results)} avg_score={avg_score:.4f} total_steps={total_steps} all_success={all_success}"
    ]
    width = max(len(r.task_id) for r in results)
    for r in results:
        # The epsilon keeps a grade such as 0.95 from losing a cell to float rounding.
        filled = min(SUMMARY_BAR_WIDTH, int(r.mean_grade * SUMMARY_BAR_WIDTH + 1e-9))
        bar = "\u2588" * filled + "\u2591" * (SUMMARY_BAR_WIDTH - filled)
        episodes = f", {r.episodes} episodes" if r.episodes > 1 else ""
        steps = round(r.mean_steps * r.episodes)
        lines.append(f"  {r.task_id:<{width}} [{bar}] {r.mean_grade:.4f} ({steps} steps{episodes})")
    return "\n".join(lines)


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--json {path}: is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--json {path}: cannot create its directory ({exc.strerror})") from exc
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"--json {path}: not writable")


def _evaluate_command(args: argparse.Namespace) -> int:
    json_path = Path(args.json) if args.json else None
    if json_path is not None:
        _check_writable(json_path)
    episodes = args.episodes or args.agent.episodes or DEFAULT_EPISODES
    log_steps = args.agent.log_steps if args.log_steps is None else args.log_steps
    log = sys.stdout if log_steps else None
    # With the episode log on, its lines are the progress; a bar on stderr would only interleave with them.
    progress = not args.quiet and log is None
    results = [
        evaluate_agent(args.agent, task, args.split, episodes, args.seed, progress=progress, log=log)
        for task in args.task
    ]
    if log is not None:
        print(format_log_summary(results), file=log)
    print(format_results(results))
    if args.by_cause:
        print()
        print(format_causes(results))
    if json_path is not None:
        payload = {"results": [asdict(r) for r in results]}
        try:
            json_path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--json {json_path}: cannot write ({exc.strerror})") from exc
        print(f"wrote {json_path}", file=sys.stderr)
    return 0


# ---- play -------------------------------------------------------------------------------


def _read_command(read: Callable[[str], str]) -> str:
    """One command, with reasoning lines when a line ends in a backslash."""
    lines = [read("> ")]
    while lines[-1].rstrip().endswith("\\"):
        lines[-1] = lines[-1].rstrip()[:-1].rstrip()
        lines.append(read("... "))
    return "\n".join(lines).strip()


def _signed_parts(parts: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:+.2f}" for name, value in parts.items() if value)


def play(
    task: TaskChoice,
    seed: int | None = None,
    split: str = Split.TRAIN.value,
    read: Callable[[str], str] | None = None,
    out: TextIO | None = None,
) -> int:
    """Let a person play one incident: show the text view, read a command, step, repeat.

    ``read`` is the builtin ``input`` by default; ``help`` prints the action language and
    ``quit`` (or end of input, or Ctrl-C) leaves. Returns the exit code.
    """
    read = read if read is not None else input
    out = out if out is not None else sys.stdout

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    if seed is None:
        # The simulator takes its randomness from the seed alone; a person who
        # wants to replay this incident needs to know which seed it was.
        seed = secrets.randbelow(2**31)
    env = gym.make(task.env_id, split=split, render_mode="ansi")
    try:
        env.reset(seed=seed)
        say(f"IncidentIQ {__version__}: {task.env_id}, split {split}, seed {seed}. Type 'help' for commands.")
        say()
        total, steps = 0.0, 0
        while True:
            say(env.render())
            say()
            while True:
                try:
                    command = _read_command(read)
                except (EOFError, KeyboardInterrupt):
                    say()
                    say("Left the incident unresolved. Bye.")
                    return 0
                word = command.casefold()
                if word in QUIT_WORDS:
                    say("Left the incident unresolved. Bye.")
                    return 0
                if word in ("help", "?"):
                    say(PLAY_HELP)
                    continue
                if command:
                    break
            obs, reward, terminated, truncated, info = env.step(command)
            total += float(reward)
            steps += 1
            parts = _signed_parts(info["reward_components"])
            say(f"reward {reward:+.2f}" + (f"  [{parts}]" if parts else ""))
            say(f"feedback: {obs['feedback']}")
            if not info["action_valid"]:
                say("(type 'help' for the command language)")
            if terminated or truncated:
                say()
                say(env.render())
                say()
                ending = "resolved" if info["is_success"] else ("time limit reached" if truncated else "failed")
                say(f"=== Incident over: {ending} after {steps} steps, total reward {total:+.2f} ===")
                grades = ", ".join(f"{name} {value:.2f}" for name, value in info["grade_components"].items())
                say(f"final grade {info['grade']:.2f}  [{grades}]")
                say(f"success: {'yes' if info['is_success'] else 'no'}")
                say("walkthrough: " + " | ".join(env.unwrapped.walkthrough()))
                return 0
            say()
    finally:
        env.close()


def _play_command(args: argparse.Namespace) -> int:
    return play(args.task[0], args.seed, args.split)


# ---- serve ------------------------------------------------------------------------------


def _serve_command(args: argparse.Namespace) -> int:
    # The server stack is an optional extra: import it only when asked to serve.
    try:
        from incidentiq.server.app import ENV_ADMIN_TOKEN, ServerSettings, serve
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    token = args.admin_token if args.admin_token is not None else os.environ.get(ENV_ADMIN_TOKEN) or None
    try:
        settings = ServerSettings(
            host=args.host, port=args.port, max_sessions=args.max_sessions, admin_token=token, log_level=args.log_level
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    serve(settings)
    return 0


def _mix_entry(text: str) -> tuple[str, int]:
    """``TASK=K`` as ``(env id, K)``."""
    task, sep, count = text.rpartition("=")
    if not sep:
        raise ValueError(f"expected TASK=K, such as single_service_outage=2, got {text!r}")
    (choice,) = resolve_tasks(task, allow_all=False)
    return choice.env_id, _int_at_least(1)(count)


def _port_number(text: str) -> int:
    port = _int_at_least(1)(text)
    if port > 65535:
        raise ValueError(f"must be at most 65535, got {port}")
    return port


# ---- train ------------------------------------------------------------------------------


PPO_OPTIONS = ("learning_rate", "final_learning_rate", "ent_coef", "final_ent_coef", "batch_size", "n_epochs",
               "n_steps", "gamma")
"""The ``PPOSettings`` fields that :func:`add_ppo_options` turns into options of the same name."""


def add_ppo_options(parser: argparse.ArgumentParser) -> None:
    """Add an option per field of :data:`PPO_OPTIONS` (``--learning-rate LR`` and so on) to ``parser``.

    Each defaults to ``None``, which :func:`chosen_ppo_options` reads as
    PPOSettings' own default (the help states it). ``incidentiq train`` and
    ``benchmarks/bench_training.py`` share them.
    """
    number = _argument_type("number", _finite_float)
    count = _argument_type("count", _int_at_least(1))
    for option, kind, metavar, text in (
        ("--learning-rate", number, "LR", "the learning rate a run starts at (default: 0.001)"),
        ("--final-learning-rate", number, "LR",
         "the rate it decays to, linearly, by the end of the run (default: 0.0)"),
        ("--ent-coef", number, "C", "the entropy bonus a run starts at (default: 0.03)"),
        ("--final-ent-coef", number, "C", "the bonus it decays to, linearly, by the end of the run, at most "
         "--ent-coef (default: no decay)"),
        ("--batch-size", count, "N",
         "env steps per minibatch, at most one rollout (--n-steps steps of each env) (default: 256)"),
        ("--n-epochs", count, "N", "passes over each rollout (default: 8)"),
        ("--n-steps", count, "N", "env steps each env plays per rollout (default: 256)"),
        ("--gamma", number, "G", "the discount of future rewards, in (0, 1] (default: 0.95)"),
    ):
        parser.add_argument(option, type=kind, metavar=metavar, help=text)


def chosen_ppo_options(args: argparse.Namespace, defaults: Any) -> dict[str, Any]:
    """The :data:`PPO_OPTIONS` values ``args`` sets, each option left out taking its value from ``defaults``."""
    return {name: getattr(defaults, name) if getattr(args, name) is None else getattr(args, name)
            for name in PPO_OPTIONS}


def _train_command(args: argparse.Namespace) -> int:
    try:
        from incidentiq.train import (
            PPOSettings,
            TrainSettings,
            mixed_env_ids,
            option_name,
            ppo_problem,
            train,
        )
    except ImportError as exc:
        raise UsageError(str(exc)) from exc
    (task,) = args.task
    try:
        mixed_env_ids(task.env_id, args.n_envs, args.mix)
    except ValueError as exc:
        raise UsageError(f"--mix: {exc}") from exc
    out = Path(args.out) if args.out else Path("runs") / task.task_id
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    chosen = chosen_ppo_options(args, PPOSettings)
    problem = ppo_problem(**chosen, n_envs=args.n_envs, name=option_name)
    if problem is not None:
        raise UsageError(problem)
    settings = TrainSettings(
        env_id=task.env_id,
        timesteps=args.timesteps,
        seed=args.seed,
        n_envs=args.n_envs,
        subprocess=args.subprocess,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        final_episodes=args.final_episodes,
        out=out,
        mix=tuple(args.mix),
        split=args.split,
        ppo=PPOSettings(n_envs=args.n_envs, evidence_conclusions=args.evidence_conclusions, **chosen),
    )
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    metrics = train(settings, progress=not args.quiet, log=say)
    for env_id, value in metrics["final_test_grade"].items():
        reference = metrics["reference_test_grade"][env_id]
        print(
            f"{env_id}: mean test grade {value:.3f} over {settings.final_episodes} held-out incidents "
            f"(random {reference['random']:.3f}, heuristic {reference['heuristic']:.3f})"
        )
    reached = metrics["steps_to_target"]
    if reached is not None:  # 0 when the untrained policy already grades the target
        grades = ", ".join(f"{grade:.3f}" for grade in metrics["grade_at_target"].values())
        target = (f"reached {metrics['target_grade']} at {reached} steps, {metrics['seconds_to_target']:.0f} s "
                  f"of training (that policy: {grades} over {settings.final_episodes} incidents the curve never "
                  "played)")
    else:
        target = "did not reach the target"
    print(f"{metrics['timesteps']} steps in {metrics['wall_seconds']:.0f} s; {target}")
    written = [out / name for name in ("model.zip", "model_at_target.zip", "metrics.json", "learning_curve.png")]
    print("wrote " + ", ".join(str(path) for path in written if path.exists()))
    return 0


# ---- argument parsing -------------------------------------------------------------------


def _argument_type(name: str, convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap ``convert`` so its ``ValueError`` message reaches the user verbatim."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = name
    return parse


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}, got {value}")
        return value

    return convert


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``incidentiq`` argument parser, with one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog="incidentiq",
        description="IncidentIQ: production incidents as Gymnasium environments.",
    )
    parser.add_argument("--version", action="version", version=f"incidentiq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    task_names = ", ".join(choice.task_id for choice in TASK_CHOICES)
    splits = [split.value for split in Split]
    seed_type = _argument_type("seed", _int_at_least(0))

    play_parser = commands.add_parser(
        "play",
        help="play an incident in the terminal",
        description="Play an incident: read the text view, type commands, get the grade at the end.",
    )
    play_parser.add_argument(
        "--task",
        type=_argument_type("task", lambda text: resolve_tasks(text, allow_all=False)),
        default=resolve_tasks("cascading_failure"),
        metavar="T",
        help=f"task id ({task_names}) or env id such as IncidentIQ/CascadingFailure-v0 (default: cascading_failure)",
    )
    play_parser.add_argument(
        "--seed", type=seed_type, default=None, metavar="S", help="incident seed (default: random)"
    )
    play_parser.add_argument("--split", choices=splits, default=Split.TRAIN.value, help="default: %(default)s")
    play_parser.set_defaults(handler=_play_command)

    evaluate_parser = commands.add_parser(
        "evaluate",
        help="evaluate an agent over many seeds",
        description="Run an agent for N episodes per task (seeds S, S+1, ...) and report grade, success and steps.",
    )
    evaluate_parser.add_argument(
        "--agent",
        type=_argument_type("agent", resolve_agent),
        required=True,
        metavar="A",
        help=f"agent: {', '.join(AGENT_KINDS)}",
    )
    evaluate_parser.add_argument(
        "--task",
        type=_argument_type("task", resolve_tasks),
        default=resolve_tasks(ALL_TASKS),
        metavar="T",
        help=f"task id ({task_names}), env id, or all = the three tasks (default: all)",
    )
    evaluate_parser.add_argument("--split", choices=splits, default=Split.TEST.value, help="default: %(default)s")
    evaluate_parser.add_argument(
        "--episodes",
        type=_argument_type("episodes", _int_at_least(1)),
        default=None,
        metavar="N",
        help=f"episodes per task (default: {DEFAULT_EPISODES}; 1 for llm, whose every step is a paid request)",
    )
    evaluate_parser.add_argument("--seed", type=seed_type, default=0, metavar="S", help="first seed (default: 0)")
    evaluate_parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    evaluate_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate_parser.add_argument(
        "--by-cause", action="store_true",
        help="also print the mean grade per cause (fault family and root service), from the ground truth "
        "of each finished episode; --json always holds it",
    )
    evaluate_parser.add_argument(
        "--log-steps",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="print [START]/[STEP]/[END] lines per episode and a [SUMMARY] (default: on for llm, else off)",
    )
    evaluate_parser.set_defaults(handler=_evaluate_command)

    serve_parser = commands.add_parser(
        "serve",
        help="serve the environments over HTTP",
        description="Serve IncidentIQ over HTTP: JSON routes with one episode per session, and OpenEnv's "
        'WebSocket. Needs the server extra: pip install "incidentiq[server]".',
    )
    serve_parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    serve_parser.add_argument(
        "--port", type=_argument_type("port", _port_number), default=7860, metavar="P", help="default: %(default)s"
    )
    serve_parser.add_argument(
        "--max-sessions",
        type=_argument_type("max-sessions", _int_at_least(1)),
        default=256,
        metavar="N",
        help="sessions kept at once; the least recently used is evicted (default: %(default)s)",
    )
    serve_parser.add_argument(
        "--admin-token",
        default=None,
        metavar="T",
        help="requests carrying it in X-Admin-Token see ground truth during an episode "
        "(default: $INCIDENTIQ_ADMIN_TOKEN, else none)",
    )
    serve_parser.add_argument(
        "--log-level", choices=["critical", "error", "warning", "info", "debug"], default="info", help="default: info"
    )
    serve_parser.set_defaults(handler=_serve_command)

    train_parser = commands.add_parser(
        "train",
        help="train a MaskablePPO policy",
        description="Train MaskablePPO on the train split of a task, follow its mean grade on held-out test-split "
        "incidents, and write DIR/model.zip, DIR/metrics.json and DIR/learning_curve.png (and "
        "DIR/model_at_target.zip, the first policy to reach a mean grade of 0.9). Needs the train extra: "
        'pip install "incidentiq[train]".',
    )
    train_parser.add_argument(
        "--task",
        type=_argument_type("task", lambda text: resolve_tasks(text, allow_all=False)),
        default=resolve_tasks("cascading_failure"),
        metavar="T",
        help=f"task id ({task_names}) or env id (default: cascading_failure)",
    )
    count = _argument_type("count", _int_at_least(1))
    train_parser.add_argument("--timesteps", type=count, default=300_000, metavar="N", help="default: %(default)s")
    train_parser.add_argument("--n-envs", type=count, default=8, metavar="K", help="parallel envs (default: 8)")
    train_parser.add_argument("--seed", type=seed_type, default=0, metavar="S", help="default: 0")
    train_parser.add_argument("--out", metavar="DIR", help="output directory (default: runs/TASK)")
    train_parser.add_argument("--subprocess", action="store_true", help="step the envs in subprocesses")
    train_parser.add_argument(
        "--mix",
        type=_argument_type("mix", _mix_entry),
        action="append",
        default=[],
        metavar="T=K",
        help="let K of the envs play task T's incidents instead (repeatable; their steps count toward --timesteps, "
        "the grades stay on --task), e.g. --mix single_service_outage=2",
    )
    train_parser.add_argument(
        "--split",
        choices=("train", "all"),
        default="train",
        help="split the training envs draw from; 'all' adds the held-out (family, root) pairs, to measure what "
        "generalizing to them costs (the grades stay on the test split; default: train)",
    )
    train_parser.add_argument(
        "--eval-every", type=count, default=10_000, metavar="N", help="env steps between curve points (default: 10000)"
    )
    train_parser.add_argument(
        "--eval-episodes",
        type=count,
        default=100,
        metavar="N",
        help="held-out incidents per curve point (default: 100)",
    )
    train_parser.add_argument(
        "--final-episodes",
        type=count,
        default=200,
        metavar="N",
        help="held-out incidents for the final grade (default: 200)",
    )
    train_parser.add_argument(
        "--evidence-conclusions",
        action="store_true",
        help="score the hard task's conclusions (\"resolve concluding hypothesis k\") from what the findings say "
        "rather than from the whole incident's context, and resolve hard incidents only by concluding one",
    )
    add_ppo_options(train_parser)
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar or curve log")
    train_parser.set_defaults(handler=_train_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``incidentiq`` command line and return its exit code (2 for bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # argparse exits on --help (0) and on bad input (2); callers of main() get the code.
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"incidentiq {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
