"""Token ids and float features from IncidentIQ observations, for trainers that need arrays."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from incidentiq.language.vocabulary import PAD, STAMP_LENGTH, Vocabulary
from incidentiq.sim.catalog import MAX_TEAMS
from incidentiq.sim.generator import MAX_SERVICES
from incidentiq.sim.tasks import TASKS, TaskId
from incidentiq.wrappers.commands import MAX_HYPOTHESES

TEXT_LENGTHS = {"description": 48, "feedback": 48, "logs": 96, "events": 32}
"""Token budget of each text field; longer text keeps its most recent tokens."""
HYPOTHESIS_LENGTH = 4
"""Tokens per listed hypothesis (the hard task's candidate causes), one row each."""
SLOT_LENGTH = 32
"""Tokens kept per slot: the most recent lines whose first named service is that slot (a line
that repeats the row's last line is not added again)."""
PROGRESS_FEATURES = 2 + 3 + len(TaskId) + 3
"""``progress``: SLA and step fractions, severity one-hot, task one-hot, score, listed services and teams
(as fractions of the room for them)."""
METRIC_KEYS = ("error_rate_pct", "latency_p99_ms", "throughput_rps")
"""The env's metric arrays, passed through under their own names."""
METRIC_HIGH = 1e5
_TASKS = tuple(TaskId)
_TASK_ONE_HOT = {task.value: [float(task is other) for other in _TASKS] for task in _TASKS}
_SCORE = 5 + len(TaskId)
"""Where ``progress`` holds the score: after the SLA and step fractions, severity and task one-hots."""
# The rows that change from step to step share one buffer: the log window, the events, the slot rows,
# the feedback, the findings. It holds the vocabulary's episode-independent ids (a service is its name id,
# not yet its slot token), so a new line is copied in as the vocabulary's cache returns it, and the episode
# table maps the whole buffer into a new array once per observation.
_LOGS = slice(0, TEXT_LENGTHS["logs"])
_EVENTS = slice(_LOGS.stop, _LOGS.stop + TEXT_LENGTHS["events"])
_SLOTS = slice(_EVENTS.stop, _EVENTS.stop + MAX_SERVICES * SLOT_LENGTH)
_FEEDBACK = slice(_SLOTS.stop, _SLOTS.stop + TEXT_LENGTHS["feedback"])
_ROW_OF_SLOT = (*((s, s + SLOT_LENGTH) for s in range(_SLOTS.start, _SLOTS.stop, SLOT_LENGTH)),
                (_EVENTS.start, _EVENTS.stop))
"""Where slot i's row starts and stops in the buffer; index ``MAX_SERVICES`` is the events row."""
FINDING_LENGTH = 24
"""Tokens kept of each slot's latest finding: the first ones of the last investigation or fix result
whose feedback names that slot first."""
_FINDINGS = slice(_FEEDBACK.stop, _FEEDBACK.stop + MAX_SERVICES * FINDING_LENGTH)
_ROWS_LENGTH = _FINDINGS.stop
_RESULT_PREFIXES = ("Investigated ", "Applied ")
"""How the feedback of an investigation or a fix opens ("Investigated payment-service: ...")."""
_FEEDBACK_LENGTH = TEXT_LENGTHS["feedback"]
_PADDING = memoryview(np.zeros(max(FINDING_LENGTH, _FEEDBACK_LENGTH), dtype=np.int64))
"""``PAD`` ids to clear a row with (a memoryview copies short rows faster than numpy)."""


def _right_aligned(pieces: list[np.ndarray], length: int) -> np.ndarray:
    """The last ``length`` ids of ``pieces`` joined, padded on the left with ``PAD``."""
    out = np.zeros(length, dtype=np.int64)
    if pieces:
        ids = np.concatenate(pieces)[-length:]
        out[length - len(ids) :] = ids
    return out


def _push(buffer: memoryview, start: int, stop: int, ids: np.ndarray) -> None:
    """Shift ``buffer[start:stop]`` left and append ``ids`` (the most recent tokens stay).

    A memoryview moves the ids in C, several times faster than numpy's slicing for rows this short.
    """
    n = len(ids)
    if n >= stop - start:
        buffer[start:stop] = ids[n - (stop - start) :]
    elif n:
        buffer[start : stop - n] = buffer[start + n : stop]
        buffer[stop - n : stop] = ids


class ObservationTokenizer:
    """Turns one episode's observations into token ids and float features.

    It remembers the episode's log lines, so that each slot's row holds the
    most recent evidence about that service even after the lines scroll out of
    the 8-line log window. Call :meth:`reset` with each first observation and
    :meth:`observe` with every later one.

    >>> import gymnasium as gym, incidentiq
    >>> env = gym.make("IncidentIQ/SingleServiceOutage-v0")
    >>> tokenizer = ObservationTokenizer()
    >>> tokens = tokenizer.reset(env.reset(seed=0)[0])
    >>> sorted(tokens)[:4], bool(tokens["description"].any())
    (['available', 'dependencies', 'description', 'error_rate_pct'], True)
    """

    def __init__(self, vocabulary: Vocabulary | None = None):
        self.vocabulary = vocabulary or Vocabulary()
        high = self.vocabulary.size - 1
        token_box = {name: spaces.Box(0, high, (length,), np.int64) for name, length in TEXT_LENGTHS.items()}
        self.observation_space = spaces.Dict(
            {
                **token_box,
                "hypotheses": spaces.Box(0, high, (MAX_HYPOTHESES * HYPOTHESIS_LENGTH,), np.int64),
                "slots": spaces.Box(0, high, (MAX_SERVICES * SLOT_LENGTH,), np.int64),
                "findings": spaces.Box(0, high, (MAX_SERVICES * FINDING_LENGTH,), np.int64),
                "error_rate_pct": spaces.Box(0.0, 100.0, (MAX_SERVICES,), np.float32),
                "latency_p99_ms": spaces.Box(0.0, METRIC_HIGH, (MAX_SERVICES,), np.float32),
                "throughput_rps": spaces.Box(0.0, METRIC_HIGH, (MAX_SERVICES,), np.float32),
                "status": spaces.Box(0, 3, (MAX_SERVICES,), np.int8),
                "investigated": spaces.Box(0, 1, (MAX_SERVICES,), np.int8),
                "dependencies": spaces.Box(0, 1, (MAX_SERVICES * MAX_SERVICES,), np.int8),
                "available": spaces.Box(0, 1, (MAX_TEAMS,), np.int8),
                "progress": spaces.Box(0.0, 1.0, (PROGRESS_FEATURES,), np.float32),
            }
        )

    def reset(self, obs: dict) -> dict[str, np.ndarray]:
        """Start a new episode from its first observation; return its arrays."""
        vocabulary = self.vocabulary
        services, teams = obs["affected_services"], obs["team_roster"]["teams"]
        self._table = table = vocabulary.episode_table(services, teams)
        self._slot_of = {vocabulary.service_ids[name]: i for i, name in enumerate(services)}
        self._task = TASKS[TaskId(obs["task_id"])]
        # What ``progress`` holds for the whole episode: the task one-hot and how many services and teams are listed.
        self._progress = np.array(
            [0.0] * 5 + _TASK_ONE_HOT[obs["task_id"]] + [0.0, len(services) / MAX_SERVICES, len(teams) / MAX_TEAMS],
            dtype=np.float32,
        )
        # Fixed for the episode: shared, read-only, by every step's observation.
        self._description = _right_aligned([table[vocabulary.encode(obs["incident_description"])]],
                                           TEXT_LENGTHS["description"])
        self._hypotheses = np.concatenate(
            [_right_aligned([table[vocabulary.encode(h)]], HYPOTHESIS_LENGTH) for h in obs["hypotheses"]]
            + [np.zeros(HYPOTHESIS_LENGTH * (MAX_HYPOTHESES - len(obs["hypotheses"])), dtype=np.int64)]
        )
        self._dependencies = obs["dependencies"].reshape(-1).copy()  # the graph does not change in an episode
        for fixed in (self._description, self._hypotheses, self._dependencies):
            fixed.flags.writeable = False
        # No view of the buffer outlives a call: a copied or unpickled tokenizer would write to a detached view.
        self._rows = np.zeros(_ROWS_LENGTH, dtype=np.int64)
        self._last_line = None
        self._last_pushed: list[str | None] = [None] * (MAX_SERVICES + 1)  # per slot row, then events: a line's text
        return self.observe(obs)

    def _read_logs(self, buffer: memoryview, logs) -> None:
        """Tokenize the lines that are new since the last observation into the window and slot rows."""
        start = 0
        if self._last_line is not None:
            for k in range(len(logs) - 1, -1, -1):
                if logs[k] == self._last_line:
                    start = k + 1
                    break
        if start == len(logs):
            return
        encode, slot_of, last_pushed = self.vocabulary.encode_with_subject, self._slot_of, self._last_pushed
        window = _LOGS.stop  # the log window opens the buffer
        for line in logs[start:]:
            # log_body(line), inlined as the loop's other helpers are: a call costs more than the work.
            body = line[STAMP_LENGTH:] if line[STAMP_LENGTH - 2 : STAMP_LENGTH] == "Z " and line[10:11] == "T" else line
            ids, subject = encode(body)
            slot = slot_of.get(subject, MAX_SERVICES)  # a line that names no listed service is an event
            # A repeated line ("alert still firing" each minute) says nothing new and would push the
            # slot's evidence out of its row.
            new = last_pushed[slot] != body
            last_pushed[slot] = body
            row_start, row_stop = _ROW_OF_SLOT[slot]
            n = len(ids)
            if n < SLOT_LENGTH:  # as every line an env writes is: _push's shifts, inlined
                buffer[: window - n] = buffer[n:window]
                buffer[window - n : window] = ids
                if new:
                    buffer[row_start : row_stop - n] = buffer[row_start + n : row_stop]
                    buffer[row_stop - n : row_stop] = ids
            else:
                _push(buffer, 0, window, ids)
                if new:
                    _push(buffer, row_start, row_stop, ids)
        self._last_line = logs[-1]

    def observe(self, obs: dict) -> dict[str, np.ndarray]:
        """The arrays of one observation (the next one of the current episode)."""
        buffer = memoryview(self._rows)
        self._read_logs(buffer, obs["logs"])
        text = obs["feedback"]
        feedback = 0  # how many feedback ids the buffer's feedback row holds for this step
        if text:
            ids, subject = self.vocabulary.encode_with_subject(text)
            slot = self._slot_of.get(subject)
            if slot is not None and text.startswith(_RESULT_PREFIXES):  # a result, not "Already done: ..."
                stop = _FINDINGS.start + (slot + 1) * FINDING_LENGTH
                head = ids if len(ids) <= FINDING_LENGTH else ids[:FINDING_LENGTH]  # slicing costs more than len()
                n = len(head)
                buffer[stop - FINDING_LENGTH : stop - n] = _PADDING[: FINDING_LENGTH - n]
                buffer[stop - n : stop] = head
            if len(ids) > _FEEDBACK_LENGTH:
                ids = ids[-_FEEDBACK_LENGTH:]
            feedback = len(ids)
            buffer[_FEEDBACK.stop - feedback : _FEEDBACK.stop] = ids
        rows = self._table.take(self._rows)  # names to this episode's slot and team tokens, in a new array
        if feedback:  # the feedback row holds this step's feedback only: cleared once it is copied
            buffer[_FEEDBACK.stop - feedback : _FEEDBACK.stop] = _PADDING[:feedback]
        task = self._task
        progress = self._progress.copy()
        # Conditional expressions and .item(), not min() and [0]: this runs every step.
        sla = obs["sla_remaining"] / task.sla_minutes
        progress[0] = sla if sla < 1.0 else 1.0
        steps = obs["step_count"] / task.max_steps
        progress[1] = steps if steps < 1.0 else 1.0
        progress[2 + obs["severity"]] = 1.0
        progress[_SCORE] = obs["score"].item()
        metrics = obs["metrics"]
        return {
            "description": self._description,
            "feedback": rows[_FEEDBACK],
            "logs": rows[_LOGS],
            "events": rows[_EVENTS],
            "hypotheses": self._hypotheses,
            "slots": rows[_SLOTS],
            "findings": rows[_FINDINGS],
            # The env's own arrays: fresh every step and inside [0, METRIC_HIGH] (its observation space says so).
            "error_rate_pct": metrics["error_rate_pct"],
            "latency_p99_ms": metrics["latency_p99_ms"],
            "throughput_rps": metrics["throughput_rps"],
            "status": metrics["status"],
            "investigated": obs["investigated"],
            "dependencies": self._dependencies,
            "available": obs["team_roster"]["available"],
            "progress": progress,
        }


class TokenizeObservation(gym.Wrapper):
    """IncidentIQ's Dict observation as token ids and float features, for SB3 and other trainers.

    The new observation is a ``Dict`` of 1-D ``Box``es:

    - ``description``, ``feedback``, ``logs``: token ids of the ticket, the
      last command's feedback and the episode's log lines (all of them, not
      only the 8-line window), the most recent tokens kept, left-padded with
      ``PAD`` (0);
    - ``hypotheses``: one row of ``HYPOTHESIS_LENGTH`` ids per listed
      hypothesis (hard task), in the listed order, so that the catalog's
      "resolve concluding hypothesis k" can refer to row k;
    - ``slots``: ``MAX_SERVICES`` rows of ``SLOT_LENGTH`` ids, flattened; row i
      holds the episode's most recent lines whose first named service is the
      i-th listed service (its alerts, investigation findings, catalog entry
      and the fixes applied to it); a line that repeats the row's last one
      (an alert firing minute after minute) is not added again, so it cannot
      push the evidence out;
    - ``findings``: ``MAX_SERVICES`` rows of ``FINDING_LENGTH`` ids, flattened;
      row i holds the first ids of the latest investigation or fix result
      whose feedback names the i-th listed service first ("Investigated
      payment-service: ERROR payment-service: connection pool exhausted ..."),
      so what was found about a service stays beside it however many alerts
      follow;
    - ``events``: the episode's most recent lines that name no listed service
      (pages, acknowledgements, escalations), kept after they leave the log window;
    - ``error_rate_pct``, ``latency_p99_ms``, ``throughput_rps``: the env's
      metric arrays, one value per slot, passed through;
    - ``status``, ``investigated``, ``dependencies`` (flattened),
      ``available``: the env's own integer arrays, passed through;
    - ``progress``: floats in [0, 1]: SLA and step fractions, severity and
      task one-hots, the score so far, and how many services and teams are listed.

    Scaling is left to the policy (``incidentiq.train`` takes logarithms of
    latency and throughput), which keeps this wrapper cheap per step. Arrays
    fixed for the episode (``description``, ``hypotheses``, ``dependencies``) are shared between
    its steps and read-only.

    Every id lies in ``[0, vocabulary.size)``: services are slot tokens, teams
    roster tokens and numbers magnitude buckets (see
    :mod:`incidentiq.language.vocabulary`). Actions pass through unchanged.
    """

    def __init__(self, env: gym.Env, vocabulary: Vocabulary | None = None):
        super().__init__(env)
        self.tokenizer = ObservationTokenizer(vocabulary)
        self.observation_space = self.tokenizer.observation_space

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset the env and the tokenizer's memory of the episode."""
        obs, info = self.env.reset(seed=seed, options=options)
        return self.tokenizer.reset(obs), info

    def step(self, action):
        """Step the env and tokenize the observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.tokenizer.observe(obs), reward, terminated, truncated, info


__all__ = [
    "FINDING_LENGTH",
    "METRIC_HIGH",
    "METRIC_KEYS",
    "PROGRESS_FEATURES",
    "HYPOTHESIS_LENGTH",
    "PAD",
    "SLOT_LENGTH",
    "TEXT_LENGTHS",
    "ObservationTokenizer",
    "TokenizeObservation",
]
