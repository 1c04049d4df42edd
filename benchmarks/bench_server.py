"""HTTP throughput and latency of ``incidentiq serve`` with 1, 8 and 32 concurrent clients.

Usage:
    python benchmarks/bench_server.py                      # default budget, well under two minutes
    python benchmarks/bench_server.py --requests 200 --concurrency 1 4 --out /tmp/bench_server.json
    python benchmarks/bench_server.py --help

The server runs as users run it, ``incidentiq serve`` in a subprocess bound to
127.0.0.1 on a free port, so it has its own interpreter and the clients do
not compete with it for the GIL (they still share the machine's cores).
Each client is a thread with its own session and its own kept-alive
connection (:class:`incidentiq.client.IncidentIQClient`, standard library
only). A client plays random commands over the grammar (``RandomAgent``)
and resets when an episode ends, so the ``/step`` stream mixes valid, wrong
and repeated commands as real play does.

For each concurrency level the clients share ``--requests`` timed ``/step``
requests after a short warm-up; all start together. Reported per level:
requests/s (``/step`` and ``/reset`` over the wall time of the run),
``/step``-only requests/s, and p50/p99 latency of ``/step`` and of
``/reset``, measured at the client (so they include HTTP and JSON both ways).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from machine import cpu_model

import incidentiq
from incidentiq.agents import RandomAgent
from incidentiq.client import IncidentIQClient

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_server.json"
WARMUP_STEPS = 20
"""Untimed ``/step`` requests each client makes before the timed run."""
STARTUP_TIMEOUT = 90.0
"""Seconds to wait for the server's ``/health``."""


@dataclass
class Settings:
    """Benchmark settings; every field is a command-line option of the same name."""

    requests: int = 4000
    """timed /step requests per concurrency level, shared by its clients"""
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32])
    """numbers of concurrent clients, one level each"""
    task_id: str = "any"
    """task of every episode (a task id or any)"""
    seed: int = 0
    """seed of the first episode and of the clients' command draws"""
    out: str = str(DEFAULT_OUT)
    """where to write the JSON results"""


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Build :class:`Settings` from the command line, one option per field (its docstring is the help)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    helps = _field_docs()
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        option = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"{helps.get(f.name, '')} (default: {default})"
        if isinstance(default, list):
            parser.add_argument(option, type=int, nargs="+", default=default, metavar="N", help=help_text)
        else:
            parser.add_argument(option, type=type(default), default=default, help=help_text)
    settings = Settings(**vars(parser.parse_args(argv)))
    if settings.requests < 1 or min(settings.concurrency) < 1:
        parser.error("--requests and --concurrency must be positive")
    if settings.requests < max(settings.concurrency):
        parser.error("--requests must be at least the largest --concurrency (one request per client)")
    if settings.task_id not in ("any", *(task.value for task in incidentiq.TaskId)):
        parser.error(f"unknown --task-id {settings.task_id!r}")
    return settings


def _field_docs() -> dict[str, str]:
    """The attribute docstrings of :class:`Settings`, read from this file's source."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(Settings)).body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = str(following.value.value).strip()
    return docs


# ---- the server -------------------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(max_sessions: int) -> tuple[subprocess.Popen, str]:
    """``incidentiq serve`` on 127.0.0.1 and a free port; returns the process and its URL once healthy."""
    port = free_port()
    command = [sys.executable, "-m", "incidentiq", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--max-sessions", str(max_sessions), "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    probe = IncidentIQClient(base, timeout=2.0)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}: {process.stderr.read()[-2000:]}")
        try:
            probe.health()
            return process, base
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"no healthy server at {base} after {STARTUP_TIMEOUT:.0f} s") from None
            time.sleep(0.1)


def stop_server(process: subprocess.Popen) -> None:
    """Terminate the server and wait for it."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---- the clients ------------------------------------------------------------------------------


@dataclass
class ClientRecord:
    """What one client thread measured (seconds)."""

    steps: list[float] = field(default_factory=list)
    resets: list[float] = field(default_factory=list)
    error: str = ""


def run_client(
    base: str, name: str, steps: int, settings: Settings, seed: int, start: threading.Barrier
) -> ClientRecord:
    """Warm up, wait for the others, then make ``steps`` timed ``/step`` requests (resetting as episodes end)."""
    record = ClientRecord()
    agent = RandomAgent(seed)
    episode = seed
    clock = time.perf_counter
    with IncidentIQClient(base, session_id=name) as client:
        try:
            result = client.reset(task_id=settings.task_id, seed=episode)
            for timed, count in ((False, WARMUP_STEPS), (True, steps)):
                if timed:
                    start.wait(timeout=120)
                for _ in range(count):
                    command = agent.act(result["observation"], result["info"])
                    begin = clock()
                    result = client.step(command)
                    if timed:
                        record.steps.append(clock() - begin)
                    if result["done"]:
                        episode += 1
                        begin = clock()
                        result = client.reset(task_id=settings.task_id, seed=episode)
                        if timed:
                            record.resets.append(clock() - begin)
        except Exception as exc:  # reported in the results, and the level is marked failed
            record.error = f"{type(exc).__name__}: {exc}"
            start.abort()
    return record


