"""Env throughput of every IncidentIQ id, raw and RL-wrapped, side by side with Gymnasium's CartPole-v1.

Usage:
    python benchmarks/bench_env.py                      # default budget, about five minutes
    python benchmarks/bench_env.py --steps 2000 --resets 200 --processes 1 --out /tmp/bench.json
    python benchmarks/bench_env.py --help

Both envs are built with ``gym.make``, as users run them, in the same process;
each id is also measured as trainers run it, wrapped by
``incidentiq.make_rl_env(id)`` (``gym.make`` plus token observations, a
``Discrete`` command catalog and action masks). Machines are noisy, so the
result that matters is the ratio to CartPole measured next to it, and the
script repeats interleaved rounds and reports medians. Fairness rules:

- Actions are generated before timing. CartPole gets random ints from a seeded
  numpy generator. IncidentIQ gets, per episode, a stream of commands built
  from that episode's own first observation (its listed services and roster
  teams): about 70% valid commands of the grammar, about 30% invalid ones
  (gibberish, empty, mixed intents, random unicode, over-long text). The
  wrapped env gets, per episode, integer actions drawn uniformly among the
  catalog indices that episode's first ``action_masks()`` allows (masks depend
  only on how many services, teams and hypotheses the incident lists, so they
  hold for the whole episode).
- Every step loop resets on ``terminated or truncated``, and all reset with a
  seed (``reset(seed=k)`` for the k-th episode), so the IncidentIQ actions
  match the incident they were drawn for.
- steps/s counts the time spent in ``step()`` only: the loop's resets are timed
  and subtracted, for both envs, since resets have their own measurement. The
  loop rate with resets included is reported beside it (``loop_steps_per_s``);
  it depends on episode length, which random play keeps short here (about 8
  steps against CartPole's 22).
- Resets are timed as ``reset(seed=i)`` for i = 0, 1, ... for both.
- To show where the wrapped env's time goes, the same catalog actions also
  step ``DiscreteCommands(gym.make(id))`` (text commands rendered from the
  catalog, plain observations, no tokenizer): ``catalog_steps_per_s`` and
  ``catalog_steps_ratio``, reported without a target.
- In each round every IncidentIQ id, raw and wrapped, is timed right next to
  a CartPole run of its own (alternating which goes first); a ratio is the
  median over rounds of IncidentIQ's rate over the CartPole rate measured
  beside it. The wrapped env's steps/s, too, counts only the time in
  ``step()`` (``wrapped_steps_per_s``, ``wrapped_steps_ratio``).
- The whole measurement runs in ``--processes`` fresh interpreters, one after
  another: the same code measures differently from one process to the next,
  by more than from one round to the next. Each
  rate and ratio reported is the median over the processes, and every
  process's ratios are kept under ``processes`` in the JSON.

The targets (steps ratio >= 0.25, resets ratio >= 0.10, wrapped steps ratio
>= 0.20) are reported as PASS/FAIL; the exit code is 0 either way unless
``--strict`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from machine import cpu_model

import incidentiq
from incidentiq.sim.commands import Aspect, Fix, Verb
from incidentiq.wrappers import CATALOG, CatalogCommand, DiscreteCommands

CARTPOLE_ID = "CartPole-v1"
STEPS_TARGET = 0.25
"""IncidentIQ steps/s over CartPole steps/s must be at least this (specification, Performance)."""
RESETS_TARGET = 0.10
"""IncidentIQ resets/s over CartPole resets/s must be at least this."""
WRAPPED_TARGET = 0.2
"""``make_rl_env`` steps/s (token observations, catalog actions) over CartPole steps/s must be at least this."""
TARGETS = {"steps_ratio": STEPS_TARGET, "resets_ratio": RESETS_TARGET, "wrapped_steps_ratio": WRAPPED_TARGET}
"""Each ratio with a target; a result's ``<name>_pass`` says whether ``<name>_ratio`` meets it."""
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_env.json"
INVALID_TEMPLATES: tuple[str, ...] = (
    "",
    "   ",
    "asdf qwer zxcv",
    "please do the needful",
    "sudo rm -rf /",
    "escalate and resolve",
    "resolve resolve escalate",
    "mitigate: restart rollback {service}",
    "investigate {service} and restart {service}",
    "assign to {team} and escalate",
    "restart rollback throttle kill-query failover {service} {team}",
)
"""Invalid or ambiguous commands; ``{service}`` and ``{team}`` are filled from the episode's observation."""
UNICODE_RANGES: tuple[tuple[int, int], ...] = ((0x00A0, 0x024F), (0x0370, 0x03FF), (0x3040, 0x30FF), (0x1F300, 0x1F64F))
"""Latin-1 and Latin Extended, Greek, kana and emoji: text the env must normalize or drop."""


