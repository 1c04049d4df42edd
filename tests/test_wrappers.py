"""The RL wrappers: token observations, the discrete command catalog and its action masks.

Every check goes through public names: ``make_rl_env`` / ``wrap_for_rl``, ``DiscreteCommands``,
``ObservationTokenizer``, ``CATALOG``, ``render_command``, ``Vocabulary`` and the env's own parser.
"""

from __future__ import annotations

import copy
import functools
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import given, settings
from hypothesis import strategies as st

import incidentiq
from incidentiq.agents import HeuristicAgent, RandomAgent
from incidentiq.language import parse
from incidentiq.language import vocabulary as vocabulary_module
from incidentiq.language.vocabulary import UNK, Vocabulary
from incidentiq.sim.commands import Verb
from incidentiq.sim.generator import MAX_SERVICES
from incidentiq.wrappers import (
    CATALOG,
    CatalogCommand,
    CommandHistory,
    DiscreteCommands,
    ObservationTokenizer,
    TokenizeObservation,
    make_rl_env,
    render_command,
    wrap_for_rl,
)
from incidentiq.wrappers.tokenize import FINDING_LENGTH, SLOT_LENGTH, TEXT_LENGTHS

ENV_IDS = tuple(incidentiq.ENV_IDS)
SPLITS = ("train", "test")
GENERATOR_SETTINGS = ({}, {"decoys": 0, "log_noise": 0.0}, {"decoys": 4, "log_noise": 1.0}, {"decoys": 2})
"""Keyword arguments of ``gym.make`` that change what an incident lists and logs."""
SPACE_EPISODES = 80
"""Random episodes per split and generator setting in the declared-space check: 640 per id, 2,560 in all."""
VEC_ID = "incidentiq:IncidentIQ/CascadingFailure-v0"
CONCLUSION = "root cause: "


def names(obs: dict) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The episode's listed services, roster teams and hypotheses, as the wrappers read them."""
    return tuple(obs["affected_services"]), tuple(obs["team_roster"]["teams"]), tuple(obs["hypotheses"])


def counts(obs: dict) -> tuple[int, int, int]:
    """The visible slot structure of an incident: how many services, teams and hypotheses it lists."""
    return tuple(len(group) for group in names(obs))


def names_only_listed(text: str, obs: dict) -> bool:
    """Whether ``text`` parses to a command whose every name is one the observation lists."""
    services, teams, hypotheses = names(obs)
    parsed = parse(text)
    command = parsed.command
    if command is None:
        return False
    if command.service is not None and command.service not in services:
        return False
    if command.team is not None and command.team not in teams:
        return False
    if parsed.reasoning:
        return parsed.reasoning.startswith(CONCLUSION) and parsed.reasoning[len(CONCLUSION) :] in hypotheses
    return True


def discrete_env(env_id: str, **kwargs) -> DiscreteCommands:
    """Discrete actions over the plain env: observations stay the env's own dicts."""
    return DiscreteCommands(gym.make(env_id, **kwargs))


def random_allowed(mask: np.ndarray, rng: np.random.Generator) -> int:
    """A catalog index drawn uniformly among those ``mask`` allows."""
    return int(rng.choice(np.flatnonzero(mask)))


def line_ids(vocabulary: Vocabulary, table: np.ndarray, line: str) -> np.ndarray:
    """The observation ids of a log line in the episode whose lookup table is ``table``."""
    return table[vocabulary.encode_log(line)[0]]


def vocabulary_view(tokenizer: ObservationTokenizer, ids: np.ndarray) -> list[str]:
    """The tokens of ``ids`` without padding, for failure messages."""
    return tokenizer.vocabulary.decode(ids[ids != 0])


def contains_run(row: np.ndarray, ids: np.ndarray) -> bool:
    """Whether ``ids`` appears in ``row`` as a contiguous run."""
    n = len(ids)
    return n > 0 and any(np.array_equal(row[i : i + n], ids) for i in range(len(row) - n + 1))


