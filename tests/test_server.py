"""The HTTP server, run for real (uvicorn on 127.0.0.1) and spoken to over HTTP.

Every route answers with its documented shape; concurrent sessions replay
exactly what in-process envs do; every bad input gets its 4xx with a message
and the server keeps serving; ground truth stays hidden during an episode.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")  # the server extra; CI installs it

import gymnasium as gym  # noqa: E402
from gymnasium.utils.env_checker import data_equivalence  # noqa: E402

import incidentiq  # noqa: E402
from incidentiq.agents import RandomAgent  # noqa: E402
from incidentiq.cli import main  # noqa: E402
from incidentiq.language.parser import MAX_ACTION_LENGTH  # noqa: E402
from incidentiq.server.app import MAX_BODY_BYTES, ServerSettings, serve_in_thread  # noqa: E402
from incidentiq.server.models import TASK_ENV_IDS, info_to_json, observation_from_json  # noqa: E402
from incidentiq.server.sessions import SessionNotFound, SessionStore  # noqa: E402

ADMIN = "test-admin-token"
TASK_IDS = ("single_service_outage", "cascading_failure", "ambiguous_payment_degradation")
OBS_KEYS = set(incidentiq.IncidentEnv().observation_space.spaces)
STEP_KEYS = {"observation", "reward", "done", "terminated", "truncated", "info"}
INFO_KEYS = {"action_valid", "parsed_action", "reward_components", "elapsed_minutes"}
FINAL_INFO_KEYS = INFO_KEYS | {"grade", "grade_components", "is_success"}
GROUND_TRUTH_KEYS = {
    "root_service", "fault_family", "fault_title", "owner_team", "full_fixes", "partial_fixes",
    "artifacts", "needs_escalation", "hypothesis", "diagnostic_aspect", "walkthrough",
}


# ---- a real server and a raw HTTP helper -------------------------------------------------


def request(
    base: str, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None
) -> tuple[int, dict, dict]:
    """One HTTP request on a fresh connection: (status, lower-cased headers, JSON body)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        connection.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        payload = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(payload or b"null")
    finally:
        connection.close()