@dataclass
class Settings:
    """Benchmark settings; every field is a command-line option of the same name."""

    steps: int = 10_000
    """env steps per timed run (each id and each CartPole run)"""
    resets: int = 2_000
    """resets per timed run"""
    rounds: int = 11
    """interleaved rounds; medians over rounds are reported (many short rounds keep each IncidentIQ
    run close in time to the CartPole run it is divided by, on machines whose speed drifts)"""
    seed: int = 0
    """seed of the action generators"""
    invalid_fraction: float = 0.3
    """share of invalid commands in the IncidentIQ action stream"""
    env_ids: list[str] = field(default_factory=lambda: list(incidentiq.ENV_IDS))
    """IncidentIQ ids to measure"""
    out: str = str(DEFAULT_OUT)
    """where to write the JSON results"""
    strict: bool = False
    """exit with code 1 when a target is missed"""
    processes: int = 3
    """fresh interpreters to repeat the whole benchmark in, one after another; each ratio reported is
    the median over them, beside their range (the wrapped ratio moves by a few hundredths from one
    process to the next)"""


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Build :class:`Settings` from the command line, one option per field (its docstring is the help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    helps = _field_docs()
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        option = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{helps.get(f.name, '')} (default: {default})"
        if isinstance(default, bool):
            parser.add_argument(option, action="store_true", help=helps.get(f.name, ""))
        elif isinstance(default, list):
            parser.add_argument(option, nargs="+", default=default, metavar="ID", help=help_text)
        else:
            parser.add_argument(option, type=type(default), default=default, help=help_text)
    args = parser.parse_args(argv)
    settings = Settings(**vars(args))
    if settings.steps < 1 or settings.resets < 1 or settings.rounds < 1 or settings.processes < 1:
        parser.error("--steps, --resets, --rounds and --processes must be positive")
    if not 0.0 <= settings.invalid_fraction <= 1.0:
        parser.error("--invalid-fraction must be in [0, 1]")
    unknown = sorted(set(settings.env_ids) - set(incidentiq.ENV_IDS))
    if unknown:
        parser.error(f"unknown ids {unknown}; choose from {list(incidentiq.ENV_IDS)}")
    return settings


def settings_argv(settings: Settings) -> list[str]:
    """The command line that :func:`parse_settings` turns back into ``settings``."""
    argv = []
    for f in dataclasses.fields(Settings):
        option, value = "--" + f.name.replace("_", "-"), getattr(settings, f.name)
        if isinstance(value, bool):
            argv += [option] if value else []
        elif isinstance(value, list):
            argv += [option, *value]
        else:
            argv += [option, str(value)]
    return argv


def _field_docs() -> dict[str, str]:
    """The attribute docstrings of :class:`Settings`, read from this file's source."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(Settings))
    body = tree.body[0].body
    docs = {}
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = str(following.value.value).strip()
    return docs


# ---- action streams, generated before any timing ----------------------------------------


def cartpole_actions(count: int, rng: np.random.Generator) -> list[int]:
    """Random CartPole actions as Python ints."""
    return [int(a) for a in rng.integers(2, size=count)]


def _random_unicode(rng: np.random.Generator) -> str:
    low, high = UNICODE_RANGES[int(rng.integers(len(UNICODE_RANGES)))]
    return "".join(chr(int(c)) for c in rng.integers(low, high, size=int(rng.integers(1, 24))))


def command_stream(obs: dict, length: int, invalid_fraction: float, rng: np.random.Generator) -> list[str]:
    """``length`` commands for the incident behind ``obs``: valid grammar over its names, mixed with invalid text."""
    services = list(obs["affected_services"])
    teams = list(obs["team_roster"]["teams"])
    aspects = [a.value for a in Aspect]
    fixes = [f.value for f in Fix]

    def pick(values: list[str]) -> str:
        return values[int(rng.integers(len(values)))]

    commands = []
    for _ in range(length):
        if rng.random() < invalid_fraction:
            kind = int(rng.integers(3))
            if kind == 0:
                commands.append(_random_unicode(rng))
            elif kind == 1:
                commands.append("investigate " + pick(services) + " " + "x" * 1200)
            else:
                commands.append(pick(list(INVALID_TEMPLATES)).format(service=pick(services), team=pick(teams)))
            continue
        verb = int(rng.integers(5))
        if verb == 0:
            aspect = f" {pick(aspects)}" if rng.random() < 0.5 else ""
            commands.append(f"investigate {pick(services)}{aspect}")
        elif verb == 1:
            commands.append(f"assign to {pick(teams)}")
        elif verb == 2:
            commands.append(f"mitigate: {pick(fixes)} {pick(services)}")
        else:
            commands.append("escalate" if verb == 3 else "resolve")
    return commands


def incident_streams(env: gym.Env, episodes: int, settings: Settings) -> list[list[str]]:
    """One command stream per episode seed 0..episodes-1, as long as the id's step limit."""
    rng = np.random.default_rng(settings.seed)
    length = env.spec.max_episode_steps
    streams = []
    for k in range(episodes):
        obs, _ = env.reset(seed=k)
        streams.append(command_stream(obs, length, settings.invalid_fraction, rng))
    return streams


def wrapped_streams(env: gym.Env, episodes: int, settings: Settings) -> list[list[int]]:
    """Per episode seed 0..episodes-1, catalog indices drawn uniformly among those its first mask allows."""
    rng = np.random.default_rng(settings.seed)
    length = env.spec.max_episode_steps
    action_masks = env.get_wrapper_attr("action_masks")
    streams = []
    for k in range(episodes):
        env.reset(seed=k)
        allowed = np.flatnonzero(action_masks())
        streams.append([int(a) for a in rng.choice(allowed, size=length)])
    return streams


# ---- timed loops ---------------------------------------------------------------------------


def time_cartpole_steps(env: gym.Env, actions: list[int]) -> tuple[float, float]:
    """CartPole (steps/s in ``step()``, steps/s of the whole loop), resetting with the next seed at episode ends."""
    episode, in_resets = 0, 0.0
    clock = time.perf_counter
    env.reset(seed=episode)
    start = clock()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            episode += 1
            begin = clock()
            env.reset(seed=episode)
            in_resets += clock() - begin
    total = clock() - start
    return len(actions) / (total - in_resets), len(actions) / total


def time_incident_steps(env: gym.Env, streams: list[list[Any]], steps: int) -> tuple[float, float]:
    """IncidentIQ, raw or wrapped: (steps/s in ``step()``, of the loop); episode k has seed ``k % len(streams)``."""
    episode, position, in_resets = 0, 0, 0.0
    clock = time.perf_counter
    env.reset(seed=0)
    commands = streams[0]
    start = clock()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(commands[position])
        position += 1
        if terminated or truncated:
            episode += 1
            index = episode % len(streams)
            begin = clock()
            env.reset(seed=index)
            in_resets += clock() - begin
            commands, position = streams[index], 0
    total = clock() - start
    return steps / (total - in_resets), steps / total


def time_resets(env: gym.Env, count: int) -> float:
    """Seeded resets per second."""
    start = time.perf_counter()
    for i in range(count):
        env.reset(seed=i)
    return count / (time.perf_counter() - start)


def _warm_up(env: gym.Env, action: Any) -> None:
    # The passive env checker that gym.make adds inspects the first reset and step only.
    env.reset(seed=0)
    env.step(action)


def _paired(first: Callable[[], float], second: Callable[[], float], swap: bool) -> tuple[float, float]:
    if swap:
        b = second()
        return first(), b
    a = first()
    return a, second()


def run(settings: Settings) -> dict:
    """Time every id against CartPole over interleaved rounds; return the JSON-ready report."""
    rng = np.random.default_rng(settings.seed)
    cartpole = gym.make(CARTPOLE_ID)
    actions = cartpole_actions(settings.steps, rng)
    _warm_up(cartpole, actions[0])
    envs, streams, wrapped_envs, wrapped_actions, catalog_envs = {}, {}, {}, {}, {}
    escalate = CATALOG.index(CatalogCommand(Verb.ESCALATE))
    for env_id in settings.env_ids:
        env = gym.make(env_id)
        # Random play ends an episode in about ten steps; a stream per four steps covers
        # the timed run, and seeds wrap around if an unusual run needs more episodes.
        streams[env_id] = incident_streams(env, max(1, settings.steps // 4), settings)
        _warm_up(env, "escalate")
        envs[env_id] = env
        wrapped = incidentiq.make_rl_env(env_id)
        wrapped_actions[env_id] = wrapped_streams(wrapped, max(1, settings.steps // 4), settings)
        _warm_up(wrapped, escalate)
        wrapped_envs[env_id] = wrapped
        catalog_envs[env_id] = DiscreteCommands(gym.make(env_id))
        _warm_up(catalog_envs[env_id], escalate)

    raw: dict[str, dict[str, list[float]]] = {
        env_id: {
            key: []
            for key in (
                "steps",
                "loop_steps",
                "resets",
                "cartpole_steps",
                "cartpole_loop_steps",
                "cartpole_resets",
                "wrapped_steps",
                "cartpole_wrapped_steps",
                "catalog_steps",
                "cartpole_catalog_steps",
            )
        }
        for env_id in envs
    }
    for round_index in range(settings.rounds):
        swap = round_index % 2 == 1
        for env_id, env in envs.items():
            record = raw[env_id]
            cart_steps, incident_steps = _paired(
                lambda: time_cartpole_steps(cartpole, actions),
                lambda env=env, env_id=env_id: time_incident_steps(env, streams[env_id], settings.steps),
                swap,
            )
            cart_resets, incident_resets = _paired(
                lambda: time_resets(cartpole, settings.resets),
                lambda env=env: time_resets(env, settings.resets),
                swap,
            )
            record["cartpole_steps"].append(cart_steps[0])
            record["cartpole_loop_steps"].append(cart_steps[1])
            record["steps"].append(incident_steps[0])
            record["loop_steps"].append(incident_steps[1])
            record["cartpole_resets"].append(cart_resets)
            record["resets"].append(incident_resets)
            # The wrapped env, then the same catalog actions without the tokenizer.
            for key, stepped in (("wrapped", wrapped_envs[env_id]), ("catalog", catalog_envs[env_id])):
                cart_steps, incident_steps = _paired(
                    lambda: time_cartpole_steps(cartpole, actions),
                    lambda stepped=stepped, env_id=env_id: time_incident_steps(
                        stepped, wrapped_actions[env_id], settings.steps
                    ),
                    swap,
                )
                record[f"cartpole_{key}_steps"].append(cart_steps[0])
                record[f"{key}_steps"].append(incident_steps[0])
        print(f"round {round_index + 1}/{settings.rounds} done", file=sys.stderr, flush=True)

    results = []
    for env_id, record in raw.items():
        steps_ratio = statistics.median(a / b for a, b in zip(record["steps"], record["cartpole_steps"], strict=True))
        loop_ratio = statistics.median(
            a / b for a, b in zip(record["loop_steps"], record["cartpole_loop_steps"], strict=True)
        )
        resets_ratio = statistics.median(
            a / b for a, b in zip(record["resets"], record["cartpole_resets"], strict=True)
        )
        wrapped_ratio = statistics.median(
            a / b for a, b in zip(record["wrapped_steps"], record["cartpole_wrapped_steps"], strict=True)
        )
        catalog_ratio = statistics.median(
            a / b for a, b in zip(record["catalog_steps"], record["cartpole_catalog_steps"], strict=True)
        )
        results.append(
            {
                "env_id": env_id,
                "steps_per_s": statistics.median(record["steps"]),
                "resets_per_s": statistics.median(record["resets"]),
                "cartpole_steps_per_s": statistics.median(record["cartpole_steps"]),
                "cartpole_resets_per_s": statistics.median(record["cartpole_resets"]),
                "steps_ratio": steps_ratio,
                "loop_steps_per_s": statistics.median(record["loop_steps"]),
                "cartpole_loop_steps_per_s": statistics.median(record["cartpole_loop_steps"]),
                "loop_steps_ratio": loop_ratio,
                "resets_ratio": resets_ratio,
                "wrapped_steps_per_s": statistics.median(record["wrapped_steps"]),
                "cartpole_wrapped_steps_per_s": statistics.median(record["cartpole_wrapped_steps"]),
                "wrapped_steps_ratio": wrapped_ratio,
                "catalog_steps_per_s": statistics.median(record["catalog_steps"]),
                "catalog_steps_ratio": catalog_ratio,
                "rounds": record,
            }
        )
        results[-1].update(verdicts(results[-1]))
    for env in (*envs.values(), *wrapped_envs.values(), *catalog_envs.values()):
        env.close()
    cartpole.close()
    return {
        "settings": dataclasses.asdict(settings),
        "machine": machine_info(),
        "targets": TARGETS,
        "results": results,
    }


RATIO_KEYS = ("steps_ratio", "resets_ratio", "loop_steps_ratio", "wrapped_steps_ratio", "catalog_steps_ratio")
"""The ratios to CartPole a report gives per id."""


def verdicts(result: dict) -> dict[str, bool]:
    """``steps_pass``, ``resets_pass`` and ``wrapped_steps_pass``: whether each ratio of ``result`` meets its target."""
    return {key.removesuffix("ratio") + "pass": result[key] >= target for key, target in TARGETS.items()}


def run_processes(settings: Settings) -> dict:
    """:func:`run` in ``settings.processes`` fresh interpreters, one after another; their combined report."""
    reports = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(settings.processes):
            print(f"process {k + 1}/{settings.processes}", file=sys.stderr, flush=True)
            out = Path(tmp) / f"process-{k}.json"
            child = dataclasses.replace(settings, processes=1, out=str(out), strict=False)
            subprocess.run([sys.executable, __file__, *settings_argv(child)], check=True, stdout=subprocess.DEVNULL)
            reports.append(json.loads(out.read_text(encoding="utf-8")))
    return combine_reports(reports, settings)


def combine_reports(reports: list[dict], settings: Settings) -> dict:
    """One report from several processes' reports: per id, the median of each rate and ratio over the
    processes, PASS/FAIL judged on those medians, and each ratio's per-process values under ``processes``."""
    results = []
    for per_process in zip(*(report["results"] for report in reports), strict=True):
        first = per_process[0]
        combined: dict[str, Any] = {"env_id": first["env_id"]}
        for key, value in first.items():
            if isinstance(value, float):
                combined[key] = statistics.median(result[key] for result in per_process)
        combined.update(verdicts(combined))
        combined["processes"] = {key: [result[key] for result in per_process] for key in RATIO_KEYS}
        results.append(combined)
    return {
        "settings": dataclasses.asdict(settings),
        "machine": machine_info(),
        "targets": TARGETS,
        "results": results,
    }


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "incidentiq": incidentiq.__version__,
        "cpu_count": os.cpu_count(),
    }


def format_report(report: dict) -> str:
    """The results as two tables (raw, then wrapped), one line per id, with PASS/FAIL against the targets."""
    header = (
        f"{'env id':<44}{'steps/s':>10}{'CartPole':>11}{'ratio':>8}{'':>6}"
        f"{'resets/s':>11}{'CartPole':>11}{'ratio':>8}{'':>6}{'loop ratio':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in report["results"]:
        lines.append(
            f"{r['env_id']:<44}{r['steps_per_s']:>10,.0f}{r['cartpole_steps_per_s']:>11,.0f}"
            f"{r['steps_ratio']:>8.3f}{'PASS' if r['steps_pass'] else 'FAIL':>6}"
            f"{r['resets_per_s']:>11,.0f}{r['cartpole_resets_per_s']:>11,.0f}"
            f"{r['resets_ratio']:>8.3f}{'PASS' if r['resets_pass'] else 'FAIL':>6}"
            f"{r['loop_steps_ratio']:>12.3f}"
        )
    wrapped_header = (
        f"{'make_rl_env(id)':<44}{'steps/s':>10}{'CartPole':>11}{'ratio':>8}{'':>6}{'catalog only':>14}"
        f"{'ratio range':>14}"
    )
    lines += ["", wrapped_header, "-" * len(wrapped_header)]
    for r in report["results"]:
        ratios = r.get("processes", {}).get("wrapped_steps_ratio", [r["wrapped_steps_ratio"]])
        lines.append(
            f"{r['env_id']:<44}{r['wrapped_steps_per_s']:>10,.0f}{r['cartpole_wrapped_steps_per_s']:>11,.0f}"
            f"{r['wrapped_steps_ratio']:>8.3f}{'PASS' if r['wrapped_steps_pass'] else 'FAIL':>6}"
            f"{r['catalog_steps_ratio']:>14.3f}{f'{min(ratios):.3f}-{max(ratios):.3f}':>14}"
        )
    targets = report["targets"]
    machine = report["machine"]
    lines.append("steps/s: time in step() only; loop ratio: steps/s with the loop's resets included (no target)")
    lines.append("catalog only: DiscreteCommands(gym.make(id)), the wrapped env without its tokenizer (no target)")
    settings = report["settings"]
    lines.append("ratio range: the lowest and highest of the processes' wrapped ratios")
    lines.append(
        f"targets: steps ratio >= {targets['steps_ratio']}, resets ratio >= {targets['resets_ratio']}, "
        f"wrapped steps ratio >= {targets['wrapped_steps_ratio']} "
        f"(medians over {settings['processes']} processes of {settings['rounds']} rounds; python {machine['python']}, "
        f"numpy {machine['numpy']}, gymnasium {machine['gymnasium']}, {machine['cpu_count']} cpus)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return 1 only for a missed target with ``--strict``."""
    settings = parse_settings(argv)
    report = run(settings) if settings.processes == 1 else run_processes(settings)
    print(format_report(report))
    out = Path(settings.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")  # on stdout, which the processes of a multi-process run send to /dev/null
    passed = all(r["steps_pass"] and r["resets_pass"] and r["wrapped_steps_pass"] for r in report["results"])
    return 1 if settings.strict and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
