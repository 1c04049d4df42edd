"""A closed vocabulary over everything the simulator can say, and a tokenizer for it.

The words come from the simulator's own text: every string constant in the
modules that write logs, feedback, tickets and hypotheses (templates included),
read with ``ast`` so that a new template brings its words along. Docstrings
are left out. Names are not words:

- a service name becomes a slot token, ``SLOT_i`` for the i-th listed service
  of the episode (``OTHER_SERVICE`` for one that is not listed), so a policy
  can tie evidence to the slot it must act on;
- a team name after "owned by", "owner", "assigned to" or "pager:" (or opening
  the text) becomes ``TEAM_i``, its position on the episode's roster; elsewhere
  "database" and "search" stay words;
- a number becomes one of ``NUM_BUCKETS`` tokens by its binary order of magnitude.

Id 0 is ``PAD`` and id 1 is ``UNK``. Text is tokenized in two stages: once per
distinct string into episode-independent ids (cached), then mapped through a
per-episode lookup table that turns names into slot and team tokens.

>>> vocab = Vocabulary()
>>> lut = vocab.episode_table(("auth-service", "api-gateway"), ("identity", "platform"))
>>> vocab.decode(lut[vocab.encode("INFO catalog: api-gateway is owned by platform; it calls auth-service")])
['info', 'catalog', 'SLOT_1', 'is', 'owned', 'by', 'TEAM_1', 'it', 'calls', 'SLOT_0']
"""

from __future__ import annotations

import ast
import functools
import importlib.resources
import math
import re

import numpy as np

from incidentiq.sim.catalog import MAX_TEAMS, SERVICE_NAMES, TEAM_NAMES
from incidentiq.sim.generator import MAX_SERVICES

PAD, UNK = 0, 1
NUM_BUCKETS = 20
"""Numbers map to ``NUM_0`` (below 1) up to ``NUM_19`` (2**18 and above)."""

TEXT_MODULES = (
    "sim/catalog.py",
    "sim/commands.py",
    "sim/dynamics.py",
    "sim/faults.py",
    "sim/generator.py",
    "sim/tasks.py",
    "language/parser.py",
    "envs/incident_env.py",  # the feedback it appends when an episode ends ("The SLA has been breached.")
)
"""Modules whose string constants are the vocabulary's source (relative to the package)."""

_WORD_RE = re.compile(r"[a-z]+|\d+(?:\.\d+)?")
_NAME_BOUNDARY = r"(?![a-z0-9-])"
_SERVICE_RE = re.compile(
    r"(?<![a-z0-9-])(" + "|".join(sorted(map(re.escape, SERVICE_NAMES), key=len, reverse=True)) + ")" + _NAME_BOUNDARY
)
# One pass over a word: a service name, else a word or a number.
_TOKEN_RE = re.compile(f"(?P<service>{_SERVICE_RE.pattern})|(?P<word>[a-z]+)|(?P<number>\\d+(?:\\.\\d+)?)")
_PUNCTUATION = ";:,.'\"()"
_TEAM_AFTER_TWO = frozenset({("owned", "by"), ("assigned", "to"), ("no", "team")})
_TEAM_AFTER_ONE = frozenset({"owner", "pager:"})
"""The contexts in which a team name is a team: "owned by X", "assigned to X", "no team 'X'", "owner X", "pager: X"."""
STAMP_LENGTH = len("2026-01-01T00:00:00Z ")
WORD_CACHE_SIZE = 1 << 16
"""Words a vocabulary remembers before it starts its word cache afresh: most recur, but artifacts do not."""


def log_body(line: str) -> str:
    """A log line without its leading timestamp, if it has one.

    >>> log_body("2026-01-01T00:00:00Z INFO pager: identity acknowledged"), log_body("no stamp")
    ('INFO pager: identity acknowledged', 'no stamp')
    """
    # Every line an env writes opens with a fixed-width stamp: two of its characters tell, cheaper than a regex.
    if line[STAMP_LENGTH - 2 : STAMP_LENGTH] == "Z " and line[10:11] == "T":
        return line[STAMP_LENGTH:]
    return line


def _module_words(source: str) -> set[str]:
    """Lower-case words of every string constant in ``source`` except docstrings."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    # A bare string statement after an assignment documents it: not text the simulator emits.
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docstrings.add(id(node.value))
    words: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = _SERVICE_RE.sub(" ", node.value.lower())
            words.update(w for w in _WORD_RE.findall(text) if not w[0].isdigit())
    return words


@functools.cache
def simulator_words() -> tuple[str, ...]:
    """The sorted words of the simulator's text (see :data:`TEXT_MODULES`)."""
    package = importlib.resources.files("incidentiq")
    words: set[str] = set()
    for path in TEXT_MODULES:
        words |= _module_words(package.joinpath(path).read_text(encoding="utf-8"))
    # Pieces of names show up inside artifacts ("cert-payment-412").
    for name in SERVICE_NAMES + TEAM_NAMES:
        words.update(_WORD_RE.findall(name))
    return tuple(sorted(words))


def number_bucket(value: float) -> int:
    """The ``NUM_`` bucket of a non-negative number: 0 below 1, then one per power of two.

    >>> [number_bucket(v) for v in (0, 1, 3, 1024, 1e9)]
    [0, 1, 2, 11, 19]
    """
    if value < 1:
        return 0
    return min(NUM_BUCKETS - 1, 1 + int(math.log2(value)))


