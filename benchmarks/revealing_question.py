"""Does an agent ask the question that reveals the root cause, and what does it score when it does not?

Usage:
    python benchmarks/revealing_question.py ppo:runs/hard/model.zip heuristic
    python benchmarks/revealing_question.py --task cascading_failure --episodes 50 random walkthrough
    python benchmarks/revealing_question.py --help

An incident's revealing question is the first investigation of its
walkthrough, the optimal commands read from the ground truth (never shown to
the agent): "investigate payment-service database" when payment-service's
connection pool is exhausted, the hard task's held-out cause that trained
policies miss most. For each agent and each cause (fault family @ root
service) the script counts the episodes in which the agent asked that
question before its first fix, and reports its mean grade over those
episodes and over the others. A cause whose grade collapses when the
question is skipped is lost to the question, not to what follows it. On
hard-task incidents it also counts the episodes whose reasoning named the
true hypothesis (the grade's reasoning credit): a policy that names the
same hypothesis whatever the evidence earns it on one cause in three. And it
counts where each episode's first fix went: to the root service or, when a
policy acts on the wrong evidence, to which other service (for pool
exhaustion in payment-service, a first fix on db-primary blames the database
behind the pool, not the service that holds it).

Agents are ``incidentiq evaluate --agent`` values (``ppo:DIR/model.zip``,
``heuristic``, ``random``, ``walkthrough``). Episodes use seeds
``--seed .. --seed + --episodes - 1`` of ``--split``, as ``incidentiq
evaluate`` does, so the grades match its ``--by-cause`` table.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym

from incidentiq.cli import AgentSpec, Progress, resolve_agent, resolve_tasks
from incidentiq.language.parser import parse
from incidentiq.sim.commands import Verb
from incidentiq.sim.tasks import Split

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "revealing_question.json"


@dataclass(frozen=True)
class CauseRow:
    """One agent on one cause: how often it asked the revealing question before fixing, and its grades."""

    agent: str
    cause: str
    question: str
    episodes: int
    asked: int
    grade: float
    grade_asked: float | None
    """Mean grade of the episodes that asked the question before the first fix (``None``: there were none)."""
    grade_not_asked: float | None
    """Mean grade of the others (``None``: there were none)."""
    concluded: int | None = None
    """Episodes whose reasoning named the true hypothesis (hard-task incidents; ``None`` when the cause had none)."""
    sent: int | None = None
    """Episodes that sent the ``--also-count`` command at any point (``None`` when none was given)."""
    first_fix_at: dict[str, int] = field(default_factory=dict)
    """Episodes by the service their first fix aimed at (``"none"``: no fix), most frequent first."""


def revealing_question(walkthrough: Sequence[str]) -> str:
    """The canonical text of the first investigation among the ``walkthrough``'s commands.

    >>> revealing_question(["escalate", "investigate payment-service database", "resolve"])
    'investigate payment-service database'
    """
    for text in walkthrough:
        parsed = parse(text)
        if parsed.command is not None and parsed.command.verb is Verb.INVESTIGATE:
            return parsed.canonical
    raise ValueError(f"the walkthrough investigates nothing: {list(walkthrough)}")


class Episode(NamedTuple):
    """One played episode, as :func:`play` reports it."""

    cause: str
    question: str
    """The incident's revealing question."""
    asked: bool
    """Whether it was asked before the first fix."""
    grade: float
    concluded: bool | None
    """Whether the reasoning named the true hypothesis (the grader's reasoning credit; ``None`` for an incident with
    no hypotheses)."""
    first_fix_at: str
    """The service the first fix aimed at (``"(no service)"`` if it named none), or ``"none"`` without a fix."""
    sent: bool | None = None
    """Whether the ``also`` command was sent at any point (``None`` when none was given)."""


def play(env: gym.Env, player, seed: int, also: str | None = None) -> Episode:
    """Play one episode with ``player`` on ``env`` seeded ``seed``; ``also`` is a canonical command to look for."""
    obs, info = env.reset(seed=seed)
    player.reset(obs, info)
    question = revealing_question(env.unwrapped.walkthrough())
    asked = sent = False
    first_fix_at = None
    while True:
        text = player.act(obs, info)
        parsed = parse(text)  # as the env reads it
        if parsed.command is not None and parsed.command.verb is Verb.MITIGATE:
            first_fix_at = first_fix_at or parsed.command.service or "(no service)"
        elif parsed.canonical == question and first_fix_at is None:
            asked = True
        sent = sent or (also is not None and parsed.canonical == also)
        obs, _, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            incident = env.unwrapped.incident
            concluded = info["grade_components"]["reasoning"] > 0 if incident.hypothesis is not None else None
            return Episode(incident.cause, question, asked, float(info["grade"]), concluded, first_fix_at or "none",
                           sent if also is not None else None)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def measure(agent: str, spec: AgentSpec, env_id: str, split: str, episodes: int, seed: int = 0,
            progress: bool = True, also: str | None = None) -> list[CauseRow]:
    """Play ``episodes`` episodes of ``env_id`` with the agent ``spec`` resolved from ``agent``; one row per cause,
    sorted by cause, named ``agent`` (the value as given: two saved policies can share a folder name). With
    ``also`` (a canonical command), each row also counts the episodes that sent it at any point."""
    env = gym.make(env_id, split=split)
    by_cause: dict[str, list[Episode]] = {}
    try:
        player = spec.build(env, seed)
        with Progress(episodes, f"{spec.name} on {env_id}", enabled=progress) as bar:
            for k in range(episodes):
                episode = play(env, player, seed + k, also)
                by_cause.setdefault(episode.cause, []).append(episode)
                bar.update()
    finally:
        env.close()
    return [_row(agent, cause, played, also is not None) for cause, played in sorted(by_cause.items())]


