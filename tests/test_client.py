"""The HTTP client and ``RemoteIncidentEnv`` against a real server on 127.0.0.1."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")  # the server extra, for the server these clients talk to; CI installs it

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium.utils.env_checker import check_env, data_equivalence  # noqa: E402

from incidentiq import client as client_module  # noqa: E402
from incidentiq.agents import HeuristicAgent, run_episode  # noqa: E402
from incidentiq.client import IncidentIQClient, IncidentIQError, RemoteIncidentEnv  # noqa: E402
from incidentiq.server.app import ServerSettings, serve_in_thread  # noqa: E402
from incidentiq.server.models import TASK_ENV_IDS, info_to_json  # noqa: E402

ADMIN = "client-admin"
TASK_IDS = ("single_service_outage", "cascading_failure", "ambiguous_payment_degradation")


@pytest.fixture(scope="module")
def server():
    with serve_in_thread(ServerSettings(port=0, admin_token=ADMIN, log_level="warning")) as base:
        with IncidentIQClient(base) as probe:
            assert probe.health()["status"] == "healthy"
        yield base


# ---- IncidentIQClient ---------------------------------------------------------------------


def test_client_round_trip(server):
    with IncidentIQClient(server) as client:
        assert len(client.session_id) == 32  # a session of its own
        assert [t["task_id"] for t in client.tasks()["tasks"]] == list(TASK_IDS)
        first = client.reset(task_id="cascading_failure", seed=4, split="test")
        assert first["observation"]["task_id"] == "cascading_failure" and first["done"] is False
        service = first["observation"]["affected_services"][0]
        result = client.step(f"investigate {service}", reasoning="first look")
        assert result["info"]["parsed_action"] == f"investigate {service}"
        state = client.state()
        assert state["session_id"] == client.session_id and state["split"] == "test"
        assert state["history"][0]["action"] == f"investigate {service}\nfirst look"
        assert client.runbook(service)["service"] == service
        with pytest.raises(IncidentIQError) as caught:
            client.incident_meta()
        assert (caught.value.status, caught.value.error) == (403, "forbidden")
    # close() ended the session on the server.
    with pytest.raises(IncidentIQError) as caught:
        client.state()
    assert caught.value.status == 404 and "deleted" in caught.value.detail
    client.close()  # closing twice is fine


def test_clients_do_not_share_sessions(server):
    with IncidentIQClient(server) as one, IncidentIQClient(server) as two:
        one.reset(task_id="single_service_outage", seed=1)
        two.reset(task_id="ambiguous_payment_degradation", seed=1)
        one.step("escalate")
        assert one.state()["step_count"] == 1 and two.state()["step_count"] == 0
        assert two.state()["task_id"] == "ambiguous_payment_degradation"


def test_a_sessions_random_name_does_not_reach_its_incidents(server):
    # Each client names its session with a fresh uuid; the incident and every step come from the seed alone.
    with IncidentIQClient(server) as one, IncidentIQClient(server) as two:
        assert one.session_id != two.session_id
        first = [one.reset(task_id="cascading_failure", seed=9), two.reset(task_id="cascading_failure", seed=9)]
        assert first[0] == first[1]
        service = first[0]["observation"]["affected_services"][0]
        for command in (f"investigate {service}", "escalate", "resolve"):
            assert one.step(command) == two.step(command)


def test_client_admin_token_and_errors(server, monkeypatch):
    with IncidentIQClient(server, session_id="client-admin-session", admin_token=ADMIN) as admin:
        admin.reset(task_id="single_service_outage", seed=2)
        local = gym.make(TASK_ENV_IDS["single_service_outage"])
        local.reset(seed=2)
        assert admin.incident_meta()["ground_truth"]["walkthrough"] == local.unwrapped.walkthrough()
        local.close()
        with pytest.raises(IncidentIQError) as caught:
            admin.step("x" * 5000)
        assert caught.value.status == 422 and "limit is 1024" in caught.value.detail
        # A connection that sat idle is replaced before the next request.
        monkeypatch.setattr(client_module, "IDLE_RECONNECT_SECONDS", 0.0)
        assert admin.step("escalate")["observation"]["step_count"] == 1
        assert admin.step("resolve")["observation"]["step_count"] == 2
    with pytest.raises(ValueError, match="http"):
        IncidentIQClient("ftp://example.org")


# ---- RemoteIncidentEnv --------------------------------------------------------------------


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_remote_env_matches_local_env(server, task_id):
    local = gym.make(TASK_ENV_IDS[task_id], render_mode="ansi")
    remote = RemoteIncidentEnv(server, task_id=task_id, render_mode="ansi")
    assert remote.observation_space == local.observation_space and remote.action_space == local.action_space
    try:
        for seed in (0, 17):
            local_obs, local_info = local.reset(seed=seed)
            obs, info = remote.reset(seed=seed)
            assert remote.observation_space.contains(obs)
            assert data_equivalence(obs, local_obs) and info == info_to_json(local_info)
            assert remote.render() == local.render()
            agent = HeuristicAgent()
            agent.reset(obs, info)
            while True:
                command = agent.act(obs, info)
                local_step = local.step(command)
                obs, reward, terminated, truncated, info = remote.step(command)
                assert remote.observation_space.contains(obs)
                assert data_equivalence(obs, local_step[0])
                assert (reward, terminated, truncated) == local_step[1:4]
                assert info == info_to_json(local_step[4])
                if terminated or truncated:
                    break
            assert info["grade"] == pytest.approx(1.0, abs=0.1)
    finally:
        remote.close()
        local.close()


def test_evaluation_code_runs_unchanged_on_a_server(server):
    local = gym.make(TASK_ENV_IDS["cascading_failure"])
    remote = RemoteIncidentEnv(server, task_id="cascading_failure", admin_token=ADMIN)
    try:
        for seed in range(3):
            expected = run_episode(local, HeuristicAgent(), seed=seed)
            assert run_episode(remote, HeuristicAgent(), seed=seed) == expected
    finally:
        remote.close()
        local.close()


def test_remote_env_actions_behave_as_local_ones(server):
    local = gym.make(TASK_ENV_IDS["single_service_outage"])
    remote = RemoteIncidentEnv(server, task_id="single_service_outage")
    try:
        local.reset(seed=5)
        remote.reset(seed=5)
        # Over-long and non-ASCII text is normalized and truncated the way the local env does it.
        for text in ("\uff45scalate " + "\u00e9" * 3000, "investigate " + "z" * 2000, ""):
            local_step = local.step(text)
            obs, reward, terminated, truncated, info = remote.step(text)
            assert data_equivalence(obs, local_step[0]) and reward == local_step[1]
            assert info == info_to_json(local_step[4])
        with pytest.raises(TypeError, match="str"):
            remote.step(3)
        # options={"task_id": ...} switches the task for one episode.
        obs, _ = remote.reset(seed=5, options={"task_id": "ambiguous_payment_degradation"})
        assert obs["task_id"] == "ambiguous_payment_degradation" and len(obs["hypotheses"]) == 3
    finally:
        remote.close()
        local.close()


def test_remote_env_passes_gymnasium_check_env(server):
    remote = RemoteIncidentEnv(server, task_id="cascading_failure")
    try:
        check_env(remote, skip_render_check=True)
    finally:
        remote.close()


def test_remote_walkthrough_with_reasoning_earns_the_reasoning_credit(server):
    local = gym.make(TASK_ENV_IDS["ambiguous_payment_degradation"])
    local.reset(seed=31)
    remote = RemoteIncidentEnv(server, task_id="ambiguous_payment_degradation")
    try:
        remote.reset(seed=31)
        commands = list(local.unwrapped.walkthrough())
        assert any("\n" in command for command in commands)
        for command in commands:
            obs, reward, terminated, truncated, info = remote.step(command)
        assert terminated and info["grade_components"]["reasoning"] > 0
        assert float(obs["score"][0]) == pytest.approx(np.float32(info["grade"]))
    finally:
        remote.close()
        local.close()
