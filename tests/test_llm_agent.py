"""The LLM agent and ``evaluate --agent llm``, against a local OpenAI-compatible stub server.

These tests check the protocol, not a model: the requests the agent sends
(system prompt, text view, history, deterministic settings), how it copes
with malformed replies and API errors, its token accounting, and the
``[START]``/``[STEP]``/``[END]``/``[SUMMARY]`` log of ``evaluate``. The "model"
is :mod:`openai_stub`: a rule that reads the incident view it is sent, or a
script of replies. Tests that talk to the stub need the ``llm`` extra (the
``openai`` client) and are skipped without it; the missing-extra error is
tested with the client hidden.
"""

from __future__ import annotations

import io
import re
import sys

import gymnasium as gym
import pytest
from openai_stub import HttpFailure, StubServer, rule_based_reply, scripted

import incidentiq
from incidentiq.agents.llm import (
    INSTALL_HINT,
    NO_API_KEY,
    SYSTEM_PROMPT,
    EventKind,
    LLMAgent,
    LLMSettings,
    extract_action,
    fallback_command,
)
from incidentiq.cli import EpisodeLog, main
from incidentiq.language.parser import parse
from incidentiq.language.render import COMMAND_HELP, FIX_HELP
from incidentiq.sim.catalog import SERVICE_NAMES
from incidentiq.sim.faults import FAMILIES, Hypothesis

TASK_ENV_IDS = {task_id: env_id for env_id, (task_id, _) in incidentiq.ENV_IDS.items() if task_id is not None}
"""The three tasks' env ids by task id, in registration order."""
MAX_STEPS = {task_id: max_steps for task_id, max_steps in incidentiq.ENV_IDS.values() if task_id is not None}
SETTINGS_VARS = ("API_BASE_URL", "MODEL_NAME", "HF_TOKEN")
MODEL = "stub-model"

START = re.compile(r"^\[START\] task=(\S+) env=incidentiq model=(\S+)$")
STEP = re.compile(r"^\[STEP\] step=(\d+) action=(.+?) reward=(-?\d+\.\d{2}) done=(true|false) error=(.+)$")
END = re.compile(
    r"^\[END\] success=(true|false) steps=(\d+) score=(\d\.\d{2}) rewards=(-?\d+\.\d{2}(?:,-?\d+\.\d{2})*)$"
)
SUMMARY = re.compile(r"^\[SUMMARY\] tasks=(\d+) avg_score=(\d\.\d{4}) total_steps=(\d+) all_success=(True|False)$")
BAR = re.compile(r"^  (\S+) +\[([\u2588\u2591]{20})\] (\d\.\d{4}) \((\d+) steps(?:, (\d+) episodes)?\)$")


@pytest.fixture
def stub():
    """A running stub server whose model answers by rule (tests may replace ``stub.model``)."""
    pytest.importorskip("openai")
    with StubServer() as server:
        yield server


@pytest.fixture
def clean_environ(monkeypatch):
    """No LLM settings in the environment, whatever the machine has."""
    for name in SETTINGS_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def stub_agent(stub: StubServer, **options) -> LLMAgent:
    """An agent pointed at the stub, retrying without delay."""
    return LLMAgent(MODEL, stub.base_url, "test-token", retry_delay=0, **options)


def play(env: gym.Env, agent: LLMAgent, seed: int) -> tuple[int, dict]:
    """One episode; returns the steps played and the last ``info``."""
    obs, info = env.reset(seed=seed)
    agent.reset(obs, info)
    steps = 0
    while True:
        obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
        steps += 1
        if terminated or truncated:
            return steps, info


# ---- playing against the stub ------------------------------------------------------------------


@pytest.mark.parametrize("task_id", list(TASK_ENV_IDS))
def test_agent_plays_every_task_to_the_end(stub, make_env, task_id):
    agent = stub_agent(stub)
    env = make_env(TASK_ENV_IDS[task_id], split="test")
    steps, info = play(env, agent, seed=5)
    assert 1 <= steps <= MAX_STEPS[task_id]
    assert 0.0 <= info["grade"] <= 1.0
    assert "is_success" in info
    assert agent.log == []  # the rule-based stub always answers with a valid command
    assert len(stub.requests) == steps
    for request in stub.requests:
        assert request["model"] == MODEL
        assert request["temperature"] == 0
        assert request["seed"] == 0
        system, user = request["messages"]
        assert system == {"role": "system", "content": SYSTEM_PROMPT}
        assert user["role"] == "user"
        assert "AFFECTED SERVICES" in user["content"] and "RECENT LOGS:" in user["content"]
    # From the second step on, the request repeats the previous commands with their feedback.
    second = stub.requests[1]["messages"][1]["content"]
    first_command = parse(rule_based_reply(stub.requests[0]["messages"])).canonical
    assert f"step 1: {first_command}\n    -> Investigated" in second