# ---- 1. SB3's env checker --------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env_passes_without_warnings(env_id):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env

    env = make_rl_env(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    assert isinstance(env.action_space, gym.spaces.Discrete)
    assert env.action_space.n == len(CATALOG)
    env.close()


# ---- 2. token ids and features stay inside the declared space ---------------------------------


def token_keys(tokenizer: ObservationTokenizer) -> list[str]:
    """The observation fields that hold token ids: the integer boxes whose high is the vocabulary's last id."""
    last = tokenizer.vocabulary.size - 1
    space = tokenizer.observation_space
    return [key for key, box in space.spaces.items() if box.dtype == np.int64 and int(box.high.max()) == last]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_stay_inside_the_declared_space(env_id):
    rng = np.random.default_rng(ENV_IDS.index(env_id))
    episodes = steps = 0
    for split in SPLITS:
        for kwargs in GENERATOR_SETTINGS:
            env = make_rl_env(env_id, split=split, **kwargs)
            size = env.get_wrapper_attr("tokenizer").vocabulary.size
            space = env.observation_space
            tokens = token_keys(env.get_wrapper_attr("tokenizer"))
            floats = [key for key, box in space.spaces.items() if np.issubdtype(box.dtype, np.floating)]
            assert {"slots", "logs", "feedback", "description"} <= set(tokens) and floats
            action_masks = env.get_wrapper_attr("action_masks")
            for seed in range(SPACE_EPISODES):
                obs, _ = env.reset(seed=seed)
                done = False
                while True:
                    assert space.contains(obs), (split, kwargs, seed, steps)
                    for key in tokens:
                        ids = obs[key]
                        assert ids.dtype == np.int64
                        assert ((0 <= ids) & (ids < size)).all(), key
                    for key in floats:
                        box, values = space[key], obs[key]
                        assert np.isfinite(values).all(), key
                        assert (box.low <= values).all() and (values <= box.high).all(), key
                        if (box.low == 0).all() and (box.high == 1).all():
                            assert values.min() >= 0.0 and values.max() <= 1.0, key
                    if done:
                        break
                    obs, _, terminated, truncated, _ = env.step(random_allowed(action_masks(), rng))
                    done = terminated or truncated
                    steps += 1
                episodes += 1
            env.close()
    assert episodes == len(SPLITS) * len(GENERATOR_SETTINGS) * SPACE_EPISODES
    assert steps > 2 * episodes


# ---- 3. masks carry the slot structure and nothing else ------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    env_id=st.sampled_from(ENV_IDS),
    split=st.sampled_from(SPLITS),
    decoys=st.sampled_from((None, 0, 1, 2, 3, 4)),
    seed=st.integers(0, 2**31 - 1),
)
def test_masks_depend_only_on_the_visible_slot_structure(env_id, split, decoys, seed):
    env = discrete_env(env_id, split=split, decoys=decoys)
    obs, _ = env.reset(seed=seed)
    first_counts, first_mask = counts(obs), env.action_masks()
    first = env.unwrapped.incident
    # Another incident with the same listed counts but another root, sitting in another slot
    # (unless a single service is listed).
    for other_seed in range(seed + 1, seed + 1000):
        other_obs, _ = env.reset(seed=other_seed)
        incident = env.unwrapped.incident
        if (
            counts(other_obs) == first_counts
            and incident.root != first.root
            and (incident.root_index != first.root_index or first_counts[0] == 1)
        ):
            break
    else:
        pytest.fail(f"no incident like seed {seed} with another root in 1000 seeds")
    other_mask = env.action_masks()
    assert np.array_equal(first_mask, other_mask)
    # Exactly the commands that name an empty slot, roster or hypothesis position are masked out.
    command_text = env.command_text
    expected = np.array([names_only_listed(command_text(k), other_obs) for k in range(len(CATALOG))])
    assert np.array_equal(other_mask, expected)
    assert other_mask.dtype == bool and other_mask.shape == (len(CATALOG),)
    n_services, n_teams, _ = first_counts
    assert other_mask.sum() >= n_services * 6 + n_teams + 2  # investigations, assignments, escalate, resolve
    env.close()