def run_level(base: str, clients: int, settings: Settings) -> dict[str, Any]:
    """One concurrency level: ``clients`` threads sharing ``settings.requests`` timed steps."""
    share = [settings.requests // clients + (1 if k < settings.requests % clients else 0) for k in range(clients)]
    start = threading.Barrier(clients + 1)
    records: list[ClientRecord | None] = [None] * clients

    def work(k: int) -> None:
        records[k] = run_client(base, f"bench-{clients}-{k}", share[k], settings, settings.seed + 100_000 * k, start)

    threads = [threading.Thread(target=work, args=(k,), name=f"client-{k}") for k in range(clients)]
    for thread in threads:
        thread.start()
    try:
        start.wait(timeout=120)
    except threading.BrokenBarrierError:
        pass  # a client failed during its warm-up; its error is reported below
    begin = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - begin
    errors = [r.error for r in records if r is not None and r.error]
    steps = [latency for r in records if r is not None for latency in r.steps]
    resets = [latency for r in records if r is not None for latency in r.resets]
    return {
        "clients": clients,
        "step_requests": len(steps),
        "reset_requests": len(resets),
        "wall_s": wall,
        "requests_per_s": (len(steps) + len(resets)) / wall,
        "steps_per_s": len(steps) / wall,
        "step_p50_ms": _percentile(steps, 50),
        "step_p99_ms": _percentile(steps, 99),
        "step_mean_ms": 1000 * statistics.fmean(steps) if steps else float("nan"),
        "reset_p50_ms": _percentile(resets, 50),
        "reset_p99_ms": _percentile(resets, 99),
        "errors": errors,
    }


def _percentile(samples: list[float], q: float) -> float:
    """The ``q``-th percentile in milliseconds (nearest rank)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return 1000 * ordered[rank]


# ---- report ------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured (the load average tells how busy the machine was)."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "incidentiq": incidentiq.__version__,
        "fastapi": version("fastapi"),
        "uvicorn": version("uvicorn"),
        "openenv-core": version("openenv-core"),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def run(settings: Settings) -> dict[str, Any]:
    """Start the server, measure every concurrency level, stop it; return the JSON-ready report."""
    machine = machine_info()
    process, base = start_server(max_sessions=max(settings.concurrency) * 2)
    try:
        results = []
        for clients in settings.concurrency:
            results.append(run_level(base, clients, settings))
            print(f"{clients} clients done", file=sys.stderr, flush=True)
    finally:
        stop_server(process)
    return {
        "settings": dataclasses.asdict(settings),
        "machine": machine,
        "server": "incidentiq serve --host 127.0.0.1 --log-level warning",
        "results": results,
    }


def format_report(report: dict[str, Any]) -> str:
    """The results as a table, one line per concurrency level."""
    header = (
        f"{'clients':>8}{'requests/s':>12}{'steps/s':>10}{'step p50 ms':>13}{'step p99 ms':>13}"
        f"{'reset p50 ms':>14}{'reset p99 ms':>14}{'steps':>8}{'resets':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in report["results"]:
        lines.append(
            f"{r['clients']:>8}{r['requests_per_s']:>12,.0f}{r['steps_per_s']:>10,.0f}{r['step_p50_ms']:>13.2f}"
            f"{r['step_p99_ms']:>13.2f}{r['reset_p50_ms']:>14.2f}{r['reset_p99_ms']:>14.2f}"
            f"{r['step_requests']:>8}{r['reset_requests']:>8}" + ("  ERRORS" if r["errors"] else "")
        )
    machine = report["machine"]
    lines.append(
        f"server: incidentiq serve on 127.0.0.1 (uvicorn {machine['uvicorn']}, fastapi {machine['fastapi']}); "
        f"clients: threads in one process; python {machine['python']}, {machine['cpu_count']} cpus, "
        f"load average {machine['load_average_1m']}"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return 1 if a client failed."""
    settings = parse_settings(argv)
    report = run(settings)
    print(format_report(report))
    out = Path(settings.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}", file=sys.stderr)
    return 1 if any(r["errors"] for r in report["results"]) else 0


if __name__ == "__main__":
    sys.exit(main())