def test_history_is_bounded(stub, make_env):
    agent = stub_agent(stub, history=2)
    env = make_env(TASK_ENV_IDS["ambiguous_payment_degradation"], split="test")
    steps, _ = play(env, agent, seed=1)
    assert steps > 3
    last = stub.requests[-1]["messages"][1]["content"]
    assert len(re.findall(r"^  step \d+: ", last, re.M)) == 2
    assert f"  step {steps - 1}: " in last and f"  step {steps - 3}: " not in last


def test_malformed_replies_are_retried_then_fall_back(stub, make_env):
    env = make_env(TASK_ENV_IDS["cascading_failure"], split="test")
    obs, info = env.reset(seed=2)
    services = list(obs["affected_services"])
    stub.model = scripted(
        [
            f"```text\ninvestigate {services[0]}\n```",  # step 1: fenced, used as is
            "",  # step 2: empty, retried
            f'**Action:** "investigate {services[1]}"\nits errors rose first',  # accepted on the retry
            "banana split",  # step 3: not a command
            HttpFailure(500),  # then a server error
            None,  # then a null content: retries spent, fall back
        ]
    )
    agent = stub_agent(stub)
    agent.reset(obs, info)

    assert agent.act(obs, info) == f"investigate {services[0]}"
    assert agent.log == []
    obs, _, _, _, info = env.step(f"investigate {services[0]}")

    action = agent.act(obs, info)
    assert action == f"investigate {services[1]}\nits errors rose first"
    assert [(e.step, e.attempt, e.kind) for e in agent.log] == [(2, 0, EventKind.EMPTY)]
    retry = stub.requests[2]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert "not a command" in retry[-1]["content"]
    obs, _, _, _, info = env.step(action)

    action = agent.act(obs, info)
    assert action == fallback_command(obs) == f"investigate {services[2]}"
    assert [(e.step, e.attempt, e.kind) for e in agent.log[1:]] == [
        (3, 0, EventKind.UNPARSEABLE),
        (3, 1, EventKind.API_ERROR),
        (3, 2, EventKind.EMPTY),
        (3, 2, EventKind.FALLBACK),
    ]
    assert "500" in agent.log[2].detail
    assert len(stub.requests) == 6

    agent.reset(obs, info)
    assert agent.log == []  # the log is per episode


def test_configuration_errors_are_not_retried(stub, make_env):
    openai = pytest.importorskip("openai")
    env = make_env(TASK_ENV_IDS["single_service_outage"])
    obs, info = env.reset(seed=0)
    stub.model = scripted([HttpFailure(401, "invalid api key")])
    agent = stub_agent(stub)
    agent.reset(obs, info)
    with pytest.raises(openai.AuthenticationError):
        agent.act(obs, info)
    assert len(stub.requests) == 1


def test_optional_request_fields_can_be_left_out(stub, make_env):
    env = make_env(TASK_ENV_IDS["single_service_outage"])
    obs, info = env.reset(seed=0)
    agent = stub_agent(stub, seed=None, temperature=None, max_tokens=None)
    agent.reset(obs, info)
    agent.act(obs, info)
    (request,) = stub.requests
    assert not {"seed", "temperature", "max_tokens"} & set(request)


def test_token_usage_is_summed(stub, make_env):
    env = make_env(TASK_ENV_IDS["single_service_outage"], split="test")
    agent = stub_agent(stub)
    play(env, agent, seed=0)
    first = len(stub.usages)
    assert agent.episode_usage.prompt_tokens == sum(u["prompt_tokens"] for u in stub.usages)
    assert agent.episode_usage.requests == first
    play(env, agent, seed=1)
    assert agent.usage.prompt_tokens == sum(u["prompt_tokens"] for u in stub.usages)
    assert agent.usage.completion_tokens == sum(u["completion_tokens"] for u in stub.usages)
    assert agent.usage.total_tokens == sum(u["total_tokens"] for u in stub.usages) > 0
    assert agent.usage.requests == len(stub.usages)
    assert agent.episode_usage.completion_tokens == sum(u["completion_tokens"] for u in stub.usages[first:])


# ---- the prompt and the reply format -----------------------------------------------------------


