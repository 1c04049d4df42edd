"""Domain tests of the incident generator: ``generate(rng, task, split)``."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from incidentiq import IncidentEnv
from incidentiq.sim.catalog import SERVICES, TEAM_NAMES
from incidentiq.sim.faults import FAMILIES, HYPOTHESES, TEST_COMBOS, Hypothesis
from incidentiq.sim.generator import COMBOS, MAX_SERVICES, Role, generate
from incidentiq.sim.tasks import TASKS, Split, TaskId

HARD = TaskId.AMBIGUOUS_PAYMENT_DEGRADATION
DRAWS = 3000
OBSERVATION_SPACE = IncidentEnv().observation_space


def draw(task: TaskId, split: Split, seeds, **kwargs):
    return [generate(np.random.default_rng(seed), task, split, **kwargs) for seed in seeds]


@pytest.fixture(scope="module")
def incidents() -> dict[tuple[TaskId, Split], list]:
    """DRAWS incidents for every (task, split), shared by the tests of this module."""
    return {(task, split): draw(task, split, range(DRAWS)) for task in TaskId for split in Split}


@pytest.mark.parametrize("split", list(Split))
@pytest.mark.parametrize("task", list(TaskId))
def test_same_seed_same_incident(task, split):
    for seed in range(40):
        first = generate(np.random.default_rng(seed), task, split)
        assert first == generate(np.random.default_rng(seed), task, split)
        assert first != generate(np.random.default_rng(seed + 1), task, split)


@pytest.mark.parametrize("split", list(Split))
@pytest.mark.parametrize("task", list(TaskId))
def test_every_allowed_combination_is_drawn(task, split, incidents):
    allowed = set(COMBOS[task, split])
    assert allowed, f"{task.value} has no {split.value} combinations"
    seen = {(incident.family.name, incident.root) for incident in incidents[task, split]}
    assert seen == allowed
    families = {incident.family.name for incident in incidents[task, split]}
    assert families == {family for family, _ in allowed}


def test_every_family_appears_in_every_task_it_is_allowed_in(incidents):
    for family in FAMILIES:
        tasks = [task for task in TaskId if any(name == family.name for name, _ in COMBOS[task, Split.ALL])]
        assert tasks, f"{family.name} is never drawn"
        for task in tasks:
            for split in Split:
                if any(name == family.name for name, _ in COMBOS[task, split]):
                    roots = {i.root for i in incidents[task, split] if i.family.name == family.name}
                    assert roots, (family.name, task.value, split.value)
                    assert roots <= set(family.roots)


def test_splits_partition_the_combinations():
    for task in TaskId:
        train, test, everything = (set(COMBOS[task, split]) for split in (Split.TRAIN, Split.TEST, Split.ALL))
        assert train | test == everything and not train & test
        assert test <= TEST_COMBOS and not train & TEST_COMBOS


@pytest.mark.parametrize("task", list(TaskId))
def test_train_never_produces_held_out_combinations(task, incidents):
    more = draw(task, Split.TRAIN, range(DRAWS, 3 * DRAWS))
    produced = {(i.family.name, i.root) for i in incidents[task, Split.TRAIN] + more}
    assert not produced & TEST_COMBOS
    held_out = {(i.family.name, i.root) for i in incidents[task, Split.TEST]}
    assert held_out <= TEST_COMBOS


@pytest.mark.parametrize("task", list(TaskId))
def test_incident_structure(task, incidents):
    for incident in incidents[task, Split.ALL]:
        services = incident.services
        assert incident.task is task
        assert 1 <= len(services) <= MAX_SERVICES
        assert len(set(services)) == len(services)
        assert incident.root in services
        assert all(name in SERVICES for name in services)
        assert incident.root in incident.family.roots
        assert len(incident.roles) == len(services) == len(incident.initial_badness)
        assert [services[i] for i, role in enumerate(incident.roles) if role is Role.ROOT] == [incident.root]
        assert sorted(incident.teams) == sorted(TEAM_NAMES) and len(incident.busy) == len(incident.teams)
        assert incident.owner in incident.teams
        assert incident.severity in (0, 1, 2)
        assert all(0 <= a < len(services) and 0 <= b < len(services) for a, b in incident.edges)
        if task is TaskId.CASCADING_FAILURE:
            # The fault cascades to two or more callers, and a red herring raises its own alarms.
            assert incident.roles.count(Role.PATH) >= 2
            assert incident.roles.count(Role.RED_HERRING) == 1


@pytest.mark.parametrize("task", list(TaskId))
def test_every_string_fits_the_observation_space(task, incidents):
    space = OBSERVATION_SPACE
    name_space = space["affected_services"].feature_space
    line_space = space["logs"].feature_space
    for incident in incidents[task, Split.ALL]:
        assert space["task_id"].contains(task.value)
        assert space["incident_description"].contains(incident.description)
        assert all(name_space.contains(name) for name in incident.services)
        assert all(space["team_roster"]["teams"].feature_space.contains(team) for team in incident.teams)
        assert all(space["hypotheses"].feature_space.contains(h) for h in incident.hypotheses)
        for line in incident.initial_logs:
            # The env prefixes a timestamp: the line must still fit whole.
            stamped = "2026-01-01T00:00:00Z " + line
            assert line_space.contains(stamped), stamped
        for value in incident.artifacts.values():
            assert name_space.contains(value)
        assert len(incident.initial_logs) <= 8  # the whole first alert burst fits the 8-line window


@pytest.mark.parametrize("split", list(Split))
def test_hard_task_has_three_hypotheses_and_misleading_clues(split, incidents):
    names = sorted(h.value for h in Hypothesis)
    for incident in incidents[HARD, split]:
        assert sorted(incident.hypotheses) == names
        assert incident.hypothesis is not None and incident.hypothesis.value in incident.hypotheses
        misleading = [
            line
            for line in incident.initial_logs
            if any(
                line == HYPOTHESES[h].clue.format(**incident.artifacts)
                for h in Hypothesis
                if h is not incident.hypothesis
            )
        ]
        assert len(misleading) >= 2, incident.initial_logs


def test_other_tasks_have_no_hypotheses(incidents):
    for task in (TaskId.SINGLE_SERVICE_OUTAGE, TaskId.CASCADING_FAILURE):
        assert all(i.hypotheses == () and i.hypothesis is None for i in incidents[task, Split.ALL])


def test_easy_task_shows_the_root_cause_in_the_first_alerts(incidents):
    for incident in incidents[TaskId.SINGLE_SERVICE_OUTAGE, Split.ALL]:
        assert any(incident.root in line for line in incident.initial_logs)


def test_medium_task_alerts_come_from_the_callers(incidents):
    for incident in incidents[TaskId.CASCADING_FAILURE, Split.ALL]:
        assert not any(line.split(" ", 2)[1] == incident.root + ":" for line in incident.initial_logs)


@pytest.mark.parametrize("task", list(TaskId))
def test_decoys_knob(task):
    """``decoys`` is the number of healthy bystanders listed, capped so the list fits MAX_SERVICES."""
    wrong = collections.Counter()
    for decoys in range(5):
        for incident in draw(task, Split.ALL, range(60), decoys=decoys):
            listed = incident.roles.count(Role.DECOY)
            others = len(incident.services) - listed
            expected = min(decoys, MAX_SERVICES - others)
            if listed != expected:
                wrong[f"decoys={decoys} listed {listed}"] += 1
    assert not wrong, f"{task.value}: {dict(wrong)}"
    default = TASKS[task].decoys
    listed = collections.Counter(i.roles.count(Role.DECOY) for i in draw(task, Split.ALL, range(60)))
    assert listed == {default: 60}, f"{task.value}: default decoys={default}, listed {dict(listed)}"


def test_templates_only_use_drawn_artifacts():
    """Every family and hypothesis template formats with the artifacts an incident draws (no KeyError)."""
    from incidentiq.sim.faults import ARTIFACT_KEYS

    incident = generate(np.random.default_rng(0), TaskId.SINGLE_SERVICE_OUTAGE, Split.ALL)
    assert set(incident.artifacts) == set(ARTIFACT_KEYS)
    fields = {**incident.artifacts, "service": "x-service", "root": "y-service", "target": "z-service"}
    templates = [t for f in FAMILIES for t in (f.alert, f.symptom, *f.evidence)]
    templates += [t for h in HYPOTHESES.values() for t in (h.clue, h.ruled_out, h.payment_ruled_out,
                                                             h.site_pointer, h.payment_pointer)]
    for template in templates:
        line = template.format_map(fields)
        assert "{" not in line and line.isascii()


@pytest.mark.parametrize("task", list(TaskId))
def test_every_test_split_family_is_also_trained_on(task):
    """The held-out pairs put known evidence at a new root: their families all occur in the train split."""
    trained = {family for family, _ in COMBOS[task, Split.TRAIN]}
    held_out = {family for family, _ in COMBOS[task, Split.TEST]}
    assert held_out and held_out <= trained
    assert not set(COMBOS[task, Split.TEST]) & set(COMBOS[task, Split.TRAIN])