def wait_healthy(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if request(base, "GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"no healthy server at {base}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server():
    settings = ServerSettings(port=0, max_sessions=64, admin_token=ADMIN, log_level="warning")
    with serve_in_thread(settings) as base:
        wait_healthy(base)
        yield base


@pytest.fixture
def small_server():
    """A fresh server that keeps two sessions: for eviction and for the never-reset default session."""
    with serve_in_thread(ServerSettings(port=0, max_sessions=2, log_level="warning")) as base:
        wait_healthy(base)
        yield base


def session(name: str) -> dict[str, str]:
    return {"X-Session-Id": name}


def assert_error(result: tuple[int, dict, dict], status: int, code: str, *phrases: str) -> None:
    got_status, _, body = result
    assert got_status == status, body
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    for phrase in phrases:
        assert phrase in body["detail"], body["detail"]


def split_action(command: str) -> dict:
    """The ``/step`` body for a command whose reasoning follows on later lines."""
    action, _, reasoning = command.partition("\n")
    return {"action": {"action": action, "reasoning": reasoning}} if reasoning else {"action": {"action": action}}


# ---- shapes -------------------------------------------------------------------------------


def test_health_and_tasks(server):
    status, _, health = request(server, "GET", "/health")
    assert status == 200
    assert health["status"] == "healthy" and health["version"] == incidentiq.__version__
    assert health["max_sessions"] == 64 and isinstance(health["sessions"], int)
    status, _, tasks = request(server, "GET", "/tasks")
    assert status == 200
    assert [t["task_id"] for t in tasks["tasks"]] == list(TASK_IDS)
    assert {t["env_id"] for t in tasks["tasks"]} == {TASK_ENV_IDS[t] for t in TASK_IDS}
    assert [t["max_steps"] for t in tasks["tasks"]] == [10, 18, 25]
    assert tasks["max_action_length"] == MAX_ACTION_LENGTH
    assert "resolve" in tasks["commands"] and "rollback" in tasks["fixes"]


def test_reset_and_step_shapes(server):
    status, headers, reset = request(
        server, "POST", "/reset", {"task_id": "cascading_failure", "seed": 42}, session("shapes")
    )
    assert status == 200 and headers["x-session-id"] == "shapes"
    assert set(reset) == STEP_KEYS
    assert (reset["reward"], reset["done"], reset["terminated"], reset["truncated"]) == (0.0, False, False, False)
    assert set(reset["info"]) == INFO_KEYS
    obs = reset["observation"]
    assert set(obs) == OBS_KEYS
    assert obs["task_id"] == "cascading_failure"
    assert all(len(values) == 8 for values in obs["metrics"].values())
    assert len(obs["dependencies"]) == 8 and all(len(row) == 8 for row in obs["dependencies"])
    assert isinstance(obs["score"], float) and obs["sla_remaining"] == 15
    service = obs["affected_services"][0]
    status, headers, step = request(
        server, "POST", "/step", {"action": {"action": f"investigate {service}"}}, session("shapes")
    )
    assert status == 200 and headers["x-session-id"] == "shapes"
    assert set(step) == STEP_KEYS and set(step["info"]) == INFO_KEYS
    assert step["info"]["parsed_action"] == f"investigate {service}"
    assert step["observation"]["step_count"] == 1 and step["observation"]["investigated"][0] == 1


def test_reset_body_is_optional_and_accepts_env_ids(server):
    status, headers, reset = request(server, "POST", "/reset", raw=b"", headers=session("no-body"))
    assert status == 200 and reset["observation"]["task_id"] in TASK_IDS  # "any": one of the three
    status, _, reset = request(
        server, "POST", "/reset", {"task_id": "incidentiq:IncidentIQ/AmbiguousPaymentDegradation-v0", "seed": 1,
                                   "split": "test"}, session("no-body")
    )
    assert status == 200 and reset["observation"]["task_id"] == "ambiguous_payment_degradation"
    assert request(server, "GET", "/state", headers=session("no-body"))[2]["split"] == "test"


def test_state_incident_meta_and_delete(server):
    who = session("lifecycle")
    request(server, "POST", "/reset", {"task_id": "single_service_outage", "seed": 5}, who)
    request(server, "POST", "/step", {"action": {"action": "escalate"}}, who)
    status, _, state = request(server, "GET", "/state", headers=who)
    assert status == 200
    assert state["session_id"] == "lifecycle" and state["seed"] == 5 and state["step_count"] == 1
    assert state["env_id"] == "IncidentIQ/SingleServiceOutage-v0" and state["done"] is False
    assert state["history"] == [
        {"step": 1, "action": "escalate", "parsed_action": "escalate", "action_valid": True,
         "reward": state["total_reward"]}
    ]
    assert state["ground_truth"] is None and state["grade"] is None
    status, _, closed = request(server, "DELETE", "/session", headers=who)
    assert (status, closed) == (200, {"session_id": "lifecycle", "closed": True})
    assert_error(request(server, "GET", "/state", headers=who), 404, "session_not_found", "deleted")
    assert_error(request(server, "DELETE", "/session", headers=who), 404, "session_not_found")


# ---- concurrency: 50 sessions replay exactly what local envs do ---------------------------


def reference_episode(task_id: str, seed: int, style: int) -> tuple[list[str], list[tuple]]:
    """Commands for one session and what a local ``gym.make`` env returns for them."""
    env = gym.make(TASK_ENV_IDS[task_id])
    obs, info = env.reset(seed=seed)
    walkthrough = env.unwrapped.walkthrough()
    agent = RandomAgent(seed)
    agent.reset(obs, info)
    planned = {
        0: walkthrough,
        1: ["assign to nobody", "investigate " + obs["affected_services"][-1], *walkthrough],
        2: ["resolve", "restart everything", "resolve", *walkthrough],
    }.get(style)
    commands, results = [], []
    for k in range(env.spec.max_episode_steps):
        command = planned[k] if planned is not None and k < len(planned) else agent.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(command)
        commands.append(command)
        results.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            break
    env.close()
    return commands, results


def test_fifty_concurrent_sessions_match_local_envs(server):
    count = 50
    plans = []
    for i in range(count):
        task_id, seed, style = TASK_IDS[i % 3], 7000 + 13 * i, i % 4
        commands, expected = reference_episode(task_id, seed, style)
        plans.append((task_id, seed, commands, expected))
    barrier = threading.Barrier(count)
    outcomes: dict[int, list] = {}
    failures: list[BaseException] = []

    def play(i: int) -> None:
        task_id, seed, commands, _ = plans[i]
        who = session(f"concurrent-{i}")
        try:
            barrier.wait(timeout=30)
            status, _, first = request(server, "POST", "/reset", {"task_id": task_id, "seed": seed}, who)
            assert status == 200, first
            steps = [first]
            for command in commands:
                status, _, result = request(server, "POST", "/step", split_action(command), who)
                assert status == 200, result
                steps.append(result)
            outcomes[i] = steps
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]
    assert len(outcomes) == count
    for i, (task_id, seed, commands, expected) in enumerate(plans):
        steps = outcomes[i]
        local = gym.make(TASK_ENV_IDS[task_id])
        first_obs, _ = local.reset(seed=seed)
        assert data_equivalence(observation_from_json(steps[0]["observation"]), first_obs), (i, "reset")
        for k, (result, (obs, reward, terminated, truncated, info)) in enumerate(zip(steps[1:], expected)):
            assert data_equivalence(observation_from_json(result["observation"]), obs), (i, k)
            assert result["reward"] == reward, (i, k)
            assert (result["terminated"], result["truncated"]) == (terminated, truncated), (i, k)
            assert result["info"] == info_to_json(info), (i, k)
        assert steps[-1]["done"] is True
        state = request(server, "GET", "/state", headers=session(f"concurrent-{i}"))[2]
        assert [entry["action"] for entry in state["history"]] == commands  # nothing from another session
        local.close()
    # The walkthrough sessions solved their incidents.
    assert [outcomes[i][-1]["info"]["grade"] for i in range(0, count, 4)] == pytest.approx([1.0] * 13)


# ---- bad input: a 4xx that says what was wrong, and the server carries on ----------------

BAD_REQUESTS = [
    # (method, path, json body or raw bytes, extra headers, status, error code, phrases in detail)
    ("POST", "/reset", b'{"task_id": "cascading_failure",', {}, 400, "malformed_json", ["not valid JSON"]),
    ("POST", "/step", b"{action: resolve}", {}, 400, "malformed_json", ["not valid JSON"]),
    ("POST", "/reset", {"seed": "42"}, {}, 422, "invalid_request", ["body.seed", "valid integer"]),
    ("POST", "/reset", {"seed": 4.5}, {}, 422, "invalid_request", ["body.seed"]),
    ("POST", "/reset", {"seed": -1}, {}, 422, "invalid_request", ["body.seed", "greater than or equal to 0"]),
    ("POST", "/reset", {"task_id": "world_peace"}, {}, 422, "invalid_request", ["unknown task 'world_peace'"]),
    ("POST", "/reset", {"task_id": 3}, {}, 422, "invalid_request", ["body.task_id"]),
    ("POST", "/reset", {"split": "validation"}, {}, 422, "invalid_request", ["body.split"]),
    ("POST", "/reset", {"sead": 42}, {}, 422, "invalid_request", ["body.sead", "Extra inputs"]),
    ("POST", "/reset", [1, 2], {}, 422, "invalid_request", ["body"]),
    ("POST", "/step", {"action": "resolve"}, {}, 422, "invalid_request", ["body.action"]),
    ("POST", "/step", {"action": {"action": 7}}, {}, 422, "invalid_request", ["body.action.action", "valid string"]),
    ("POST", "/step", {"action": {"reasoning": "hm"}}, {}, 422, "invalid_request", ["body.action.action", "required"]),
    ("POST", "/step", {}, {}, 422, "invalid_request", ["body.action", "required"]),
    ("POST", "/step", {"action": {"action": "x" * (MAX_ACTION_LENGTH + 1)}}, {}, 422, "invalid_request",
     [f"the limit is {MAX_ACTION_LENGTH}"]),
    ("POST", "/step", {"action": {"action": "resolve", "reasoning": "y" * MAX_ACTION_LENGTH}}, {}, 422,
     "invalid_request", ["command plus reasoning"]),
    ("POST", "/step", b"{" + b" " * (MAX_BODY_BYTES + 1) + b"}", {}, 413, "body_too_large", ["limit"]),
    ("GET", "/state", None, {"X-Session-Id": "spaces are not allowed"}, 422, "invalid_request", ["X-Session-Id"]),
    ("GET", "/state", None, {"X-Session-Id": "never-created"}, 404, "session_not_found", ["unknown session"]),
    ("POST", "/step", {"action": {"action": "resolve"}}, {"X-Session-Id": "never-created"}, 404,
     "session_not_found", ["unknown session"]),
    ("GET", "/incident-meta", None, {"X-Session-Id": "never-created"}, 404, "session_not_found", []),
    ("GET", "/runbook?service=mainframe", None, {}, 404, "not_found", ["unknown service 'mainframe'"]),
    ("GET", "/no-such-route", None, {}, 404, "not_found", ["/no-such-route"]),
    ("PUT", "/step", None, {}, 405, "method_not_allowed", ["PUT"]),
    ("GET", "/state", None, {"X-Admin-Token": "guess"}, 403, "forbidden", ["wrong X-Admin-Token"]),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "code", "phrases"),
    BAD_REQUESTS,
    ids=[f"{m} {p.split('?')[0]} {s} {c} {i}" for i, (m, p, _, _, s, c, _) in enumerate(BAD_REQUESTS)],
)
def test_bad_input_is_a_4xx_that_says_why(server, method, path, body, headers, status, code, phrases):
    who = session("bad-input-bystander")
    request(server, "POST", "/reset", {"task_id": "single_service_outage", "seed": 3}, who)
    raw = body if isinstance(body, bytes) else None
    result = request(server, method, path, None if raw is not None else body, headers, raw=raw)
    assert_error(result, status, code, *phrases)
    # The server still serves, and the bystander's episode is untouched.
    assert request(server, "GET", "/health")[0] == 200
    status_after, _, step = request(server, "POST", "/step", {"action": {"action": "escalate"}}, who)
    assert status_after == 200 and step["observation"]["step_count"] == 1


