"""The action language: ``parse`` maps each phrasing to one command and rejects mixed intents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from incidentiq.language.parser import ParseResult, parse
from incidentiq.sim.catalog import SERVICE_NAMES, TEAM_NAMES
from incidentiq.sim.commands import Aspect, Command, Fix, Verb
from incidentiq.sim.faults import FIX_ARTIFACT
from incidentiq.sim.generator import generate
from incidentiq.sim.tasks import Split, TaskId


def inv(service: str, aspect: Aspect | None = None) -> Command:
    return Command(Verb.INVESTIGATE, service=service, aspect=aspect)


def mit(fix: Fix, service: str, artifact: str | None = None) -> Command:
    return Command(Verb.MITIGATE, service=service, fix=fix, artifact=artifact)


def assign(team: str) -> Command:
    return Command(Verb.ASSIGN, team=team)


PHRASINGS = [
    ("check auth-service", inv("auth-service")),
    ("Look at auth-service", inv("auth-service")),
    ("investigate auth-service", inv("auth-service")),
    ("INSPECT auth-service memory", inv("auth-service", Aspect.MEMORY)),
    ("look at db-primary database", inv("db-primary", Aspect.DATABASE)),
    ("check stripe upstream", inv("stripe-api", Aspect.UPSTREAM)),
    ("investigate auth-service deploys", inv("auth-service", Aspect.DEPLOYS)),
    ("inspect the certificates of api-gateway", inv("api-gateway", Aspect.CERTIFICATES)),
    ("roll back auth-service", mit(Fix.ROLLBACK, "auth-service")),
    ("revert auth-service", mit(Fix.ROLLBACK, "auth-service")),
    ("rollback auth-service", mit(Fix.ROLLBACK, "auth-service")),
    ("mitigate: rollback auth-service", mit(Fix.ROLLBACK, "auth-service")),
    ("mitigate: rollback auth-service deploy-12345", mit(Fix.ROLLBACK, "auth-service", "deploy-12345")),
    ("Roll back auth-service deploy-12345", mit(Fix.ROLLBACK, "auth-service", "deploy-12345")),
    ("hand off to identity", assign("identity")),
    ("route to payments-oncall", assign("payments-oncall")),
    ("assign to payments", assign("payments-oncall")),
    ("assign to database", assign("database")),
    ("renew cert payment-service", mit(Fix.RENEW_CERT, "payment-service")),
    ("rotate certificate payment-service", mit(Fix.RENEW_CERT, "payment-service")),
    ("kill query db-primary 4821", mit(Fix.KILL_QUERY, "db-primary", "4821")),
    ("mitigate: kill-query db-primary 4821", mit(Fix.KILL_QUERY, "db-primary", "4821")),
    ("fail over db-primary", mit(Fix.FAILOVER, "db-primary")),
    ("restart auth-service", mit(Fix.RESTART, "auth-service")),
    ("bounce auth-service", mit(Fix.RESTART, "auth-service")),
    ("increase pool order-service", mit(Fix.INCREASE_POOL, "order-service")),
    ("mitigate: increase-memory user-service", mit(Fix.INCREASE_MEMORY, "user-service")),
    ("throttle payment-service", mit(Fix.THROTTLE, "payment-service")),
    ("enable backoff queue-worker", mit(Fix.THROTTLE, "queue-worker")),
    ("rebuild index search-service shard-3", mit(Fix.REBUILD_INDEX, "search-service", "shard-3")),
    ("purge cache search-service", mit(Fix.PURGE_CACHE, "search-service")),
    ("disable flag ff_fast_path auth-service", mit(Fix.DISABLE_FLAG, "auth-service", "ff_fast_path")),
    ("disable canary canary-atlas-3 order-service", mit(Fix.DISABLE_CANARY, "order-service", "canary-atlas-3")),
    ("escalate", Command(Verb.ESCALATE)),
    ("page secondary", Command(Verb.ESCALATE)),
    ("resolve", Command(Verb.RESOLVE)),
    ("close incident", Command(Verb.RESOLVE)),
    ("mark resolved", Command(Verb.RESOLVE)),
]
PHRASING_IDS = [text for text, _ in PHRASINGS]

MIXED_INTENTS = [
    ("investigate auth-service and restart it", ["investigate", "mitigate"]),
    ("escalate and resolve", ["escalate", "resolve"]),
    ("investigate auth-service then assign to identity", ["investigate", "assign"]),
    ("restart auth-service and rollback auth-service", ["2 fixes", "restart", "rollback"]),
    ("mitigate: restart auth-service user-service", ["2 services", "auth-service", "user-service"]),
    ("investigate auth-service user-service", ["2 services", "auth-service", "user-service"]),
    ("assign to identity and platform", ["2 teams", "identity", "platform"]),
    ("hand off to database or search", ["2 teams", "database", "search"]),
]

REASONING = (
    "restart user-service and rollback deploy-12345, assign to platform\n"
    "escalate resolve investigate db-primary kill query 4821 payments-oncall\n"
    "mitigate: throttle stripe-api"
)


@pytest.mark.parametrize("text, command", PHRASINGS, ids=PHRASING_IDS)
def test_phrasing_maps_to_one_command(text, command):
    result = parse(text)
    assert result.error == ""
    assert result.command == command


@pytest.mark.parametrize("text, command", PHRASINGS, ids=PHRASING_IDS)
def test_case_insensitive(text, command):
    rng = np.random.default_rng(len(text))
    mixed = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)
    for variant in (text.upper(), text.lower(), text.title(), mixed):
        assert parse(variant).command == command, variant


@pytest.mark.parametrize("text, command", PHRASINGS, ids=PHRASING_IDS)
def test_reasoning_lines_never_change_the_command(text, command):
    result = parse(f"{text}\n{REASONING}")
    assert result.command == command
    assert result.reasoning == REASONING


@pytest.mark.parametrize(
    "text, command",
    [
        ("investigate payment service", inv("payment-service")),
        ("check the notification service", inv("notification-svc")),
        ("restart auth service", mit(Fix.RESTART, "auth-service")),
        ("look at db primary", inv("db-primary")),
    ],
)
def test_service_names_with_spaces(text, command):
    """People type "payment service" for payment-service; the phrase table lists these spellings."""
    assert parse(text).command == command, parse(text).error


def test_only_the_first_line_is_a_command():
    assert parse("\ninvestigate auth-service").command is None
    assert parse("hmm\nresolve").command is None
    assert parse("resolve\n\n\nescalate").command == Command(Verb.RESOLVE)


@pytest.mark.parametrize("text, words", MIXED_INTENTS, ids=[text for text, _ in MIXED_INTENTS])
def test_mixed_intents_are_rejected_with_the_reason(text, words):
    result = parse(text)
    assert result.command is None
    assert "one intent" in result.error.lower()
    for word in words:
        assert word in result.error


def test_two_aspects_are_rejected():
    result = parse("investigate payment-service memory and database")
    assert result.command is None and "memory" in result.error and "database" in result.error


def keyword_stuffed_lines():
    fixes = [fix.value for fix in Fix]
    fix_phrases = [
        "restart",
        "roll back",
        "revert",
        "renew cert",
        "kill query",
        "fail over",
        "throttle",
        "rebuild index",
        "purge cache",
        "disable flag",
        "disable canary",
        "increase pool",
    ]
    for verb in ("", "investigate", "assign to", "mitigate:", "escalate", "resolve", "check", "hand off to"):
        for words in (fixes, fix_phrases):
            yield " ".join([verb, *words, *SERVICE_NAMES, *TEAM_NAMES]).strip()
            yield " ".join([verb, *TEAM_NAMES, *SERVICE_NAMES, *words]).strip()
    # Smaller stuffings are still more than one intent.
    yield "mitigate: " + " ".join(fixes) + " auth-service"
    yield "investigate " + " ".join(SERVICE_NAMES)
    yield "assign to " + " ".join(TEAM_NAMES)


@pytest.mark.parametrize("text", list(keyword_stuffed_lines()))
def test_keyword_stuffing_is_rejected(text):
    result = parse(text)
    assert result.command is None
    assert result.error


# ---- canonical text ------------------------------------------------------------------------------------


def artifact_samples() -> dict[str, list[str]]:
    """Artifacts as the generator draws them, plus hand-written ones, by kind."""
    samples = {
        "deploy": ["deploy-12345"],
        "flag": ["ff_fast_path"],
        "canary": ["canary-atlas-3"],
        "pid": ["4821"],
        "shard": ["shard-7"],
        "cert": ["cert-payment-123"],
    }
    for seed in range(6):
        for task in TaskId:
            incident = generate(np.random.default_rng(seed), task, Split.ALL)
            for kind in samples:
                if incident.artifacts[kind] not in samples[kind]:
                    samples[kind].append(incident.artifacts[kind])
    return samples


def command_grid():
    services = [*SERVICE_NAMES, "legacy-billing"]
    teams = [*TEAM_NAMES, "sre"]
    artifacts = artifact_samples()
    for service in services:
        yield Command(Verb.INVESTIGATE, service=service)
        for aspect in Aspect:
            yield Command(Verb.INVESTIGATE, service=service, aspect=aspect)
        for fix in Fix:
            yield Command(Verb.MITIGATE, service=service, fix=fix)
            kind = FIX_ARTIFACT.get(fix)
            for artifact in artifacts.get(kind, []):
                yield Command(Verb.MITIGATE, service=service, fix=fix, artifact=artifact)
    for team in teams:
        yield Command(Verb.ASSIGN, team=team)
    yield Command(Verb.ESCALATE)
    yield Command(Verb.RESOLVE)


def test_canonical_text_round_trips():
    grid = list(command_grid())
    assert {command.verb for command in grid} == set(Verb)
    assert {command.fix for command in grid} >= set(Fix)
    assert {command.aspect for command in grid} >= set(Aspect)
    failures = [(command.text, parse(command.text)) for command in grid if parse(command.text).command != command]
    assert failures == [], f"{len(failures)} of {len(grid)} fail, e.g. {failures[:3]}"


def test_canonical_text_is_stable():
    for text, command in PHRASINGS:
        assert parse(command.text).command.text == command.text
        assert parse(text).command.text == command.text


# ---- robustness --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 1, 2.5, b"resolve", ["resolve"], ("resolve",), {"action": "resolve"}])
def test_non_str_raises_type_error(value):
    with pytest.raises(TypeError, match="str"):
        parse(value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n\n\n",
        "\x00" * 50,
        "investigate\x00auth-service",
        "🔥🔥 resolve 🔥🔥",
        "调查 auth-service",
        "e\u0301scalate",
        "\ud800\udfff resolve",
        "ｉｎｖｅｓｔｉｇａｔｅ　ａｕｔｈ－ｓｅｒｖｉｃｅ",
        "investigate " * 10_000,
        "a" * 100_000,
        "auth-service " * 5_000 + "\n" + "reason " * 5_000,
        "\u2028resolve\u2029",
    ],
    ids=lambda text: repr(text[:20]),
)
def test_unicode_and_long_input_never_raise(text):
    result = parse(text)
    assert isinstance(result, ParseResult)
    assert (result.command is None) != (result.error == "")


def test_fullwidth_text_is_normalized():
    assert parse("ｉｎｖｅｓｔｉｇａｔｅ ａｕｔｈ－ｓｅｒｖｉｃｅ").command == inv("auth-service")


WORDS = sorted(
    {
        *(verb.value for verb in Verb),
        *(fix.value for fix in Fix),
        *(aspect.value for aspect in Aspect),
        *SERVICE_NAMES,
        *TEAM_NAMES,
        *itertools.chain.from_iterable(text.split() for text, _ in PHRASINGS),
        "to",
        "the",
        "and",
        "service",
        "team",
        "deploy-12345",
        "ff_fast_path",
        "canary-atlas-3",
        "4821",
        "shard-7",
        "cert-payment-123",
        "mitigate:",
    }
)
word_texts = st.lists(
    st.one_of(
        st.sampled_from(WORDS),
        st.from_regex(r"[a-z]{1,7}(-[a-z0-9]{1,7}){0,2}", fullmatch=True),
        st.text(max_size=4),
    ),
    max_size=8,
).flatmap(lambda words: st.sampled_from([" ", "  ", ", ", " \n", "\t"]).map(lambda sep: sep.join(words)))


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.one_of(st.text(), word_texts))
@example("assign auth-service to sre-team")
def test_parse_never_raises_and_canonical_text_parses_back(text):
    result = parse(text)
    assert isinstance(result, ParseResult)
    if result.command is None:
        assert result.error
    else:
        assert result.error == ""
        again = parse(result.command.text)
        assert again.command == result.command, (result.command.text, again.error)