def test_masks_are_fresh_copies():
    env = discrete_env("IncidentIQ/CascadingFailure-v0")
    env.reset(seed=0)
    mask = env.action_masks()
    expected = mask.copy()
    mask[:] = ~mask
    assert np.array_equal(env.action_masks(), expected)
    env.close()


# ---- 4. every allowed catalog command means what it says ------------------------------------


def check_round_trip(command: CatalogCommand, text: str, obs: dict) -> None:
    """``text``, rendered from ``command`` for ``obs``'s incident, parses back to ``command`` with its names."""
    services, teams, hypotheses = names(obs)
    parsed = parse(text)
    got = parsed.command
    assert got is not None, (text, parsed.error)
    assert got.verb is command.verb, text
    assert got.service == (services[command.slot] if command.slot is not None else None), text
    assert got.team == (teams[command.team] if command.team is not None else None), text
    assert got.fix == command.fix, text
    assert got.aspect == command.aspect, text
    assert got.artifact is None, text
    first_line, _, reasoning = text.partition("\n")
    assert parsed.canonical == first_line
    if command.hypothesis is None:
        assert parsed.canonical == text
        assert parsed.reasoning == ""
    else:
        assert parsed.reasoning == reasoning == CONCLUSION + hypotheses[command.hypothesis]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_allowed_commands_parse_back_to_their_catalog_entry(env_id):
    checked = 0
    seen_services: set[str] = set()
    for split in SPLITS:
        env = discrete_env(env_id, split=split)
        for seed in range(60):
            obs, _ = env.reset(seed=seed)
            mask = env.action_masks()
            seen_services.update(obs["affected_services"])
            for k in np.flatnonzero(mask):
                text = env.command_text(k)
                assert text == render_command(CATALOG[k], *names(obs))
                check_round_trip(CATALOG[k], text, obs)
                checked += 1
        env.close()
    assert checked > 120 * 50
    assert len(seen_services) >= 10


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_the_env_reads_each_allowed_command_as_its_catalog_entry(env_id):
    env = discrete_env(env_id, split="test")
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        allowed = np.flatnonzero(env.action_masks())
        for k in allowed:
            env.reset(seed=seed)
            text = env.command_text(k)
            _, _, _, _, info = env.step(k)
            assert info["action_valid"], text
            assert info["parsed_action"] == text.partition("\n")[0]
    env.close()


# ---- 5. masked-out commands are never real actions on the incident --------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_masked_out_commands_name_nothing_the_incident_lists(env_id):
    env = discrete_env(env_id, decoys=0)
    stepped = 0
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        services, teams, hypotheses = names(obs)
        masked = np.flatnonzero(~env.action_masks())
        assert len(masked) > 0
        for k in masked:
            text = env.command_text(k)
            assert not names_only_listed(text, obs), text
            parsed = parse(text)
            command = parsed.command
            if CATALOG[k].hypothesis is not None:
                # An empty hypothesis position: the plain resolve, concluding nothing listed.
                assert command is not None and command.verb is Verb.RESOLVE and command.service is None
                assert parsed.reasoning.startswith(CONCLUSION)
                assert parsed.reasoning[len(CONCLUSION) :] not in hypotheses
                continue
            assert command is None or (command.service not in services and command.team not in teams), text
            start, _ = env.reset(seed=seed)
            after, reward, terminated, _, info = env.step(k)
            stepped += 1
            assert reward < 0, text
            assert not terminated
            assert np.array_equal(after["investigated"], start["investigated"]), text
            assert np.array_equal(after["team_roster"]["available"], start["team_roster"]["available"])
            assert (
                "is not a known service" in after["feedback"]
                or "no team" in after["feedback"]
                or not info["action_valid"]
            ), after["feedback"]
    assert stepped > 0
    env.close()