def test_step_after_the_episode_ended_is_409(server):
    who = session("finished")
    reset = request(server, "POST", "/reset", {"task_id": "single_service_outage", "seed": 11}, who)[2]
    assert reset["done"] is False
    for _ in range(3):  # three premature resolves end the episode
        last = request(server, "POST", "/step", {"action": {"action": "resolve"}}, who)[2]
    assert last["done"] is True and last["terminated"] is True and last["info"]["is_success"] is False
    assert_error(
        request(server, "POST", "/step", {"action": {"action": "escalate"}}, who), 409, "episode_over", "POST /reset"
    )
    assert request(server, "POST", "/reset", {"seed": 12}, who)[0] == 200
    assert request(server, "POST", "/step", {"action": {"action": "escalate"}}, who)[0] == 200


def test_default_session_step_before_reset_is_409_and_eviction_is_404(small_server):
    base = small_server
    assert_error(request(base, "POST", "/step", {"action": {"action": "resolve"}}), 409, "no_episode", "/reset")
    assert_error(request(base, "GET", "/state"), 409, "no_episode")
    assert_error(request(base, "GET", "/incident-meta"), 409, "no_episode")
    for name in ("a", "b"):
        assert request(base, "POST", "/reset", {"seed": 1}, session(name))[0] == 200
    assert request(base, "GET", "/state", headers=session("a"))[0] == 200  # a is now the most recently used
    assert request(base, "POST", "/reset", {"seed": 2}, session("c"))[0] == 200  # evicts b
    assert_error(request(base, "GET", "/state", headers=session("b")), 404, "session_not_found", "evicted", "2")
    assert_error(request(base, "POST", "/step", {"action": {"action": "resolve"}}, session("b")), 404,
                 "session_not_found", "evicted")
    assert request(base, "GET", "/health")[2]["sessions"] == 2
    assert request(base, "POST", "/step", {"action": {"action": "escalate"}}, session("a"))[0] == 200
    # Reset brings an evicted id back, with a new episode.
    assert request(base, "POST", "/reset", {"seed": 3}, session("b"))[0] == 200
    assert request(base, "GET", "/state", headers=session("b"))[2]["seed"] == 3


