"""OpenEnv compatibility: openenv-core's own clients play full episodes against our server."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path

import pytest

pytest.importorskip("fastapi")  # the server extra (which brings openenv-core); CI installs it
pytest.importorskip("openenv")

import gymnasium as gym  # noqa: E402
import yaml  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from gymnasium.utils.env_checker import data_equivalence  # noqa: E402
from openenv.cli._validation import validate_running_environment  # noqa: E402
from openenv.core import GenericEnvClient  # noqa: E402

from incidentiq.server.app import ServerSettings, serve_in_thread  # noqa: E402
from incidentiq.server.models import TASK_ENV_IDS, info_to_json, observation_from_json  # noqa: E402
from incidentiq.server.openenv_adapter import IncidentIQAction, IncidentIQEnvironment  # noqa: E402
from incidentiq.sim.tasks import TaskId  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OBS_EXTRAS = {"terminated", "truncated", "info"}


@pytest.fixture(scope="module")
def server():
    with serve_in_thread(ServerSettings(port=0, max_sessions=8, log_level="warning")) as base:
        yield base


def local_episode(task_id: str, seed: int) -> tuple[gym.Env, list[str], list[tuple]]:
    """The walkthrough of a local env and what each of its steps returns."""
    env = gym.make(TASK_ENV_IDS[task_id])
    first = env.reset(seed=seed)
    commands = env.unwrapped.walkthrough()
    steps = [env.step(command) for command in commands]
    return env, commands, [first, *steps]


def action(command: str) -> dict:
    text, _, reasoning = command.partition("\n")
    return {"action": text, "reasoning": reasoning} if reasoning else {"action": text}


def assert_same(result, expected: tuple) -> None:
    """An OpenEnv StepResult equals a local ``env.step`` result (observation, reward, done, info)."""
    obs = dict(result.observation)
    extras = {key: obs.pop(key) for key in OBS_EXTRAS}
    assert data_equivalence(observation_from_json(obs), expected[0])
    if len(expected) == 2:  # a reset
        assert extras["info"] == info_to_json(expected[1]) and result.done is False
        return
    assert result.reward == expected[1]
    assert (extras["terminated"], extras["truncated"]) == expected[2:4]
    assert result.done == (expected[2] or expected[3])
    assert extras["info"] == info_to_json(expected[4])


@pytest.mark.parametrize("task_id", [task.value for task in TaskId])
def test_sync_generic_client_plays_a_full_episode(server, task_id):
    local, commands, expected = local_episode(task_id, seed=123)
    with GenericEnvClient(base_url=server).sync() as client:
        assert_same(client.reset(task_id=task_id, seed=123), expected[0])
        state = client.state()
        assert state["step_count"] == 0 and state["ground_truth"] is None  # hidden during the episode
        for command, step in zip(commands, expected[1:]):
            assert_same(client.step(action(command)), step)
        state = client.state()
        assert state["done"] is True and state["grade"] == pytest.approx(1.0)
        assert state["ground_truth"]["root_service"] == local.unwrapped.incident.root
        assert [entry["action"] for entry in state["history"]] == commands
    local.close()


def test_async_generic_client_plays_a_full_episode(server):
    local, commands, expected = local_episode("cascading_failure", seed=321)

    async def play() -> list:
        async with GenericEnvClient(base_url=server) as client:
            results = [await client.reset(task_id="cascading_failure", seed=321)]
            for command in commands:
                # A typed OpenEnv Action works as well as a dict.
                results.append(await client.step(IncidentIQAction(**action(command))))
            return results

    results = asyncio.run(play())
    assert len(results) == len(expected)
    for result, step in zip(results, expected):
        assert_same(result, step)
    assert results[-1].done is True and results[-1].observation["info"]["is_success"] is True
    local.close()


def test_concurrent_websocket_sessions_are_isolated(server):
    async def play(seed: int) -> list:
        async with GenericEnvClient(base_url=server) as client:
            results = [await client.reset(task_id="single_service_outage", seed=seed)]
            for command in ("escalate", "resolve"):
                results.append(await client.step({"action": command}))
            return results

    async def both() -> list:
        return await asyncio.gather(play(1), play(2))

    for seed, results in zip((1, 2), asyncio.run(both())):
        _, _, expected = local_episode("single_service_outage", seed)
        local = gym.make(TASK_ENV_IDS["single_service_outage"])
        local_first = local.reset(seed=seed)
        assert_same(results[0], local_first)
        for result, command in zip(results[1:], ("escalate", "resolve")):
            assert_same(result, local.step(command))
        local.close()


def test_websocket_errors_are_reported_and_the_session_survives(server):
    with GenericEnvClient(base_url=server).sync() as client:
        with pytest.raises(RuntimeError, match="POST /reset first"):
            client.step({"action": "resolve"})
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"action": "resolve", "sideways": True})
        with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
            client.step({"action": "x" * 2000})  # over the length limit
        with pytest.raises(RuntimeError, match="unknown task 'nope'"):
            client.reset(task_id="nope")
        result = client.reset(task_id="single_service_outage", seed=9)
        assert result.observation["task_id"] == "single_service_outage"
        for _ in range(3):
            result = client.step({"action": "resolve"})
        assert result.done is True
        with pytest.raises(RuntimeError, match="is over"):
            client.step({"action": "resolve"})


def test_openenv_runtime_validation_passes(server):
    report = validate_running_environment(server)
    assert report["passed"], report["criteria"]
    assert report["mode"] == "simulation"  # our /reset, /step, /state are in the OpenAPI document
    assert report["summary"]["passed_count"] == report["summary"]["total_count"] >= 6


def test_environment_adapter_in_process():
    env = IncidentIQEnvironment()
    assert env.state.step_count == 0
    obs = env.reset(seed=3, task_id="cascading_failure", split="test")
    assert obs.done is False and obs.task_id == "cascading_failure"
    obs = env.step(IncidentIQAction(action="escalate"))
    assert obs.info["parsed_action"] == "escalate" and env.state.step_count == 1
    with pytest.raises(ValueError, match="limit is 1024"):
        IncidentIQAction(action="y" * 2000)
    assert env.get_metadata().name == "IncidentIQ"
    env.close()


def test_openenv_yaml_points_at_the_app():
    manifest = yaml.safe_load((ROOT / "openenv.yaml").read_text())
    assert manifest["name"] == "incidentiq" and manifest["port"] == 7860
    assert manifest["runtime"] == "fastapi" and manifest["spec_version"] == 1
    assert [task["id"] for task in manifest["tasks"]] == [task.value for task in TaskId]
    module_name, _, attribute = manifest["app"].partition(":")
    app = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(app, FastAPI)
    assert {"/reset", "/step", "/ws"} <= {getattr(route, "path", None) for route in app.routes}