class Vocabulary:
    """Token ids for IncidentIQ text: specials, slot and team tokens, number buckets, words.

    ``size`` counts the ids an observation can hold (``0 .. size - 1``). Ids at
    and above ``size`` are episode-independent name ids that
    :meth:`episode_table` maps back inside.

    ``encode_with_subject(text)`` gives the encoded ids of ``text`` (cached and
    read-only) and the id of the first service it names (-1 if none). It is the
    cache itself, an attribute rather than a method, so that a tokenizer reading
    several lines a step pays for no extra call.
    """

    def __init__(self, words: tuple[str, ...] | None = None):
        words = simulator_words() if words is None else words
        self.tokens: tuple[str, ...] = (
            ("PAD", "UNK", "OTHER_SERVICE", "OTHER_TEAM")
            + tuple(f"SLOT_{i}" for i in range(MAX_SERVICES))
            + tuple(f"TEAM_{i}" for i in range(MAX_TEAMS))
            + tuple(f"NUM_{i}" for i in range(NUM_BUCKETS))
            + words
        )
        self.size = len(self.tokens)
        self.ids = {token: i for i, token in enumerate(self.tokens)}
        self.slot0 = self.ids["SLOT_0"]
        self.team0 = self.ids["TEAM_0"]
        self.num0 = self.ids["NUM_0"]
        # Episode-independent ids for names live past the vocabulary.
        self.service_ids = {name: self.size + i for i, name in enumerate(SERVICE_NAMES)}
        self.team_ids = {name: self.size + len(SERVICE_NAMES) + i for i, name in enumerate(TEAM_NAMES)}
        self._base_table = np.arange(self.size + len(SERVICE_NAMES) + len(TEAM_NAMES), dtype=np.int64)
        self._base_table[self.size : self.size + len(SERVICE_NAMES)] = self.ids["OTHER_SERVICE"]
        self._base_table[self.size + len(SERVICE_NAMES) :] = self.ids["OTHER_TEAM"]
        self._words: dict[str, tuple[tuple[int, ...], int]] = {}
        self.encode_with_subject = functools.lru_cache(maxsize=16384)(self._encode)

    def __len__(self) -> int:
        return self.size

    def __getstate__(self) -> dict:
        # An lru_cache wrapper does not pickle: it is rebuilt, empty, on unpickling.
        state = self.__dict__.copy()
        del state["encode_with_subject"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.encode_with_subject = functools.lru_cache(maxsize=16384)(self._encode)

    def _word(self, word: str) -> tuple[tuple[int, ...], int]:
        """Ids of one whitespace-separated word, and the id of the team it names (-1 if none)."""
        ids, service_ids, num0 = self.ids, self.service_ids, self.num0
        pieces = []
        for match in _TOKEN_RE.finditer(word):
            kind, token = match.lastgroup, match.group()
            if kind == "service":
                pieces.append(service_ids[token])
            elif kind == "number":
                pieces.append(num0 + number_bucket(float(token)))
            else:  # team names are words here; _encode decides from the context whether they are teams
                pieces.append(ids.get(token, UNK))
        team = self.team_ids.get(word.strip(_PUNCTUATION), -1)
        return tuple(pieces), team

    def _encode(self, text: str) -> tuple[np.ndarray, int]:
        """Episode-independent ids of ``text`` and the id of the first service it names (-1 if none).

        Words are tokenized one at a time through a cache, since most words
        recur; a team name counts as a team in one of the contexts of
        ``_TEAM_AFTER_TWO`` and ``_TEAM_AFTER_ONE`` or as the first word.
        """
        word_cache = self._words
        pieces: list[int] = []
        two_back, one_back = "", ""  # the two words before this one
        for position, word in enumerate(text.lower().split()):
            entry = word_cache.get(word)
            if entry is None:
                if len(word_cache) >= WORD_CACHE_SIZE:  # artifacts ("deploy-48213") are new words every episode
                    word_cache.clear()
                entry = word_cache[word] = self._word(word)
            word_ids, team = entry
            if team >= 0 and (position == 0 or (two_back, one_back) in _TEAM_AFTER_TWO or one_back in _TEAM_AFTER_ONE):
                pieces.append(team)
            else:
                pieces.extend(word_ids)
            two_back, one_back = one_back, word
        first, last = self.size, self.size + len(SERVICE_NAMES)
        subject = -1
        for i in pieces:
            if first <= i < last:
                subject = i
                break
        array = np.array(pieces, dtype=np.int64)
        array.flags.writeable = False  # cached: shared by every caller
        return array, subject

    def encode(self, text: str) -> np.ndarray:
        """Episode-independent ids of ``text``: words, number buckets and name ids (see :meth:`episode_table`)."""
        return self.encode_with_subject(text)[0]

    def encode_log(self, line: str) -> tuple[np.ndarray, int]:
        """Encoded ids of a log line, without its timestamp, and the id of the first service it names (or -1)."""
        return self.encode_with_subject(log_body(line))

    def episode_table(self, services, teams) -> np.ndarray:
        """A lookup table that maps encoded ids to observation ids for one episode's names."""
        table = self._base_table.copy()
        for i, name in enumerate(services):
            table[self.service_ids[name]] = self.slot0 + i
        for i, name in enumerate(teams):
            table[self.team_ids[name]] = self.team0 + i
        return table

    def decode(self, ids) -> list[str]:
        """Token strings of observation ids (for debugging and tests)."""
        return [self.tokens[int(i)] for i in ids]