def test_system_prompt_has_the_action_language_and_no_ground_truth(make_env):
    for command in COMMAND_HELP:
        assert command in SYSTEM_PROMPT
    assert f"Fixes: {FIX_HELP}" in SYSTEM_PROMPT
    assert "The first line is one command; further lines are free-form reasoning" in SYSTEM_PROMPT
    assert "``" not in SYSTEM_PROMPT
    # Nothing about any incident: no service, fault family or hypothesis is named at all.
    for name in [*SERVICE_NAMES, *(family.name for family in FAMILIES), *(h.value for h in Hypothesis)]:
        assert name not in SYSTEM_PROMPT, name
    for env_id in TASK_ENV_IDS.values():
        env = make_env(env_id, split="all")
        for seed in range(5):
            env.reset(seed=seed)
            incident = env.unwrapped.incident
            assert incident.root not in SYSTEM_PROMPT
            assert incident.family.name not in SYSTEM_PROMPT
            assert incident.family.title not in SYSTEM_PROMPT


@pytest.mark.parametrize(
    ("reply", "action"),
    [
        ("investigate db-primary", "investigate db-primary"),
        ("```\ninvestigate db-primary\n```", "investigate db-primary"),
        ("```text\nmitigate: restart auth-service\n```\nthe pool is exhausted", "mitigate: restart auth-service"),
        ("```escalate```", "escalate"),
        ("Action: assign to database", "assign to database"),
        ('"resolve"', "resolve"),
        ("`escalate`.", "escalate"),
        ("1. investigate user-service", "investigate user-service"),
        ("\n\nNext command:\ninvestigate user-service", "investigate user-service"),
        (
            "**Command:** investigate payment-service memory\nheap grows after each deploy\nroot cause: memory_leak",
            "investigate payment-service memory\nheap grows after each deploy\nroot cause: memory_leak",
        ),
        ("mitigate: rollback auth-service deploy-12345", "mitigate: rollback auth-service deploy-12345"),
        ("<think>\nwhich service first?\n</think>\n\ninvestigate db-primary", "investigate db-primary"),
        ("<think>\nthe reply ran out of tokens while thinking", ""),
        ("", ""),
        (None, ""),
        ("   \n  ", ""),
        ("```\n```", ""),
    ],
)
def test_extract_action(reply, action):
    assert extract_action(reply) == action


def test_fallback_investigates_the_first_unseen_service_then_escalates():
    obs = {"affected_services": ("a-service", "b-service"), "investigated": [1, 0, 0, 0, 0, 0, 0, 0]}
    assert fallback_command(obs) == "investigate b-service"
    assert fallback_command({**obs, "investigated": [1, 1, 0, 0, 0, 0, 0, 0]}) == "escalate"


# ---- settings ----------------------------------------------------------------------------------


def test_settings_come_from_the_environment_and_arguments_override_them(clean_environ):
    with pytest.raises(ValueError, match="MODEL_NAME"):
        LLMSettings.from_env()
    clean_environ.setenv("MODEL_NAME", "env-model")
    with pytest.raises(ValueError, match="API_BASE_URL"):
        LLMSettings.from_env()
    clean_environ.setenv("API_BASE_URL", "http://127.0.0.1:1/v1")
    settings = LLMSettings.from_env()
    assert (settings.model, settings.base_url, settings.api_key) == ("env-model", "http://127.0.0.1:1/v1", NO_API_KEY)
    assert (settings.temperature, settings.seed) == (0.0, 0)
    clean_environ.setenv("HF_TOKEN", "env-token")
    settings = LLMSettings.from_env("arg-model", "http://127.0.0.1:2/v1", "arg-token")
    assert (settings.model, settings.base_url, settings.api_key) == ("arg-model", "http://127.0.0.1:2/v1", "arg-token")
    with pytest.raises(TypeError, match="temprature"):
        LLMSettings.from_env(temprature=1.0)


def test_missing_extra_says_what_to_install(clean_environ, capsys):
    clean_environ.setitem(sys.modules, "openai", None)  # import openai now raises ImportError
    with pytest.raises(ImportError, match=re.escape(INSTALL_HINT)):
        LLMAgent(MODEL, "http://127.0.0.1:1/v1")
    clean_environ.setenv("API_BASE_URL", "http://127.0.0.1:1/v1")
    assert main(["evaluate", "--agent", f"llm:{MODEL}"]) == 2
    assert INSTALL_HINT in capsys.readouterr().err


def test_evaluate_without_a_model_is_a_usage_error(clean_environ, capsys):
    assert main(["evaluate", "--agent", "llm"]) == 2
    assert "MODEL_NAME" in capsys.readouterr().err


# ---- evaluate --agent llm ----------------------------------------------------------------------