# ---- ground truth ---------------------------------------------------------------------------


def test_ground_truth_hidden_during_episode_without_token(server):
    who = session("secret")
    env = gym.make(TASK_ENV_IDS["ambiguous_payment_degradation"])
    env.reset(seed=99)
    incident = env.unwrapped.incident
    walkthrough = env.unwrapped.walkthrough()
    reset = request(server, "POST", "/reset", {"task_id": "ambiguous_payment_degradation", "seed": 99}, who)[2]
    assert "ground_truth" not in reset and "walkthrough" not in json.dumps(reset)
    assert_error(request(server, "GET", "/incident-meta", headers=who), 403, "forbidden", "hidden")
    assert_error(request(server, "GET", "/incident-meta", headers={**who, "X-Admin-Token": "nope"}), 403, "forbidden")
    assert request(server, "GET", "/state", headers=who)[2]["ground_truth"] is None
    # The admin sees it during the episode.
    admin = {**who, "X-Admin-Token": ADMIN}
    status, _, meta = request(server, "GET", "/incident-meta", headers=admin)
    assert status == 200 and meta["done"] is False
    truth = meta["ground_truth"]
    assert set(truth) == GROUND_TRUTH_KEYS
    assert truth["root_service"] == incident.root and truth["fault_family"] == incident.family.name
    assert truth["owner_team"] == incident.owner and truth["walkthrough"] == walkthrough
    assert truth["hypothesis"] == incident.hypothesis.value
    assert request(server, "GET", "/state", headers=admin)[2]["ground_truth"] == truth
    # Play it out: afterwards anybody sees the answer with the grade breakdown.
    for command in walkthrough:
        last = request(server, "POST", "/step", split_action(command), who)[2]
    assert last["done"] is True and last["info"]["grade"] == pytest.approx(1.0)
    status, _, meta = request(server, "GET", "/incident-meta", headers=who)
    assert status == 200 and meta["done"] is True and meta["ground_truth"] == truth
    assert meta["grade"] == pytest.approx(1.0) and meta["grade_components"] == last["info"]["grade_components"]
    assert meta["is_success"] is True
    state = request(server, "GET", "/state", headers=who)[2]
    assert state["ground_truth"] == truth and state["grade"] == meta["grade"] and state["is_success"] is True
    env.close()