# ---- 6. determinism ----------------------------------------------------------------------------


def rollout(env_id: str, seed: int, actions_seed: int, steps: int = 40) -> list:
    """All outputs of ``steps`` random allowed actions on a fresh wrapped env reset with ``seed`` (then its next)."""
    env = make_rl_env(env_id)
    rng = np.random.default_rng(actions_seed)
    action_masks = env.get_wrapper_attr("action_masks")
    outputs = [env.reset(seed=seed)[0]]
    for _ in range(steps):
        action = random_allowed(action_masks(), rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        outputs.append((action, obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + 1)
            outputs.append(obs)
    env.close()
    return outputs


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_and_actions_give_the_same_token_observations(env_id):
    first = rollout(env_id, seed=11, actions_seed=5)
    second = rollout(env_id, seed=11, actions_seed=5)
    assert len(first) == len(second) > 40
    for a, b in zip(first, second):
        assert data_equivalence(a, b, exact=True)
    other = rollout(env_id, seed=12, actions_seed=5)
    assert not data_equivalence(first[0], other[0])
    assert not all(data_equivalence(a, b) for a, b in zip(first, other))


def unpickled(env):
    return pickle.loads(pickle.dumps(env))


@pytest.mark.parametrize("clone", [copy.deepcopy, unpickled])
def test_a_wrapped_env_copied_mid_episode_goes_on_as_the_original(clone):
    rng = np.random.default_rng(3)
    compared = 0
    for seed in range(30):
        env = make_rl_env("IncidentIQ/AnyIncident-v0")
        env.reset(seed=seed)
        mask = env.get_wrapper_attr("action_masks")()
        actions = [random_allowed(mask, rng) for _ in range(30)]
        for action in actions[: seed % 3]:
            env.step(action)
        twin = clone(env)
        for action in actions[seed % 3 :]:
            a, b = env.step(action), twin.step(action)
            assert data_equivalence(a, b, exact=True)
            compared += 1
            if a[2] or a[3]:
                break
    assert compared > 100


def test_make_rl_env_is_the_tokenizer_over_discrete_commands_plus_the_command_history():
    wrapped = make_rl_env("IncidentIQ/AnyIncident-v0")
    assert isinstance(wrapped, CommandHistory) and isinstance(wrapped.env, TokenizeObservation)
    raw = discrete_env("IncidentIQ/AnyIncident-v0")
    tokenizer = ObservationTokenizer()
    rng = np.random.default_rng(0)
    for seed in range(10):
        tokens, _ = wrapped.reset(seed=seed)
        obs, _ = raw.reset(seed=seed)
        issued = np.zeros(len(CATALOG), dtype=np.int8)
        assert data_equivalence(tokens, {**tokenizer.reset(obs), "issued": issued}, exact=True)
        while True:
            action = random_allowed(raw.action_masks(), rng)
            tokens, reward, terminated, truncated, _ = wrapped.step(action)
            obs, raw_reward, *_ = raw.step(action)
            issued[action] = 1
            assert reward == raw_reward
            assert data_equivalence(tokens, {**tokenizer.observe(obs), "issued": issued}, exact=True)
            if terminated or truncated:
                break


# ---- 7. the tokenizer is honest: no mutation, and it keeps evidence --------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_tokenizer_never_mutates_the_observation(env_id):
    env = discrete_env(env_id)
    tokenizer, witness = ObservationTokenizer(), ObservationTokenizer()
    rng = np.random.default_rng(1)
    scribbled = 0
    for seed in range(25):
        obs, _ = env.reset(seed=seed)
        before = copy.deepcopy(obs)
        tokens = tokenizer.reset(obs)
        assert data_equivalence(obs, before, exact=True)
        assert data_equivalence(tokens, witness.reset(copy.deepcopy(obs)), exact=True)
        while True:
            # The arrays handed out belong to the caller (or are read-only): writing to them
            # changes nothing the tokenizer says later.
            for value in tokens.values():
                if value.flags.writeable:
                    value.fill(7)
                    scribbled += 1
            obs, _, terminated, truncated, _ = env.step(random_allowed(env.action_masks(), rng))
            before = copy.deepcopy(obs)
            tokens = tokenizer.observe(obs)
            assert data_equivalence(obs, before, exact=True)
            assert data_equivalence(tokens, witness.observe(copy.deepcopy(obs)), exact=True)
            if terminated or truncated:
                break
    assert scribbled > 0
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_slot_rows_keep_the_evidence_after_the_log_window_scrolls(env_id):
    env = discrete_env(env_id)
    tokenizer = ObservationTokenizer()
    vocabulary = tokenizer.vocabulary
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        tokenizer.reset(obs)
        incident = env.unwrapped.incident
        root = incident.root_index
        look = CATALOG.index(CatalogCommand(Verb.INVESTIGATE, slot=root, aspect=incident.diagnostic_aspect))
        previous_last = obs["logs"][-1]
        obs, *_ = env.step(look)
        row = tokenizer.observe(obs)["slots"].reshape(MAX_SERVICES, SLOT_LENGTH)[root]
        assert (row != 0).sum() > 0
        # The investigation's new lines: its findings, then the root's catalog entry.
        new_lines = list(obs["logs"][list(obs["logs"]).index(previous_last) + 1 :])
        catalog_at = next(i for i, line in enumerate(new_lines) if f"INFO catalog: {incident.root} is owned" in line)
        table = vocabulary.episode_table(obs["affected_services"], obs["team_roster"]["teams"])
        ids = functools.partial(line_ids, vocabulary, table)
        catalog_line, finding = new_lines[catalog_at], new_lines[catalog_at - 1]
        assert incident.root in finding
        assert contains_run(row, ids(catalog_line)) and contains_run(row, ids(finding)), vocabulary.decode(row)
        # Seven more steps that never name the root's slot; the root may keep alerting meanwhile.
        for team in range(7):
            obs, _, terminated, truncated, _ = env.step(CATALOG.index(CatalogCommand(Verb.ASSIGN, team=team)))
            assert not (terminated or truncated)
            row = tokenizer.observe(obs)["slots"].reshape(MAX_SERVICES, SLOT_LENGTH)[root]
        assert catalog_line not in obs["logs"] and finding not in obs["logs"]
        assert contains_run(row, ids(catalog_line)), vocabulary.decode(row)
        finding_ids = ids(finding)
        assert contains_run(row, finding_ids[len(finding_ids) // 2 :]), vocabulary.decode(row)
    env.close()


# ---- 8. the vocabulary covers everything the simulator says --------------------------------


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_no_unknown_tokens_in_random_and_heuristic_play(env_id):
    tokenizer = ObservationTokenizer()
    keys = token_keys(tokenizer)
    agents = (HeuristicAgent(), RandomAgent(seed=3))
    tokens_seen = 0
    for split in SPLITS:
        env = gym.make(env_id, split=split)
        for agent in agents:
            for seed in range(100):
                obs, info = env.reset(seed=seed)
                agent.reset(obs, info)
                tokens = tokenizer.reset(obs)
                done = False
                while True:
                    # The last observation too: the env appends its own words when an episode ends.
                    for key in keys:
                        value = tokens[key]
                        assert not (value == UNK).any(), (agent.name, seed, key, vocabulary_view(tokenizer, value))
                        tokens_seen += int((value != 0).sum())
                    if done:
                        break
                    obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
                    tokens = tokenizer.observe(obs)
                    done = terminated or truncated
        env.close()
    # Random play over the catalog, through the wrapper trainers use.
    env = make_rl_env(env_id, log_noise=1.0)
    action_masks = env.get_wrapper_attr("action_masks")
    rng = np.random.default_rng(4)
    for seed in range(100):
        tokens, _ = env.reset(seed=seed)
        done = False
        while not done:
            tokens, _, terminated, truncated, _ = env.step(random_allowed(action_masks(), rng))
            done = terminated or truncated
            assert not any((tokens[key] == UNK).any() for key in keys)
    env.close()
    assert tokens_seen > 100_000


def test_encoding_stays_the_same_when_the_word_cache_starts_afresh(monkeypatch):
    """Artifacts are new words every episode, so the word cache is bounded; emptying it changes no id."""
    monkeypatch.setattr(vocabulary_module, "WORD_CACHE_SIZE", 64)
    vocabulary = Vocabulary()
    lines = [f"INFO deploy-bot: deploy-{k} rolled out to payment-service, owned by identity" for k in range(200)]
    first = [vocabulary.encode_with_subject(line) for line in lines]
    again = Vocabulary()
    for line, (ids, subject) in zip(reversed(lines), reversed(first)):
        other_ids, other_subject = again.encode_with_subject(line)
        assert np.array_equal(ids, other_ids) and subject == other_subject
    assert first[0][1] == vocabulary.service_ids["payment-service"]


# ---- 9. errors and the masks' reach through wrappers and vector envs -----------------------

BAD_ACTIONS = (len(CATALOG), -1, 10**9, 1.5, "3", None, "investigate api-gateway", [0, 1], float("inf"))


@pytest.mark.parametrize("bad", BAD_ACTIONS, ids=repr)
def test_discrete_commands_rejects_what_is_not_a_catalog_index(bad):
    for env in (discrete_env("IncidentIQ/SingleServiceOutage-v0"), make_rl_env("IncidentIQ/SingleServiceOutage-v0")):
        env.reset(seed=0)
        with pytest.raises(ValueError, match=rf"action must be an integer in \[0, {len(CATALOG)}\)"):
            env.step(bad)
        # The rejected action never reached the env; a numpy integer is a fine action.
        env.step(np.int64(0))
        assert len(env.unwrapped.trajectory) == 1
        env.close()


def test_discrete_commands_needs_a_reset_first():
    for env in (discrete_env("IncidentIQ/CascadingFailure-v0"), make_rl_env("IncidentIQ/CascadingFailure-v0")):
        with pytest.raises(RuntimeError, match="reset"):
            env.step(0)
        with pytest.raises(RuntimeError, match="reset"):
            env.get_wrapper_attr("action_masks")()
        env.reset(seed=0)
        env.step(0)
        env.close()


def test_action_masks_reach_through_make_rl_env():
    env = make_rl_env("IncidentIQ/AmbiguousPaymentDegradation-v0", decoys=1)
    raw = discrete_env("IncidentIQ/AmbiguousPaymentDegradation-v0", decoys=1)
    for seed in range(5):
        env.reset(seed=seed)
        raw.reset(seed=seed)
        mask = env.get_wrapper_attr("action_masks")()
        assert mask.dtype == bool and mask.shape == (len(CATALOG),)
        assert np.array_equal(mask, raw.action_masks())
    env.close()


def test_action_masks_reach_through_sb3_vector_envs():
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("sb3_contrib")
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    raw = discrete_env("IncidentIQ/CascadingFailure-v0")
    dummy = DummyVecEnv([lambda: make_rl_env("IncidentIQ/CascadingFailure-v0")] * 2)
    dummy.seed(3)
    dummy.reset()
    masks = dummy.env_method("action_masks")
    for i, mask in enumerate(masks):
        raw.reset(seed=3 + i)
        assert np.array_equal(mask, raw.action_masks())
    assert get_action_masks(dummy).shape == (2, len(CATALOG))
    dummy.close()

    vec_env = make_vec_env(
        VEC_ID,
        n_envs=2,
        seed=5,
        wrapper_class=wrap_for_rl,
        env_kwargs={"render_mode": None},
        vec_env_cls=SubprocVecEnv,
    )
    try:
        vec_env.reset()
        masks = get_action_masks(vec_env)
        assert masks.shape == (2, len(CATALOG)) and masks.dtype == bool
        assert np.array_equal(masks, np.stack(vec_env.env_method("action_masks")))
        for i, mask in enumerate(masks):
            raw.reset(seed=5 + i)
            assert np.array_equal(mask, raw.action_masks())
        obs, rewards, dones, _ = vec_env.step(np.array([int(np.flatnonzero(m)[0]) for m in masks]))
        assert obs["slots"].shape == (2, MAX_SERVICES * SLOT_LENGTH)
        assert rewards.shape == (2,) and not dones.any()
    finally:
        vec_env.close()
    raw.close()


# ---- 10. no torch for plain users of the wrappers -------------------------------------------


def test_importing_the_wrappers_does_not_import_torch():
    code = (
        "import sys, incidentiq, incidentiq.wrappers\n"
        "env = incidentiq.make_rl_env('IncidentIQ/CascadingFailure-v0')\n"
        "env.reset(seed=0); env.step(0)\n"
        "heavy = ('torch', 'stable_baselines3', 'sb3_contrib')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
        "print('incidentiq.wrappers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True"]


def test_each_slot_keeps_its_latest_finding_beside_it():
    env = incidentiq.make_rl_env("IncidentIQ/CascadingFailure-v0")
    obs, _ = env.reset(seed=3)

    def findings(o):
        return o["findings"].reshape(MAX_SERVICES, FINDING_LENGTH)

    def ids(row):
        return row[row != 0].tolist()

    assert not findings(obs).any(), "nothing is found before the first command"
    look = [CATALOG.index(CatalogCommand(Verb.INVESTIGATE, slot=i)) for i in range(2)]
    obs, *_ = env.step(look[0])
    feedback = ids(obs["feedback"])
    assert 0 < len(feedback) < TEXT_LENGTHS["feedback"], "the feedback row holds the whole result"
    assert ids(findings(obs)[0]) == feedback[:FINDING_LENGTH], "slot 0 keeps the head of what its look returned"
    assert not findings(obs)[1:].any()
    first = findings(obs).copy()

    obs, *_ = env.step(look[0])  # "Already done: ..." names slot 0 too, but is no finding
    np.testing.assert_array_equal(findings(obs), first)
    obs, *_ = env.step(CATALOG.index(CatalogCommand(Verb.ESCALATE)))
    obs, *_ = env.step(look[1])
    np.testing.assert_array_equal(findings(obs)[0], first[0])
    assert ids(findings(obs)[1]) == ids(obs["feedback"])[:FINDING_LENGTH]


@pytest.mark.parametrize("stamp", ["2026-01-01T00:00:00Z ", ""], ids=["stamped", "unstamped"])
def test_a_line_longer_than_a_slot_row_keeps_its_latest_tokens(stamp):
    # No line an env writes is this long, but a log line may be up to 256 characters.
    env = gym.make("IncidentIQ/CascadingFailure-v0")
    obs, _ = env.reset(seed=0)
    tokenizer = ObservationTokenizer()
    tokenizer.reset(obs)
    service = obs["affected_services"][2]
    body = f"ERROR {service}: " + " ".join(f"retry {k} failed" for k in range(20))
    tokens = tokenizer.observe({**obs, "logs": (*obs["logs"], stamp + body)})
    table = tokenizer.vocabulary.episode_table(obs["affected_services"], obs["team_roster"]["teams"])
    ids = table[tokenizer.vocabulary.encode(body)]
    assert len(ids) > SLOT_LENGTH
    np.testing.assert_array_equal(tokens["slots"].reshape(MAX_SERVICES, SLOT_LENGTH)[2], ids[-SLOT_LENGTH:])
    np.testing.assert_array_equal(tokens["logs"][-len(ids) :], ids)
    assert tokens["logs"][0] != 0, "the earlier lines still fill the window"
