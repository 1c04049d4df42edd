"""The ``incidentiq`` command line: play an incident, evaluate an agent.

```
incidentiq play [--task T] [--seed S] [--split train|test|all]
incidentiq evaluate --agent A [--task T|all] [--split S] [--episodes N] [--seed S] [--json PATH] [--quiet]
```

``T`` is a task id (``single_service_outage``, ``cascading_failure``,
``ambiguous_payment_degradation``, ``any``) or a registered env id such as
``IncidentIQ/CascadingFailure-v0``. Every subcommand has ``--help``; bad input
exits with code 2 and a message, like ``argparse`` itself.

Agents are resolved in one place, :func:`resolve_agent`, from a value of the
form ``NAME`` or ``KIND:ARGUMENT`` (the second form is for agents that need a
path or a model name, such as a trained policy), so adding one is one entry
in :data:`AGENT_KINDS`.
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
from dataclasses import asdict, dataclass
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


def _builtin_agent(name: str) -> Callable[[str], AgentSpec]:
    def resolve(argument: str) -> AgentSpec:
        if argument:
            raise ValueError(f"agent {name!r} takes no argument, got {name}:{argument}")
        return AgentSpec(name, lambda env, seed: make_agent(name, env=env, seed=seed))

    return resolve


AGENT_KINDS: dict[str, Callable[[str], AgentSpec]] = {name: _builtin_agent(name) for name in AGENTS}
"""``--agent`` kinds: each maps the text after ``KIND:`` (empty for a plain name) to an :class:`AgentSpec`.

An agent that needs a path or a model name (``ppo:runs/x/model.zip``, ``llm:MODEL``)
is one more entry here; its resolver should import optional extras lazily.
"""


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


# ---- evaluate ---------------------------------------------------------------------------


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


def evaluate_agent(
    agent: AgentSpec,
    task: TaskChoice,
    split: str = Split.TEST.value,
    episodes: int = 100,
    seed: int = 0,
    progress: bool = False,
) -> EvalResult:
    """Play ``episodes`` episodes with seeds ``seed, seed + 1, ...`` and summarise them.

    >>> result = evaluate_agent(resolve_agent("walkthrough"), resolve_tasks("single_service_outage")[0], episodes=2)
    >>> result.success_rate
    1.0
    """
    env = gym.make(task.env_id, split=split)
    try:
        player = agent.build(env, seed)
        episodes_played = []
        with Progress(episodes, f"{agent.name} on {task.task_id}", enabled=progress) as bar:
            for k in range(episodes):
                episodes_played.append(run_episode(env, player, seed=seed + k))
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
    )


def format_results(results: Sequence[EvalResult]) -> str:
    """A plain-text table of evaluation results, one row per task."""
    header = (
        f"{'task':<32}{'agent':<13}{'split':<7}{'episodes':>9}{'mean grade':>17}"
        f"{'success':>10}{'mean steps':>12}{'mean return':>13}"
    )
    rows = [header, "-" * len(header)]
    for r in results:
        grade = f"{r.mean_grade:.3f} \u00b1 {r.std_grade:.3f}"
        rows.append(
            f"{r.task_id:<32}{r.agent:<13}{r.split:<7}{r.episodes:>9}{grade:>17}"
            f"{r.success_rate:>10.1%}{r.mean_steps:>12.2f}{r.mean_return:>+13.3f}"
        )
    return "\n".join(rows)


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
    results = [
        evaluate_agent(args.agent, task, args.split, args.episodes, args.seed, progress=not args.quiet)
        for task in args.task
    ]
    print(format_results(results))
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
        default=100,
        metavar="N",
        help="episodes per task (default: %(default)s)",
    )
    evaluate_parser.add_argument("--seed", type=seed_type, default=0, metavar="S", help="first seed (default: 0)")
    evaluate_parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    evaluate_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate_parser.set_defaults(handler=_evaluate_command)
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
