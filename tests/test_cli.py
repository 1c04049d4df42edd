"""The ``incidentiq`` command line, in process (``main([...])``) and as ``python -m incidentiq``."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import gymnasium as gym
import pytest

import incidentiq
from incidentiq import cli
from incidentiq.cli import main

SUBCOMMANDS = ("play", "evaluate")
RESULT_KEYS = {"task_id", "agent", "split", "episodes", "mean_grade", "success_rate", "mean_steps"}
ALL_TASK_IDS = ["single_service_outage", "cascading_failure", "ambiguous_payment_degradation"]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m incidentiq ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "incidentiq", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def stdin_script(commands: list[str]) -> str:
    """Commands as a person types them: reasoning lines continue a command after a trailing backslash."""
    return "".join(command.replace("\n", " \\\n") + "\n" for command in commands)


# ---- help --------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"]] + [[name, "--help"] for name in SUBCOMMANDS])
def test_help_in_process(args, capsys):
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: incidentiq")
    if len(args) == 2:
        assert f"incidentiq {args[0]}" in out
        assert "--task" in out


@pytest.mark.parametrize("args", [["--help"]] + [[name, "--help"] for name in SUBCOMMANDS])
def test_help_subprocess(args):
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "usage: incidentiq" in done.stdout


def test_no_subcommand_is_a_usage_error():
    done = run_cli()
    assert done.returncode == 2
    assert "required" in done.stderr


def test_version(capsys):
    assert main(["--version"]) == 0
    assert incidentiq.__version__ in capsys.readouterr().out


# ---- evaluate ---------------------------------------------------------------------------


def test_evaluate_walkthrough_all_tasks_writes_json(tmp_path):
    path = tmp_path / "out" / "walkthrough.json"
    done = run_cli("evaluate", "--agent", "walkthrough", "--task", "all", "--episodes", "3", "--json", str(path))
    assert done.returncode == 0, done.stderr
    payload = json.loads(path.read_text())
    assert set(payload) == {"results"}
    results = payload["results"]
    assert [r["task_id"] for r in results] == ALL_TASK_IDS
    for result in results:
        assert RESULT_KEYS <= set(result)
        assert result["agent"] == "walkthrough"
        assert result["split"] == "test"
        assert result["episodes"] == 3
        assert result["mean_grade"] >= 0.95
        assert result["success_rate"] == 1.0
        assert 1 <= result["mean_steps"] <= 25
        assert result["task_id"] in done.stdout
    assert "mean grade" in done.stdout


def test_evaluate_heuristic_one_task_in_process(tmp_path, capsys):
    path = tmp_path / "heuristic.json"
    code = main(
        ["evaluate", "--agent", "heuristic", "--task", "single_service_outage", "--episodes", "5", "--seed", "7"]
        + ["--split", "train", "--json", str(path), "--quiet"]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert "single_service_outage" in captured.out
    assert "heuristic" in captured.out
    assert "on single_service_outage" not in captured.err  # --quiet: no progress bar
    (result,) = json.loads(path.read_text())["results"]
    assert result["task_id"] == "single_service_outage"
    assert result["split"] == "train"
    assert result["episodes"] == 5
    assert result["seed"] == 7
    assert 0.0 <= result["mean_grade"] <= 1.0
    assert 0.0 <= result["success_rate"] <= 1.0


def test_evaluate_by_cause_matches_the_incidents_played(tmp_path, capsys):
    path = tmp_path / "causes.json"
    args = ["evaluate", "--agent", "random", "--task", "ambiguous_payment_degradation", "--episodes", "12"]
    assert main(args + ["--by-cause", "--json", str(path), "--quiet"]) == 0
    (result,) = json.loads(path.read_text())["results"]
    env = gym.make("IncidentIQ/AmbiguousPaymentDegradation-v0", split="test")
    played = {}
    for seed in range(12):
        env.reset(seed=seed)
        cause = f"{env.unwrapped.incident.family.name}@{env.unwrapped.incident.root}"
        played[cause] = played.get(cause, 0) + 1
    assert result["episodes_by_cause"] == played and len(played) > 1
    counts = result["episodes_by_cause"]
    weighted = sum(result["grade_by_cause"][c] * n for c, n in counts.items()) / 12
    assert weighted == pytest.approx(result["mean_grade"])
    out = capsys.readouterr().out
    for cause, n in played.items():
        assert re.search(rf"{re.escape(cause)}\s+{n}\s", out), out
    assert main(args + ["--quiet"]) == 0
    assert "@" not in capsys.readouterr().out, "the breakdown is printed only when asked for"


def test_evaluate_accepts_env_ids_and_any(tmp_path):
    path = tmp_path / "any.json"
    code = main(
        ["evaluate", "--agent", "walkthrough", "--task", "IncidentIQ/AnyIncident-v0", "--episodes", "4", "--quiet"]
        + ["--json", str(path)]
    )
    assert code == 0
    (result,) = json.loads(path.read_text())["results"]
    assert result["task_id"] == "any"
    assert result["env_id"] == "IncidentIQ/AnyIncident-v0"
    assert result["mean_grade"] >= 0.95


def test_evaluate_is_deterministic_for_a_seed(tmp_path):
    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path in paths:
        argv = ["evaluate", "--agent", "random", "--task", "cascading_failure", "--episodes", "5", "--seed", "3"]
        assert main(argv + ["--quiet", "--json", str(path)]) == 0
    assert json.loads(paths[0].read_text()) == json.loads(paths[1].read_text())


def test_evaluate_shows_progress_on_stderr(capsys):
    assert main(["evaluate", "--agent", "walkthrough", "--task", "cascading_failure", "--episodes", "2"]) == 0
    assert "walkthrough on cascading_failure" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "bogus"], "unknown agent 'bogus'"),
        (["--agent", "heuristic:extra"], "takes no argument"),
        (["--agent", "heuristic", "--task", "nope"], "unknown task 'nope'"),
        (["--agent", "heuristic", "--episodes", "0"], "--episodes"),
        (["--agent", "heuristic", "--episodes", "-3"], "--episodes"),
        (["--agent", "heuristic", "--episodes", "many"], "--episodes"),
        (["--agent", "heuristic", "--seed", "-1"], "--seed"),
        (["--agent", "heuristic", "--split", "validation"], "--split"),
        (["--task", "all"], "--agent"),
    ],
)
def test_evaluate_bad_input_exits_2_with_a_message(args, message, capsys):
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert "error" in err
    assert message in err


def test_evaluate_bad_input_subprocess():
    for args, message in [
        (["--agent", "bogus"], "unknown agent"),
        (["--agent", "heuristic", "--task", "nope"], "unknown task"),
        (["--agent", "heuristic", "--episodes", "0"], "must be at least 1"),
    ]:
        done = run_cli("evaluate", *args)
        assert done.returncode == 2, args
        assert message in done.stderr
        assert done.stdout == ""


def test_evaluate_json_to_a_directory_is_a_usage_error(tmp_path, capsys):
    code = main(["evaluate", "--agent", "heuristic", "--episodes", "1", "--json", str(tmp_path), "--quiet"])
    assert code == 2
    assert "is a directory" in capsys.readouterr().err


# ---- the pieces evaluate is made of ----------------------------------------------------


def test_resolve_tasks():
    assert [c.task_id for c in cli.resolve_tasks("all")] == ALL_TASK_IDS
    assert cli.resolve_tasks("any")[0].env_id == "IncidentIQ/AnyIncident-v0"
    for env_id, (task_id, _) in incidentiq.ENV_IDS.items():
        (choice,) = cli.resolve_tasks(env_id)
        assert choice.env_id == env_id
        assert choice.task_id == (task_id or "any")
        assert cli.resolve_tasks(f"incidentiq:{env_id}") == (choice,)
        assert cli.resolve_tasks(choice.task_id) == (choice,)
    with pytest.raises(ValueError, match="unknown task"):
        cli.resolve_tasks("all", allow_all=False)


def test_agent_kinds_are_extensible(monkeypatch, tmp_path, capsys):
    built = []

    def resolve_scripted(argument: str) -> cli.AgentSpec:
        def build(env, seed):
            built.append((argument, seed))
            return cli.make_agent("walkthrough", env=env)

        return cli.AgentSpec(f"scripted:{argument}", build)

    monkeypatch.setitem(cli.AGENT_KINDS, "scripted", resolve_scripted)
    path = tmp_path / "scripted.json"
    argv = ["evaluate", "--agent", "scripted:runs/model.zip", "--task", "single_service_outage", "--episodes", "2"]
    assert main(argv + ["--seed", "5", "--quiet", "--json", str(path)]) == 0
    assert built == [("runs/model.zip", 5)]
    (result,) = json.loads(path.read_text())["results"]
    assert result["agent"] == "scripted:runs/model.zip"
    assert "scripted" in capsys.readouterr().out


def test_fallback_progress_line_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes ``import tqdm`` raise ImportError
    stream = io.StringIO()
    with cli.Progress(3, "work", stream=stream) as bar:
        for _ in range(3):
            bar.update()
    text = stream.getvalue()
    assert text.startswith("\rwork: [")
    assert "3/3" in text
    assert text.endswith("\n")
    quiet = io.StringIO()
    with cli.Progress(3, "work", enabled=False, stream=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


# ---- play -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "env_id"),
    [
        ("cascading_failure", "IncidentIQ/CascadingFailure-v0"),
        ("IncidentIQ/SingleServiceOutage-v0", "IncidentIQ/SingleServiceOutage-v0"),
        ("ambiguous_payment_degradation", "IncidentIQ/AmbiguousPaymentDegradation-v0"),
        ("any", "IncidentIQ/AnyIncident-v0"),
    ],
)
def test_play_walkthrough_from_stdin_reaches_the_end(task, env_id):
    seed, split = 11, "test"
    env = gym.make(env_id, split=split)
    env.reset(seed=seed)
    commands = env.unwrapped.walkthrough()
    env.close()
    done = run_cli("play", "--task", task, "--seed", str(seed), "--split", split, stdin=stdin_script(commands))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"seed {seed}" in out
    assert "INCIDENT [P" in out
    grade = re.search(r"final grade (\d\.\d\d)", out)
    assert grade is not None, out[-2000:]
    assert float(grade.group(1)) >= 0.95
    assert "success: yes" in out
    assert out.count("reward +") >= len(commands)
    assert "feedback: " in out


def test_play_help_quit_and_invalid_commands():
    done = run_cli("play", "--seed", "0", stdin="help\n\nfix everything now\nquit\n")
    assert done.returncode == 0
    out = done.stdout
    assert "assign to <team>" in out and "Fixes:" in out  # the help text
    assert "reward -0.20" in out  # the invalid command was stepped and penalised
    assert "Bye" in out
    assert "final grade" not in out


def test_play_quits_cleanly_on_end_of_input():
    done = run_cli("play", "--task", "single_service_outage", "--seed", "1", stdin="")
    assert done.returncode == 0
    assert "Bye" in done.stdout
    assert "Traceback" not in done.stderr


def test_play_in_process(monkeypatch, capsys):
    env = gym.make("IncidentIQ/SingleServiceOutage-v0")
    env.reset(seed=4)
    lines = iter(stdin_script(env.unwrapped.walkthrough()).splitlines())
    env.close()

    def fake_input(prompt: str = "") -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", fake_input)
    assert main(["play", "--task", "single_service_outage", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert "final grade" in out
    assert "success: yes" in out


def test_play_ctrl_c_quits_cleanly(monkeypatch, capsys):
    def interrupt(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", interrupt)
    assert main(["play", "--seed", "2"]) == 0
    assert "Bye" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [(["--task", "all"], "unknown task 'all'"), (["--seed", "x"], "--seed")])
def test_play_bad_input_exits_2(args, message, capsys):
    assert main(["play", *args]) == 2
    assert message in capsys.readouterr().err