def _row(agent: str, cause: str, played: list[Episode], counted_also: bool) -> CauseRow:
    """One cause's row, from the episodes ``played`` on it."""
    yes = [e.grade for e in played if e.asked]
    no = [e.grade for e in played if not e.asked]
    hypotheses = any(e.concluded is not None for e in played)
    return CauseRow(agent, cause, played[0].question, len(played), len(yes), _mean(yes + no), _mean(yes), _mean(no),
                    sum(e.concluded is True for e in played) if hypotheses else None,
                    sum(e.sent for e in played) if counted_also else None,
                    dict(Counter(e.first_fix_at for e in played).most_common()))


def format_rows(rows: Sequence[CauseRow], also: str | None = None) -> str:
    """A plain-text table per agent: each cause, how often its question was asked, the grades with and without,
    (with ``also``) how often that command was sent, and where the first fixes went."""

    def grade(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines: list[str] = []
    agent = None
    for row in rows:
        if row.agent != agent:
            agent = row.agent
            lines += [f"== {agent}", f"{'cause':<46}{'asked':>9}{'grade':>8}{'asked':>8}{'not':>8}{'concluded':>11}"
                      + (f"{'sent':>9}" if also else "") + f"{'root first':>12}  first fix elsewhere"]
        root = row.cause.partition("@")[2]
        elsewhere = ", ".join(f"{service} {n}" for service, n in row.first_fix_at.items() if service != root)
        lines.append(f"{row.cause:<46}{f'{row.asked}/{row.episodes}':>9}{grade(row.grade):>8}"
                     f"{grade(row.grade_asked):>8}{grade(row.grade_not_asked):>8}"
                     f"{'-' if row.concluded is None else f'{row.concluded}/{row.episodes}':>11}"
                     + (f"{f'{row.sent}/{row.episodes}':>9}" if also else "")
                     + f"{f'{row.first_fix_at.get(root, 0)}/{row.episodes}':>12}  {elsewhere or '-'}")
    lines.append("asked: episodes that sent the cause's revealing question before their first fix, then the mean "
                 "grade of those episodes and of the others; concluded: episodes whose reasoning named the true "
                 "hypothesis (hard task)" + (f"; sent: episodes that sent '{also}' at any point" if also else "")
                 + "; root first: episodes whose first fix aimed at the root service, then where the others' first "
                 "fix aimed ('none': no fix)")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("agents", nargs="+", metavar="AGENT", help="incidentiq evaluate --agent values")
    parser.add_argument("--task", default="ambiguous_payment_degradation",
                        help="task id or env id (default: %(default)s)")
    parser.add_argument("--split", choices=[s.value for s in Split], default=Split.TEST.value,
                        help="default: %(default)s")
    parser.add_argument("--episodes", type=int, default=200, help="episodes per agent (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="first episode's seed (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report (default: %(default)s)")
    parser.add_argument("--also-count", metavar="COMMAND",
                        help="also count, per cause, the episodes that sent COMMAND at any point, whatever the cause "
                             "(e.g. 'investigate payment-service database')")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be positive")
    args.also = None
    if args.also_count is not None:
        parsed = parse(args.also_count)
        if parsed.command is None:
            parser.error(f"--also-count {args.also_count!r} is not a command: {parsed.error}")
        args.also = parsed.canonical  # compared with what the env reads each command as
    try:
        args.env_id = resolve_tasks(args.task, allow_all=False)[0].env_id
        args.specs = [resolve_agent(agent) for agent in args.agents]  # a typo fails before any episode is played
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Measure every agent, print the table and write the JSON report; return the report."""
    args = parse_args(argv)
    rows = [row for agent, spec in zip(args.agents, args.specs)
            for row in measure(agent, spec, args.env_id, args.split, args.episodes, args.seed,
                               progress=not args.quiet, also=args.also)]
    report = {
        "settings": {"agents": args.agents, "env_id": args.env_id, "split": args.split,
                     "episodes": args.episodes, "seed": args.seed, "also_count": args.also},
        "results": [asdict(row) for row in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_rows(rows, args.also))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