def test_admin_token_needs_a_server_that_has_one(small_server):
    request(small_server, "POST", "/reset", {"seed": 4}, session("x"))
    assert_error(
        request(small_server, "GET", "/incident-meta", headers={**session("x"), "X-Admin-Token": "anything"}),
        403, "forbidden", "without an admin token",
    )


def test_runbook_does_not_depend_on_the_incident(server):
    env = gym.make(TASK_ENV_IDS["cascading_failure"])
    obs, _ = env.reset(seed=21)
    root = env.unwrapped.incident.root
    bystander = next(name for name in obs["affected_services"] if name != root)

    def generic(service: str) -> str:
        status, _, book = request(server, "GET", f"/runbook?service={service}")
        assert status == 200 and book["service"] == service
        return json.dumps(book).replace(service, "<service>")

    status, _, book = request(server, "GET", "/runbook")
    assert status == 200 and book["service"] is None
    assert {a["aspect"] for a in book["aspects"]} == {"memory", "database", "upstream", "deploys", "certificates"}
    assert len(book["fixes"]) == 12 and len(book["steps"]) >= 5
    assert generic(root) == generic(bystander) == json.dumps(book).replace("null", '"<service>"', 1)
    env.close()


def test_openapi_documents_the_typed_models(server):
    status, _, spec = request(server, "GET", "/openapi.json")
    assert status == 200
    for path in ("/reset", "/step", "/state", "/incident-meta", "/runbook", "/tasks", "/health", "/session"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    for model in ("ResetRequest", "StepRequest", "IncidentAction", "IncidentObservation", "StepResponse",
                  "StateResponse", "GroundTruth", "ErrorResponse"):
        assert model in schemas, model
    connection = http.client.HTTPConnection(*server.removeprefix("http://").split(":"))
    connection.request("GET", "/docs")
    assert connection.getresponse().status == 200
    connection.close()


# ---- the session store on its own ----------------------------------------------------------


def test_store_evicts_least_recently_used_and_names_why():
    store = SessionStore(max_sessions=2)
    first, second = store.get_or_create("one"), store.get_or_create("two")
    assert store.get("one") is first  # "two" is now the least recently used
    store.get_or_create("three")
    assert len(store) == 2 and second.alive is False
    with pytest.raises(SessionNotFound, match="evicted") as caught:
        store.get("two")
    assert caught.value.reason == "evicted"
    store.delete("one")
    with pytest.raises(SessionNotFound, match="deleted"):
        store.get("one")
    with pytest.raises(SessionNotFound, match="unknown session"):
        store.get("zero")
    with pytest.raises(ValueError, match="at least 1"):
        SessionStore(0)


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="max_sessions"):
        ServerSettings(max_sessions=0)
    with pytest.raises(ValueError, match="port"):
        ServerSettings(port=70000)
    with pytest.raises(ValueError, match="empty"):
        ServerSettings(admin_token="")