def parse_log(out: str) -> dict:
    """Check an episode log's lines against the formats and their arithmetic; return what they say."""
    lines = out.splitlines()
    summary_at = next(i for i, line in enumerate(lines) if line.startswith("[SUMMARY]"))
    episodes, current = [], None
    for line in lines[:summary_at]:
        if match := START.match(line):
            assert current is None, line
            current = {"task": match[1], "model": match[2], "steps": []}
        elif match := STEP.match(line):
            assert int(match[1]) == len(current["steps"]) + 1, line
            current["steps"].append(match)
        elif match := END.match(line):
            steps = current["steps"]
            assert int(match[2]) == len(steps) >= 1
            assert [s[4] for s in steps] == ["false"] * (len(steps) - 1) + ["true"]
            assert match[4].split(",") == [s[3] for s in steps]
            current.update(success=match[1] == "true", score=float(match[3]))
            episodes.append(current)
            current = None
        else:
            raise AssertionError(f"unexpected log line: {line!r}")
    assert current is None
    summary = SUMMARY.match(lines[summary_at])
    assert summary, lines[summary_at]
    bars = [BAR.match(line) for line in lines[summary_at + 1 : summary_at + 1 + int(summary[1])]]
    assert all(bars), lines[summary_at + 1 :]
    assert int(summary[3]) == sum(len(e["steps"]) for e in episodes) == sum(int(b[4]) for b in bars)
    assert summary[4] == str(all(e["success"] for e in episodes))
    scores = [float(b[3]) for b in bars]
    assert float(summary[2]) == pytest.approx(sum(scores) / len(scores), abs=1e-4)
    for bar in bars:
        assert bar[2].count("\u2588") == int(float(bar[3]) * 20 + 1e-9)
    return {"episodes": episodes, "bars": bars, "table": lines[summary_at + 1 + len(bars) :]}


def test_evaluate_llm_prints_the_inference_log(stub, clean_environ, capsys):
    clean_environ.setenv("API_BASE_URL", stub.base_url)
    clean_environ.setenv("MODEL_NAME", MODEL)
    clean_environ.setenv("HF_TOKEN", "test-token")
    assert main(["evaluate", "--agent", "llm", "--task", "all"]) == 0
    captured = capsys.readouterr()
    log = parse_log(captured.out)
    task_ids = list(TASK_ENV_IDS)
    assert [e["task"] for e in log["episodes"]] == task_ids  # one episode per task by default
    assert {e["model"] for e in log["episodes"]} == {MODEL}
    assert [b[1] for b in log["bars"]] == task_ids
    assert [float(b[3]) for b in log["bars"]] == pytest.approx([e["score"] for e in log["episodes"]], abs=0.006)
    assert any("mean grade" in line for line in log["table"])
    assert "llm on" not in captured.err  # the log replaces the progress bar
    assert len(stub.requests) == sum(len(e["steps"]) for e in log["episodes"])
    assert {r["model"] for r in stub.requests} == {MODEL}


def test_evaluate_llm_model_argument_and_episodes(stub, clean_environ, capsys):
    clean_environ.setenv("API_BASE_URL", stub.base_url)
    clean_environ.setenv("MODEL_NAME", "not-this-one")
    argv = ["evaluate", "--agent", "llm:other-model", "--task", "cascading_failure", "--episodes", "2"]
    assert main(argv) == 0
    log = parse_log(capsys.readouterr().out)
    assert [e["model"] for e in log["episodes"]] == ["other-model"] * 2
    (bar,) = log["bars"]
    assert bar[5] == "2"
    assert {r["model"] for r in stub.requests} == {"other-model"}

    assert main(argv + ["--no-log-steps", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[START]" not in out and "[SUMMARY]" not in out
    assert "llm:other-model" in out


# ---- the episode log for any agent -------------------------------------------------------------


def test_log_steps_works_for_any_agent(capsys):
    argv = ["evaluate", "--agent", "walkthrough", "--task", "single_service_outage", "--episodes", "2", "--log-steps"]
    assert main(argv) == 0
    log = parse_log(capsys.readouterr().out)
    assert [(e["model"], e["success"], e["score"]) for e in log["episodes"]] == [("walkthrough", True, 1.0)] * 2


def test_episode_log_reports_invalid_commands_and_unfinished_episodes(make_env):
    stream = io.StringIO()
    env = EpisodeLog(make_env(TASK_ENV_IDS["single_service_outage"]), "someone", stream)
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step("banana split\nno reasoning here")
    env.reset(seed=1)
    env.close()
    lines = stream.getvalue().splitlines()
    assert START.match(lines[0])
    step = STEP.match(lines[1])
    assert step[2] == "banana split" and step[5] == obs["feedback"] and step[4] == "false"
    assert lines[2] == "[END] success=false steps=1 score=0.00 rewards=-0.20"
    assert START.match(lines[3])
    assert lines[4] == "[END] success=false steps=0 score=0.00 rewards="
