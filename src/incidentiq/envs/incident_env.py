"""``IncidentEnv``: the Gymnasium face of the simulator."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from incidentiq.language.parser import MAX_ACTION_LENGTH, parse
from incidentiq.language.render import render_text
from incidentiq.scoring.grader import Tally
from incidentiq.scoring.reward import REWARD_KEYS, reward_components
from incidentiq.sim.catalog import MAX_TEAMS
from incidentiq.sim.dynamics import LOG_WINDOW, MAX_LINE, StepRecord, World
from incidentiq.sim.generator import MAX_SERVICES, Incident, generate
from incidentiq.sim.tasks import MAX_SLA_MINUTES, MAX_STEPS, TASKS, Split, TaskId

TEXT_CHARSET = "".join(chr(c) for c in range(32, 127))
"""Printable ASCII: every string in an observation uses only these."""
ACTION_CHARSET = TEXT_CHARSET + "\n"
MAX_FEEDBACK = 1024
_TASK_ORDER = tuple(TaskId)


def _text(max_length: int, min_length: int = 1) -> spaces.Text:
    return spaces.Text(max_length=max_length, min_length=min_length, charset=TEXT_CHARSET)


class IncidentEnv(gym.Env[dict, str]):
    """Respond to a simulated production incident, as a site reliability engineer does.

    ## Description

    A service in a microservice system fails. The agent reads alerts, logs,
    metrics, the observed dependency graph and the team roster, investigates
    services to gather evidence, routes the incident to the team that owns
    the failing service, applies one targeted fix and resolves the incident
    before the SLA runs out. Each reset draws a new incident: fault family,
    root service, affected subgraph, decoys, red herrings, artifacts (deploy
    ids, flag names, pids, shards, certificates), team availability and clock.

    Tasks (``task_id``):

    | task_id | difficulty | max steps | SLA minutes |
    |---|---|---|---|
    | single_service_outage | easy | 10 | 30 |
    | cascading_failure | medium | 18 | 15 |
    | ambiguous_payment_degradation | hard | 25 | 45 |

    With ``task_id=None`` (``IncidentIQ/AnyIncident-v0``) each reset samples
    one of the three.

    ## Action Space

    ``Text(max_length=1024)`` over printable ASCII plus newline. ``step``
    accepts any ``str``: other characters are NFKC-normalized or dropped,
    longer text is truncated, unparseable text is an invalid command. A
    non-``str`` action raises ``TypeError``.

    ## Action Language

    The first line is one command; further lines are free-form reasoning
    (read only by the grader of the hard task).

    | command | simulated minutes |
    |---|---|
    | ``investigate <service> [memory|database|upstream|deploys|certificates]`` | 2 |
    | ``assign to <team>`` | 1 |
    | ``mitigate: <fix> <service> [artifact]`` | 3 |
    | ``escalate`` | 1 |
    | ``resolve`` | 1 |

    Fixes: restart, rollback, disable-flag, increase-pool, increase-memory,
    renew-cert, throttle, kill-query, failover, rebuild-index, purge-cache,
    disable-canary. Synonyms are understood ("roll back", "look at", "hand off
    to", "kill query"), case-insensitively, with or without ``mitigate:``.
    A command naming two verbs, two fixes, two services or two teams is
    rejected as ambiguous. Investigating a service shows its owner and its
    direct dependencies. In the hard task the service at fault shows its
    cause only when asked about the aspect the fault concerns (memory for a
    leak, database for pools and queries, upstream for rate limits); in the
    other tasks a general look shows as much as any aspect. A busy owner
    does not acknowledge an assignment until ``escalate`` pages the
    secondary on-call; P0 incidents also call for an escalation. Invalid
    commands take one minute.

    ## Observation Space

    ``Dict`` with:

    - ``task_id``, ``incident_description``: ``Text``
    - ``affected_services``: ``Sequence(Text)``, shuffled each episode (at most 8)
    - ``severity``: ``Discrete(3)``, 0 is P0 (most severe)
    - ``logs``: ``Sequence(Text)``, the 8 most recent lines, each starting with an
      ISO-8601 UTC timestamp from the simulated clock
    - ``metrics``: ``Dict`` of ``error_rate_pct``, ``latency_p99_ms``,
      ``throughput_rps`` (``Box(8,)`` float32) and ``status`` (``MultiDiscrete``:
      0 empty slot, 1 ok, 2 degraded, 3 down), aligned with ``affected_services``
    - ``feedback``: ``Text``, the result of the last command
    - ``score``: ``Box(1,)`` in [0, 1], the grade of the trajectory so far
    - ``sla_remaining``: ``Discrete(46)``, minutes left, never below 0
    - ``team_roster``: ``Dict`` of ``teams`` (``Sequence(Text)``, shuffled) and
      ``available`` (``MultiBinary(8)``, aligned)
    - ``step_count``: ``Discrete(26)``
    - ``dependencies``: ``MultiBinary((8, 8))``, observed caller -> callee edges
      among the listed services (noisy in the medium task)
    - ``investigated``: ``MultiBinary(8)``
    - ``hypotheses``: ``Sequence(Text)``, the hard task's candidate causes (else empty)

    ## Rewards

    Dense, with named parts in ``info["reward_components"]`` that sum to the
    reward: investigating the root +0.23 (+0.15 if the question asked does
    not reveal the cause), a service on the causal path +0.15 to +0.19 (the
    first at each distance from the root), a hard-task hypothesis site
    +0.05, each for the first look at that service only (a later look earns
    nothing, unless it is the first to reveal the root's cause) and only
    until the root's cause is revealed; off-path or unknown services -0.05.
    Correct team +0.10 (+0.05 if it is busy and does not acknowledge; wrong
    -0.05), needed escalation +0.05 (unneeded -0.05), full fix on the root
    +0.52 (less 0.25 per earlier fix attempt, at least +0.20; only +0.20
    before the root's evidence was seen), partial fix +0.20 (+0.05 if it is
    not the first fix attempt or comes before the root's evidence), wrong or
    misplaced fix -0.10, fix before any investigation -0.25, premature
    resolve -0.40, resolve +0.30 (+0.10 more in the hard task when the
    reasoning concludes the true hypothesis), repeated or invalid command
    -0.20, and past 60% of the SLA window up to -0.10 a step.

    The episode's grade (``info["grade"]``, and ``obs["score"]`` so far) is
    separate: a pure function of the incident and the trajectory with weighted
    parts diagnosis, ownership, remediation, resolution, efficiency and, in the
    hard task, reasoning (see ``incidentiq.scoring.grader``).

    ## Starting State

    A fresh incident with its first alerts in ``logs`` and the SLA clock full.

    ## Episode End

    Terminated when the incident is resolved, after three premature
    resolves in a row, or when the SLA runs out. Truncated after the task's
    ``max_steps`` (the registered ids also carry a ``TimeLimit``).

    ## Info

    Every step: ``action_valid`` (bool), ``parsed_action`` (canonical command
    text, "" if invalid), ``reward_components`` (dict of floats),
    ``elapsed_minutes`` (int). On the last step also ``grade`` (float in
    [0, 1]), ``grade_components`` (dict of floats that sum to it) and
    ``is_success`` (bool: resolved).

    ## Arguments

    ```python
    gym.make("IncidentIQ/CascadingFailure-v0", split="train", decoys=None, log_noise=0.3, render_mode=None)
    ```

    - ``split``: "train", "test" or "all": which (family, root service)
      combinations to draw; "test" ones never appear in "train".
    - ``decoys``: healthy services listed beside the involved ones (task default if None).
    - ``log_noise``: chance of each of two routine log lines in the first alerts.
    - ``render_mode``: "ansi" returns the text view, "human" prints it.

    ``walkthrough()`` returns the optimal command list for the current
    incident (ground truth, for tests and demonstrations; never observed).

    ## Version History

    - v0: initial release. Reward magnitudes follow the original IncidentIQ server environment; the
      escalation reward (+/-0.05), the SLA decay (up to -0.10 a step), the
      hard-task site reward (+0.05), the rule that a service's evidence is
      rewarded once and only until the root's cause is known (repeat and
      late looks, and a second caller as far from the root, earn nothing, so
      they cannot be farmed), the smaller reward for a fix made before the
      root's evidence was seen (as the grader halves such fixes), the 0.25
      (not 0.10) less per earlier fix attempt (so relief followed by the fix
      never beats the fix alone), the hard task's +0.10 for resolving with
      the true hypothesis concluded (the grader weighs reasoning too) and the
      grader weights are this release's own, chosen so that the walkthrough and a rule-based agent grade near 1
      while random and blind strategies stay under 0.1 and 0.2.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}

    def __init__(
        self,
        task_id: str | TaskId | None = TaskId.CASCADING_FAILURE,
        split: str | Split = Split.TRAIN,
        decoys: int | None = None,
        log_noise: float = 0.3,
        render_mode: str | None = None,
    ):
        self.task = None if task_id is None else TaskId(task_id)
        self.split = Split(split)
        if decoys is not None and not 0 <= decoys <= 4:
            raise ValueError(f"decoys must be between 0 and 4, got {decoys}")
        if not 0.0 <= log_noise <= 1.0:
            raise ValueError(f"log_noise must be in [0, 1], got {log_noise}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            hint = " (SB3's make_vec_env asks for 'rgb_array' unless env_kwargs sets render_mode)"
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
                + (hint if render_mode == "rgb_array" else "")
            )
        self.decoys = decoys
        self.log_noise = log_noise
        self.render_mode = render_mode
        self.action_space = spaces.Text(max_length=MAX_ACTION_LENGTH, min_length=0, charset=ACTION_CHARSET)
        n = MAX_SERVICES
        self.observation_space = spaces.Dict(
            {
                "task_id": _text(40),
                "incident_description": _text(MAX_LINE),
                "affected_services": spaces.Sequence(_text(32)),
                "severity": spaces.Discrete(3),
                "logs": spaces.Sequence(_text(MAX_LINE)),
                "metrics": spaces.Dict(
                    {
                        "error_rate_pct": spaces.Box(0.0, 100.0, (n,), np.float32),
                        "latency_p99_ms": spaces.Box(0.0, 1e5, (n,), np.float32),
                        "throughput_rps": spaces.Box(0.0, 1e5, (n,), np.float32),
                        "status": spaces.MultiDiscrete([4] * n, dtype=np.int8),
                    }
                ),
                "feedback": _text(MAX_FEEDBACK, 0),
                "score": spaces.Box(0.0, 1.0, (1,), np.float32),
                "sla_remaining": spaces.Discrete(MAX_SLA_MINUTES + 1),
                "team_roster": spaces.Dict(
                    {"teams": spaces.Sequence(_text(32)), "available": spaces.MultiBinary(MAX_TEAMS)}
                ),
                "step_count": spaces.Discrete(MAX_STEPS + 1),
                "dependencies": spaces.MultiBinary((n, n)),
                "investigated": spaces.MultiBinary(n),
                "hypotheses": spaces.Sequence(_text(32)),
            }
        )
        self._incident: Incident | None = None
        self._world: World | None = None
        self._done = False

    # ---- Gymnasium API -------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Draw a new incident from ``self.np_random`` (seeded by ``seed``).

        ``options={"task_id": ...}`` picks the task of an AnyIncident env.
        """
        super().reset(seed=seed)
        task = self.task
        if options and "task_id" in options:
            task = TaskId(options["task_id"])
        if task is None:
            task = _TASK_ORDER[int(self.np_random.integers(len(_TASK_ORDER)))]
        incident = generate(self.np_random, task, self.split, self.decoys, self.log_noise)
        self._incident = incident
        self._config = TASKS[task]
        self._world = World(incident)
        self._tally = Tally(incident)
        self._trajectory: list[StepRecord] = []
        self._done = False
        self._dependencies = np.zeros((MAX_SERVICES, MAX_SERVICES), dtype=np.int8)
        if incident.edges:
            self._dependencies[tuple(zip(*incident.edges))] = 1
        # What every observation of this episode repeats: task id, description, services, teams, hypotheses.
        self._static = (task.value, incident.description, incident.services, incident.teams, incident.hypotheses)
        self._score = np.zeros(1, dtype=np.float32)  # the grade so far; observations get a copy
        obs = self._observation("")
        info = self._info(True, "", dict.fromkeys(REWARD_KEYS, 0.0))
        if self.render_mode == "human":
            self.render()
        return obs, info

    def step(self, action: str):
        """Parse ``action``, apply it, advance the clock, observe, reward and grade."""
        if self._world is None:
            raise RuntimeError("IncidentEnv.step() called before reset(); call reset() first.")
        if self._done:
            raise RuntimeError("The episode has ended; call reset() to start a new incident.")
        if not isinstance(action, str):
            raise TypeError(f"IncidentEnv actions are str commands, got {type(action).__name__}: {action!r:.80}")
        world, config = self._world, self._config
        parsed = parse(action)
        command = parsed.command
        record, feedback = world.apply(command, parsed.reasoning, parsed.canonical)
        if command is None:
            feedback = parsed.error
        self._trajectory.append(record)
        self._tally.update(record)
        parts = reward_components(record, config.sla_minutes, self._tally.concluded_correctly)
        reward = sum(parts.values())
        terminated = True
        if world.resolved:
            pass
        elif world.failed_resolves >= 3:
            feedback += " Three premature resolves in a row: the incident review ends this episode."
        elif world.minute >= config.sla_minutes:
            feedback += " The SLA has been breached."
        else:
            terminated = False
        truncated = not terminated and world.steps >= config.max_steps
        self._score[0] = self._tally.total()
        obs = self._observation(feedback)
        info = self._info(command is not None, parsed.canonical, parts)
        if terminated or truncated:
            self._done = True
            grade = self._tally.grade()
            info["grade"] = grade.total
            info["grade_components"] = grade.components
            info["is_success"] = world.resolved
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, truncated, info

    def render(self) -> str | None:
        """The text view of the current observation ("ansi" returns it, "human" prints it)."""
        if self._world is None:
            raise RuntimeError("render() called before reset().")
        text = render_text(self._observation(self._last_feedback))
        if self.render_mode == "human":
            print(text + "\n")
            return None
        return text

    # ---- ground truth, for tests, demonstrations and imitation --------------------

    def walkthrough(self) -> list[str]:
        """The optimal commands for the current incident (never part of an observation)."""
        if self._incident is None:
            raise RuntimeError("walkthrough() needs an incident: call reset() first.")
        return self._incident.walkthrough()

    @property
    def incident(self) -> Incident | None:
        """The current incident's ground truth (``None`` before the first reset)."""
        return self._incident

    @property
    def trajectory(self) -> tuple[StepRecord, ...]:
        """The records of this episode's steps so far, as the grader reads them."""
        return tuple(self._trajectory) if self._world is not None else ()

    # ---- helpers shared by reset and step --------------------------------------------

    def _observation(self, feedback: str) -> dict:
        world = self._world
        task_id, description, services, teams, hypotheses = self._static
        metrics = world.metrics()
        flags = world.flags.copy()
        self._last_feedback = feedback
        if len(feedback) > MAX_FEEDBACK:
            feedback = feedback[: MAX_FEEDBACK - 3] + "..."
        sla_remaining = self._config.sla_minutes - world.minute
        return {
            "task_id": task_id,
            "incident_description": description,
            "affected_services": services,
            "severity": world.severity,
            "logs": tuple(world.logs[-LOG_WINDOW:]),
            "metrics": {
                "error_rate_pct": metrics[0],
                "latency_p99_ms": metrics[1],
                "throughput_rps": metrics[2],
                "status": flags[0],
            },
            "feedback": feedback,
            "score": self._score.copy(),
            "sla_remaining": sla_remaining if sla_remaining > 0 else 0,
            "team_roster": {"teams": teams, "available": flags[2]},
            "step_count": world.steps,
            "dependencies": self._dependencies.copy(),
            "investigated": flags[1],
            "hypotheses": hypotheses,
        }

    def _info(self, valid: bool, canonical: str, parts: dict[str, float]) -> dict:
        return {
            "action_valid": valid,
            "parsed_action": canonical,
            "reward_components": parts,
            "elapsed_minutes": self._world.minute,
        }