# ---- the command line ------------------------------------------------------------------------


def test_serve_help(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--max-sessions", "--admin-token", "--log-level"):
        assert option in out
    assert main(["serve", "--max-sessions", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_serve_without_the_extra_says_what_to_install():
    script = "import sys; sys.modules['fastapi'] = None\nfrom incidentiq.cli import main\nsys.exit(main(['serve']))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert 'pip install "incidentiq[server]"' in done.stderr


def test_incidentiq_serve_runs_a_server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "incidentiq", "serve", "--port", str(port), "--log-level", "warning",
         "--admin-token", "cli-token"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, timeout=60)
        request(base, "POST", "/reset", {"seed": 8}, session("cli"))
        admin = {**session("cli"), "X-Admin-Token": "cli-token"}
        status, _, meta = request(base, "GET", "/incident-meta", headers=admin)
        assert status == 200 and meta["ground_truth"]["walkthrough"]
    finally:
        process.terminate()
        process.wait(timeout=30)


# ---- the benchmark script, with a tiny budget ---------------------------------------------


def test_bench_server_tiny_budget(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_server.py"
    out = tmp_path / "bench_server.json"
    done = subprocess.run(
        [sys.executable, str(script), "--requests", "40", "--concurrency", "1", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["requests"] == 40 and report["settings"]["concurrency"] == [1, 4]
    assert report["machine"]["cpu_count"] and report["machine"]["python"] and report["machine"]["cpu"]
    assert [r["clients"] for r in report["results"]] == [1, 4]
    for result in report["results"]:
        assert result["step_requests"] == 40 and result["errors"] == []
        assert result["requests_per_s"] > 0 and 0 < result["step_p50_ms"] <= result["step_p99_ms"]
    assert "requests/s" in done.stdout and "p99" in done.stdout
    bad = subprocess.run([sys.executable, str(script), "--requests", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "must be positive" in bad.stderr
