"""``benchmarks/revealing_question.py``: whether an agent asks the question that reveals the root cause."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
from script_loader import load_script

import incidentiq  # noqa: F401  (registers the ids)
from incidentiq.sim.faults import TEST_COMBOS
from incidentiq.sim.tasks import MAX_STEPS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "revealing_question.py"
HARD = "IncidentIQ/AmbiguousPaymentDegradation-v0"


script = load_script(SCRIPT)


class Scripted:
    """Sends ``opening`` first, then the incident's walkthrough."""

    def __init__(self, env: gym.Env, opening: list[str]):
        self.env, self.opening = env, opening

    def reset(self, obs: dict, info: dict) -> None:
        self.commands = self.opening + self.env.unwrapped.walkthrough()

    def act(self, obs: dict, info: dict) -> str:
        return self.commands.pop(0) if self.commands else "resolve"


def test_help_names_every_option():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for option in ("--task", "--split", "--episodes", "--seed", "--out", "--also-count", "--quiet", "AGENT"):
        assert option in done.stdout


def test_the_question_counts_only_before_the_first_fix():
    env = gym.make(HARD, split="test")
    for seed in range(6):
        env.reset(seed=seed)
        question = script.revealing_question(env.unwrapped.walkthrough())
        assert question.startswith("investigate ")
        played = script.play(env, Scripted(env, []), seed)
        root = env.unwrapped.incident.root
        assert played == (env.unwrapped.incident.cause, question, True, 1.0, True, root, None)
        # The same questions after a fix on the wrong service come too late to count.
        wrong = next(s for s in env.unwrapped.incident.services if s != root)
        fix_first = Scripted(env, [f"investigate {wrong}", f"mitigate: restart {wrong}"])
        late = script.play(env, fix_first, seed)
        assert not late.asked
        assert late.grade < 1.0
        assert late.first_fix_at == wrong  # the first fix, not the walkthrough's fix that followed it
        stalling = Scripted(env, ["escalate"] * MAX_STEPS)  # the step limit ends it before the walkthrough starts
        assert script.play(env, stalling, seed).first_fix_at == "none"
    env.close()


def test_a_walkthrough_without_an_investigation_is_refused():
    with pytest.raises(ValueError, match="investigates nothing"):
        script.revealing_question(["escalate", "resolve"])


def test_the_report_splits_each_held_out_cause_by_whether_the_question_was_asked(tmp_path, capsys):
    out = tmp_path / "rq.json"
    report = script.main(["walkthrough", "random", "--episodes", "24", "--quiet", "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["settings"]["env_id"] == HARD
    held_out = {f"{family}@{root}" for family, root in TEST_COMBOS}
    by_agent: dict[str, list[dict]] = {}
    for row in report["results"]:
        by_agent.setdefault(row["agent"], []).append(row)
        assert row["cause"] in held_out
        assert 0 <= row["asked"] <= row["episodes"]
        assert (row["grade_asked"] is None) == (row["asked"] == 0)
        assert (row["grade_not_asked"] is None) == (row["asked"] == row["episodes"])
        assert sum(row["first_fix_at"].values()) == row["episodes"]
    assert set(by_agent) == {"walkthrough", "random"}
    for rows in by_agent.values():
        assert sum(row["episodes"] for row in rows) == 24
    for row in by_agent["walkthrough"]:
        assert row["asked"] == row["concluded"] == row["episodes"] and row["grade"] == 1.0
        assert row["first_fix_at"] == {row["cause"].partition("@")[2]: row["episodes"]}
    assert any(row["asked"] < row["episodes"] for row in by_agent["random"])
    assert all(0 <= row["concluded"] <= row["episodes"] for row in by_agent["random"])
    printed = capsys.readouterr().out
    assert "== walkthrough" in printed and "connection_pool_exhaustion@payment-service" in printed
    assert "root first: episodes whose first fix aimed at the root service" in printed


def test_a_task_without_hypotheses_reports_no_conclusions(tmp_path):
    report = script.main(["walkthrough", "--task", "single_service_outage", "--episodes", "6", "--quiet",
                          "--out", str(tmp_path / "rq.json")])
    rows = report["results"]
    assert rows and all(row["concluded"] is None and row["asked"] == row["episodes"] for row in rows)


def test_also_count_counts_a_command_sent_at_any_point_whatever_the_cause(tmp_path, capsys):
    question = "investigate payment-service database"
    env = gym.make(HARD, split="test")
    for seed in range(6):
        env.reset(seed=seed)
        # After a fix, and in an incident it does not reveal, the command still counts as sent.
        wrong = next(s for s in env.unwrapped.incident.services if s != env.unwrapped.incident.root)
        late = Scripted(env, [f"mitigate: restart {wrong}", "look at payment-service db"])
        assert script.play(env, late, seed, also=question).sent is True
        assert script.play(env, Scripted(env, []), seed, also="investigate fraud-service deploys").sent is False
        assert script.play(env, Scripted(env, []), seed).sent is None  # nothing asked, nothing counted
    env.close()
    report = script.main(["walkthrough", "--episodes", "24", "--quiet", "--out", str(tmp_path / "rq.json"),
                          "--also-count", "check payment-service db"])
    assert report["settings"]["also_count"] == question  # read as the env reads it
    rows = report["results"]
    # The walkthrough sends it exactly in the incidents whose revealing question it is.
    assert all(row["sent"] == (row["episodes"] if row["question"] == question else 0) for row in rows)
    assert any(row["sent"] > 0 for row in rows)
    assert f"sent: episodes that sent '{question}' at any point" in capsys.readouterr().out
    plain = script.main(["walkthrough", "--episodes", "6", "--quiet", "--out", str(tmp_path / "plain.json")])
    assert plain["settings"]["also_count"] is None and all(row["sent"] is None for row in plain["results"])


@pytest.mark.parametrize("argv", [["nosuch"], ["--task", "nope", "heuristic"], ["--episodes", "0", "heuristic"],
                                  ["--also-count", "please do something", "heuristic"]])
def test_bad_arguments_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
