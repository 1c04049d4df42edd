"""Train MaskablePPO policies on IncidentIQ (the ``train`` extra: stable-baselines3, sb3-contrib, torch).

The pieces:

- :class:`TokenFeaturesExtractor`: an embedding over the token ids of
  :class:`~incidentiq.wrappers.TokenizeObservation`, pooled per slot and per
  text field, with the slot and roster tokens each row mentions;
- :class:`PPOSettings`: the defaults used by ``incidentiq train`` and the
  benchmarks;
- :func:`train`: train on the train split, follow the mean grade on held-out
  test-split incidents, and write ``model.zip``, ``metrics.json`` and
  ``learning_curve.png``;
- :class:`PPOAgent`: a trained policy behind the same ``reset``/``act``
  interface as every other agent, so ``incidentiq evaluate --agent ppo:PATH``
  works on the plain text env.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

try:
    import torch
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.policies import MaskableMultiInputActorCriticPolicy
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.common.utils import LinearSchedule
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv
    from torch import nn
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"incidentiq.train needs the training extra ({error.name} is missing): pip install \"incidentiq[train]\""
    ) from error

from incidentiq import ENV_IDS
from incidentiq.agents import make_agent, run_episode
from incidentiq.language.vocabulary import PAD, Vocabulary
from incidentiq.sim.catalog import MAX_TEAMS
from incidentiq.sim.commands import Aspect, Fix
from incidentiq.sim.generator import MAX_SERVICES
from incidentiq.wrappers import CATALOG, ObservationTokenizer, catalog_mask, render_command, wrap_for_rl
from incidentiq.wrappers.commands import MAX_HYPOTHESES
from incidentiq.wrappers.tokenize import (
    FINDING_LENGTH,
    HYPOTHESIS_LENGTH,
    METRIC_HIGH,
    METRIC_KEYS,
    SLOT_LENGTH,
    TEXT_LENGTHS,
)

SLOT_FEATURES = 8
"""Floats per slot the extractor derives: error rate, log latency, log throughput (scaled to [0, 1]),
status one-hot (4) and the investigated flag."""

TARGET_GRADE = 0.9
"""The mean test-split grade a trained policy should reach."""
RULED_OUT = -1e8
"""The logit of a command the policy never sends (what sb3-contrib gives a masked action)."""
TRAINING_SPLITS = ("train", "all")
"""Splits training envs may draw from: never ``"test"`` alone, whose incidents the grades are measured on."""


# ---- policy --------------------------------------------------------------------------------


_GLOBAL_KEYS = ("dependencies", "available", "progress")
_FEEDBACK = list(TEXT_LENGTHS).index("feedback")
_MENTIONS = MAX_SERVICES + MAX_TEAMS
_LOG_SCALE = 1.0 / math.log1p(METRIC_HIGH)


class TokenFeaturesExtractor(BaseFeaturesExtractor):
    """Embeds token ids and pools them per slot and per text field.

    Each slot row becomes the mean of its token embeddings (padding left
    out), their elementwise maximum (a finding stays visible however many
    alerts share its row), the counts of each roster token and each slot
    token it mentions (so "slot 3's catalog entry names roster team 5"
    survives pooling), and that slot's float features; one shared network
    encodes every slot alike. Text fields get the mean and the counts, and
    the global floats pass through.

    The output is ``[slot encodings (slots x slot_dim) | roster tokens per slot
    (slots x teams) | text encoding (text_dim) | roster tokens in the feedback
    (teams) | roster assignments sent (teams) | mean embedding per hypothesis
    row (hypotheses x embed_dim) | global floats | latest finding per slot
    (slots x 2 embed_dim: mean and maximum) | what the other slots' latest
    findings say about each slot (slots x 2 embed_dim: the sum of those that
    name it) | commands sent (catalog)]``; :class:`CatalogHead` reads it in
    that layout. Each slot's encoding also sees which of that
    slot's commands were already sent (the ``issued`` observation) and how
    often the other slots' rows and each text field name it (a caller's
    symptom names the dependency it waits on), with what they say: the
    mean embedding of the other rows that name it and, when the feedback
    names it, the feedback's embedding.
    """

    def __init__(self, observation_space: gym.spaces.Dict, embed_dim: int = 32, slot_dim: int = 64,
                 text_dim: int = 64):
        vocabulary = Vocabulary()
        mentions = MAX_SERVICES + MAX_TEAMS
        # The catalog indices of each slot's commands (looks, then fixes), each team's assignment, and the rest.
        slot_commands = [[k for k, c in enumerate(CATALOG) if c.slot == i] for i in range(MAX_SERVICES)]
        team_commands = [next(k for k, c in enumerate(CATALOG) if c.team == j) for j in range(MAX_TEAMS)]
        other_commands = [k for k, c in enumerate(CATALOG) if c.slot is None and c.team is None]
        n_slot_commands = len(slot_commands[0])
        self.n_global = sum(observation_space[key].shape[0] for key in _GLOBAL_KEYS) + len(other_commands)
        self.slot_dim, self.text_dim = slot_dim, text_dim
        self.embed_dim = embed_dim
        features_dim = MAX_SERVICES * (slot_dim + MAX_TEAMS) + text_dim + 2 * MAX_TEAMS + MAX_HYPOTHESES * embed_dim
        features_dim += self.n_global + 2 * MAX_SERVICES * 2 * embed_dim + len(CATALOG)
        super().__init__(observation_space, features_dim)
        vocab_size = int(observation_space["slots"].high.max()) + 1
        self.slot0, self.team0 = vocabulary.slot0, vocabulary.team0
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        # A fixed table from token id to its slot and roster one-hots: summing it counts names in a row.
        name_table = torch.zeros(vocab_size, mentions)
        name_table[self.slot0 : self.slot0 + MAX_SERVICES, :MAX_SERVICES] = torch.eye(MAX_SERVICES)
        name_table[self.team0 : self.team0 + MAX_TEAMS, MAX_SERVICES:] = torch.eye(MAX_TEAMS)
        self.register_buffer("name_table", name_table)
        self.register_buffer("slot_commands", torch.tensor(slot_commands))
        self.register_buffer("team_commands", torch.tensor(team_commands))
        self.register_buffer("other_commands", torch.tensor(other_commands))
        # Zero on the diagonal: what a slot's own row or finding says about itself is left out of "named by others".
        self.register_buffer("off_diagonal", 1.0 - torch.eye(MAX_SERVICES), persistent=False)
        self.slot_encoder = nn.Sequential(
            nn.Linear(4 * embed_dim + mentions + SLOT_FEATURES + n_slot_commands + 1 + len(TEXT_LENGTHS), slot_dim),
            nn.ReLU(),
            nn.Linear(slot_dim, slot_dim), nn.ReLU(),
        )
        self.text_encoder = nn.Sequential(
            nn.Linear(len(TEXT_LENGTHS) * (embed_dim + mentions), text_dim), nn.ReLU()
        )

    def _counts(self, ids: torch.Tensor) -> torch.Tensor:
        """(..., L) ids -> (..., slots + teams): how often each slot token and roster token occurs."""
        return nn.functional.embedding(ids, self.name_table).sum(-2)

    def _pool(self, ids: torch.Tensor) -> torch.Tensor:
        """(..., L) ids -> (..., embed_dim + slots + teams): mean embedding and name counts."""
        present = (ids != PAD).sum(-1, keepdim=True).clamp(min=1)
        return torch.cat([self.embedding(ids).sum(-2) / present, self._counts(ids)], dim=-1)

    def _mean_and_max(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., L) ids -> the mean (padding left out) and the elementwise maximum of their embeddings.

        One lookup serves both: a finding stays visible in the maximum however many tokens share its row.
        """
        embedded = self.embedding(ids)
        present = (ids != PAD).sum(-1, keepdim=True).clamp(min=1)
        return embedded.sum(-2) / present, embedded.amax(-2)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features for the policy and value heads."""
        metrics = torch.stack([observations[key] for key in METRIC_KEYS], dim=1)  # (batch, 3, slots)
        batch = metrics.shape[0]
        slot_floats = torch.cat(
            [
                (metrics[:, 0] * 0.01).unsqueeze(-1),
                (torch.log1p(metrics[:, 1:]) * _LOG_SCALE).transpose(1, 2),
                nn.functional.one_hot(observations["status"].long(), 4).float(),
                observations["investigated"].unsqueeze(-1),
            ],
            dim=-1,
        )
        issued = observations["issued"]
        global_floats = torch.cat([*(observations[key] for key in _GLOBAL_KEYS), issued[:, self.other_commands]], -1)
        slot_floats = torch.cat([slot_floats, issued[:, self.slot_commands]], dim=-1)
        rows = observations["slots"].long().reshape(batch, MAX_SERVICES, SLOT_LENGTH)
        mean, strongest = self._mean_and_max(rows)  # the maximum: evidence survives long rows
        pooled_rows = torch.cat([mean, self._counts(rows)], dim=-1)
        texts = [self._pool(observations[name].long()) for name in TEXT_LENGTHS]
        # Who names slot i: the other slots' rows (a caller's symptom names its dependency) and each text field.
        row_mentions = pooled_rows[..., -_MENTIONS:-MAX_TEAMS]  # (batch, row, slot)
        named_by_others = row_mentions.sum(1) - torch.diagonal(row_mentions, dim1=1, dim2=2)
        mentions = torch.stack([named_by_others] + [t[..., -_MENTIONS:-MAX_TEAMS] for t in texts], dim=-1)
        # What is said about slot i elsewhere: the mean embedding of the other rows that name it, weighted by
        # how often they do, and the feedback's embedding if the feedback names it ("db-primary: ... but
        # payment-service clients time out" points at payment-service, whichever slot that is).
        others = row_mentions * self.off_diagonal  # (batch, row, slot)
        weights = others / others.sum(1, keepdim=True).clamp(min=1.0)
        heard = torch.einsum("bjs,bje->bse", weights, pooled_rows[..., : self.embed_dim])
        feedback = texts[_FEEDBACK]
        feedback_names = feedback[..., -_MENTIONS:-MAX_TEAMS].clamp(max=1.0)  # (batch, slot)
        told = feedback_names.unsqueeze(-1) * feedback[:, None, : self.embed_dim]
        slot_inputs = torch.cat([pooled_rows, strongest, heard, told, slot_floats, torch.log1p(mentions)], dim=-1)
        slots = self.slot_encoder(slot_inputs).reshape(batch, -1)
        slot_teams = pooled_rows[..., -MAX_TEAMS:].reshape(batch, -1)
        texts = self.text_encoder(torch.cat(texts, dim=-1))
        feedback_teams = self._counts(observations["feedback"].long())[..., MAX_SERVICES:]
        team_issued = issued[:, self.team_commands]
        hypotheses = observations["hypotheses"].long().reshape(batch, MAX_HYPOTHESES, HYPOTHESIS_LENGTH)
        hypotheses = self._pool(hypotheses)[..., : self.embed_dim].reshape(batch, -1)
        # Each slot's latest finding, as the mean and the maximum of its embeddings (for CatalogHead's fixes),
        # and what the other slots' findings say about it: the sum of the findings that name it, a pointer
        # such as "db-primary: connections normal, but SLOT_3 clients time out waiting on their pool".
        finding_ids = observations["findings"].long().reshape(batch, MAX_SERVICES, FINDING_LENGTH)
        findings = torch.cat(self._mean_and_max(finding_ids), dim=-1)  # (batch, slot, 2 embed_dim)
        names = self._counts(finding_ids)[..., :MAX_SERVICES].clamp(max=1.0)  # (batch, finding's slot, named slot)
        names = names * self.off_diagonal
        pointed = torch.einsum("bjs,bje->bse", names, findings)
        return torch.cat(
            [slots, slot_teams, texts, feedback_teams, team_issued, hypotheses, global_floats,
             findings.reshape(batch, -1), pointed.reshape(batch, -1), issued],
            dim=-1,
        )


class CatalogHead(nn.Module):
    """Action logits in :data:`~incidentiq.wrappers.CATALOG` order, computed the same way for every slot and team.

    A shared network scores each slot's investigations from that slot's
    encoding and a context of the whole incident, so what it learns in one
    slot position carries to every other. Fixes on a slot are scored by a
    second shared network from that slot's latest finding (what
    investigating or fixing it returned) and the context, and not from the
    slot's own alerts: a service whose alerts always look alike (the hard
    task's payment-service) gets the fix its finding calls for even when
    training only ever showed that finding at another service. Investigations
    get a second, additive score the same way, from what the other slots'
    findings say about the slot ("db-primary: connections normal, but SLOT_3
    clients time out waiting on their pool" asks for slot 3's database
    whichever service slot 3 is). Sending a command again adds a learned
    bias per kind of command (verb, aspect, fix), the same on every slot and
    team, so an unfamiliar incident does not make a repeat look new. Each roster team's
    assignment is scored from how strongly the slots the policy attends to
    (and the latest feedback) name it, and its availability; escalate and
    resolve are scored from the context, and "resolve concluding hypothesis k"
    from hypothesis k's embedding and the context.

    With ``evidence_conclusions``, "resolve concluding hypothesis k" is
    scored instead from hypothesis k's words beside the latest finding of
    each slot that has one, one slot at a time, keeping the strongest match,
    plus one score from the context shared by every hypothesis (whether to
    resolve now). Which hypothesis it names then depends on what the
    findings say ("connection pool exhausted", "Applied throttle ... the
    fault is cleared"), not on which services the incident lists, so the
    same evidence at a root training never showed names the same
    hypothesis. Slots without a finding take no part: scored alike, an
    empty slot lets a hypothesis's score beside no evidence at all win the
    match, and the policy names the same hypothesis whatever it found. On
    an incident that lists hypotheses the plain ``resolve`` is ruled out,
    so every resolve names one and a policy cannot learn to stop concluding
    (a wrong conclusion costs nothing that a plain resolve does not); there,
    before the first finding, no resolve is possible.
    """

    def __init__(self, extractor: TokenFeaturesExtractor, hidden: int = 128, evidence_conclusions: bool = False):
        super().__init__()
        self.evidence_conclusions = evidence_conclusions
        self.slot_dim, self.text_dim, self.n_global = extractor.slot_dim, extractor.text_dim, extractor.n_global
        self.embed_dim = extractor.embed_dim
        self.context = nn.Sequential(nn.Linear(2 * self.slot_dim + self.text_dim + self.n_global, hidden), nn.ReLU())
        self.slot_net = nn.Sequential(nn.Linear(self.slot_dim + hidden, hidden), nn.ReLU())
        self.slot_logits = nn.Linear(hidden, 1 + len(Aspect))
        # Fixes on slot i: from slot i's latest finding and the context, not from its own alerts.
        self.fix_net = nn.Sequential(nn.Linear(2 * self.embed_dim + hidden, hidden // 2), nn.ReLU(),
                                     nn.Linear(hidden // 2, len(Fix)))
        # Investigations of slot i, again: from what other slots' findings say about it, not from its alerts.
        self.pointer_net = nn.Sequential(nn.Linear(2 * self.embed_dim + hidden, hidden // 2), nn.ReLU(),
                                         nn.Linear(hidden // 2, 1 + len(Aspect)))
        self.attention = nn.Linear(hidden, 1)
        self.team_net = nn.Sequential(nn.Linear(4 + hidden, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, 1))
        self.other_logits = nn.Linear(hidden, 2)
        # Hypothesis k's embedding beside the context, or beside one slot's latest finding (mean and maximum).
        beside = 2 * self.embed_dim if evidence_conclusions else hidden
        self.conclusion_net = nn.Sequential(nn.Linear(self.embed_dim + beside, hidden // 2), nn.ReLU(),
                                            nn.Linear(hidden // 2, 1))
        if evidence_conclusions:
            self.conclusion_gate = nn.Linear(hidden, 1)  # from the context: concluding at all, the same for every k
        # What sending a command again is worth, learned once per kind of command (verb, aspect, fix) for
        # every slot, team and incident: an unfamiliar incident does not make a repeat look new. It starts
        # at -3 (a repeat is e^3, about 20 times, less likely than a new command with the same score): a
        # prior that repeats rarely pay, which training can unlearn; masks still allow every repeat.
        kinds = [(c.verb.value, c.aspect, c.fix, c.hypothesis is not None) for c in CATALOG]
        index = {kind: k for k, kind in enumerate(dict.fromkeys(kinds))}
        self.register_buffer("kind_of", torch.tensor([index[kind] for kind in kinds]))
        self.repeat_bias = nn.Parameter(torch.full((len(index),), -3.0))
        team_offset = MAX_SERVICES * MAX_SERVICES + MAX_TEAMS  # global floats: dependencies, then "available"
        self.available = slice(team_offset - MAX_TEAMS, team_offset)

    @staticmethod
    def _per_slot(context: torch.Tensor) -> torch.Tensor:
        """(batch, hidden) -> (batch, slots, hidden): the same context beside every slot."""
        return context.unsqueeze(1).expand(-1, MAX_SERVICES, -1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, features) -> (batch, len(CATALOG)) logits."""
        batch = features.shape[0]
        n_slot, n_team = MAX_SERVICES * self.slot_dim, MAX_SERVICES * MAX_TEAMS
        slots = features[:, :n_slot].reshape(batch, MAX_SERVICES, self.slot_dim)
        slot_teams = features[:, n_slot : n_slot + n_team].reshape(batch, MAX_SERVICES, MAX_TEAMS)
        rest = features[:, n_slot + n_team :]
        texts = rest[:, : self.text_dim]
        feedback_teams = rest[:, self.text_dim : self.text_dim + MAX_TEAMS]
        team_issued = rest[:, self.text_dim + MAX_TEAMS : self.text_dim + 2 * MAX_TEAMS]
        at = self.text_dim + 2 * MAX_TEAMS
        hypotheses = rest[:, at : at + MAX_HYPOTHESES * self.embed_dim].reshape(batch, MAX_HYPOTHESES, -1)
        at += MAX_HYPOTHESES * self.embed_dim
        global_floats = rest[:, at : at + self.n_global]
        at += self.n_global
        per_finding = MAX_SERVICES * 2 * self.embed_dim
        findings = rest[:, at : at + per_finding].reshape(batch, MAX_SERVICES, 2 * self.embed_dim)
        pointed = rest[:, at + per_finding : at + 2 * per_finding].reshape(batch, MAX_SERVICES, 2 * self.embed_dim)
        issued = rest[:, at + 2 * per_finding :]
        context = self.context(torch.cat([slots.mean(1), slots.amax(1), texts, global_floats], dim=-1))
        # One expanded context per network, not one shared: the order in which autograd sums the context's
        # gradient is part of a run, and this is the order benchmarks/results was trained with.
        per_slot = self.slot_net(torch.cat([slots, self._per_slot(context)], dim=-1))
        slot_logits = self.slot_logits(per_slot) + self.pointer_net(torch.cat([pointed, self._per_slot(context)], -1))
        fix_logits = self.fix_net(torch.cat([findings, self._per_slot(context)], dim=-1))
        weights = torch.softmax(self.attention(per_slot), dim=1)  # (batch, slot, 1)
        named = (weights * slot_teams).sum(1)  # (batch, team)
        team_inputs = torch.stack([named, feedback_teams, global_floats[:, self.available], team_issued], dim=-1)
        team_logits = self.team_net(
            torch.cat([team_inputs, context.unsqueeze(1).expand(-1, MAX_TEAMS, -1)], dim=-1)
        ).squeeze(-1)
        return torch.cat(
            [
                slot_logits.reshape(batch, -1),  # investigate slot i, aspect a: i * looks + a
                team_logits,
                fix_logits.transpose(1, 2).reshape(batch, -1),  # fix f on slot i: f * slots + i
                self._escalate_and_resolve(context, hypotheses),
                self._conclusions(hypotheses, findings, context),  # resolve concluding hypothesis k
            ],
            dim=-1,
        ) + self.repeat_bias[self.kind_of] * issued

    def _escalate_and_resolve(self, context: torch.Tensor, hypotheses: torch.Tensor) -> torch.Tensor:
        """(batch, 2) logits of escalate and the plain resolve."""
        logits = self.other_logits(context)
        if not self.evidence_conclusions:
            return logits
        # An incident that lists hypotheses is resolved by naming one of them. A hypothesis row embeds to
        # zero exactly when it is empty (padding embeds to zero), so this reads "the incident lists any".
        listed = hypotheses.ne(0).any(-1).any(-1, keepdim=True)  # (batch, 1)
        return torch.cat([logits[:, :1], logits[:, 1:].masked_fill(listed, RULED_OUT)], dim=-1)

    def _conclusions(self, hypotheses: torch.Tensor, findings: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """(batch, hypotheses) logits of "resolve concluding hypothesis k"."""
        if not self.evidence_conclusions:
            inputs = torch.cat([hypotheses, context.unsqueeze(1).expand(-1, MAX_HYPOTHESES, -1)], dim=-1)
            return self.conclusion_net(inputs).squeeze(-1)
        # Every (hypothesis, slot) pair: hypothesis k's words against slot i's latest finding.
        batch = hypotheses.shape[0]
        pairs = torch.cat(
            [
                hypotheses.unsqueeze(2).expand(-1, -1, MAX_SERVICES, -1),
                findings.unsqueeze(1).expand(batch, MAX_HYPOTHESES, -1, -1),
            ],
            dim=-1,
        )
        scores = self.conclusion_net(pairs).squeeze(-1)  # (batch, hypothesis, slot)
        # Only slots with a finding count: an empty one would let a hypothesis's score without evidence win.
        found = findings.ne(0).any(-1)  # (batch, slot): a finding embeds to zero exactly when it is empty
        return scores.masked_fill(~found.unsqueeze(1), RULED_OUT).amax(-1) + self.conclusion_gate(context)


class CatalogPolicy(MaskableMultiInputActorCriticPolicy):
    """MaskablePPO's multi-input policy with :class:`CatalogHead` as its action network.

    Use it with ``net_arch={"pi": [], ...}`` so the head reads the extractor's features directly.
    ``evidence_conclusions`` picks how the head scores conclusions (see :class:`CatalogHead`).
    """

    def __init__(self, *args, evidence_conclusions: bool = False, **kwargs):
        self.evidence_conclusions = evidence_conclusions  # read by _build, which the base class calls
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "evidence_conclusions": self.evidence_conclusions}

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = CatalogHead(self.features_extractor, evidence_conclusions=self.evidence_conclusions)
        # The head's last layers start small, as SB3 does for its action net.
        head = self.action_net
        last_layers = (head.slot_logits, head.fix_net[-1], head.pointer_net[-1], head.other_logits,
                       head.team_net[-1], head.conclusion_net[-1])
        if self.evidence_conclusions:
            last_layers += (head.conclusion_gate,)
        for layer in last_layers:
            nn.init.orthogonal_(layer.weight, gain=0.01)
            nn.init.zeros_(layer.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


def schedule_problem(
    learning_rate: float,
    final_learning_rate: float,
    ent_coef: float,
    final_ent_coef: float | None,
    name: Callable[[str], str] = str,
) -> str | None:
    """What is wrong with these :class:`PPOSettings` rates and bonuses, or ``None`` if nothing is.

    Every value must be finite, and rates and bonuses may only decay, from a
    positive learning rate and a non-negative bonus. ``name`` spells a field in
    the message: command lines pass one that turns ``ent_coef`` into
    ``--ent-coef``, so a bad flag is reported by the flag's name.

    >>> schedule_problem(1e-3, 0.0, 0.03, 0.05)
    'final_ent_coef must lie in [0, 0.03] (the ent_coef), got 0.05'
    >>> schedule_problem(float("inf"), 0.0, 0.03, None)
    'learning_rate must be a finite number, got inf'
    """
    values = {"learning_rate": learning_rate, "final_learning_rate": final_learning_rate, "ent_coef": ent_coef,
              "final_ent_coef": final_ent_coef}
    for field, value in values.items():
        if value is not None and not math.isfinite(value):
            return f"{name(field)} must be a finite number, got {value}"
    if not learning_rate > 0.0:
        return f"{name('learning_rate')} must be positive, got {learning_rate}"
    if not 0.0 <= final_learning_rate <= learning_rate:
        return (f"{name('final_learning_rate')} must lie in [0, {learning_rate}] (the {name('learning_rate')}), "
                f"got {final_learning_rate}")
    if not ent_coef >= 0.0:
        return f"{name('ent_coef')} must not be negative, got {ent_coef}"
    if final_ent_coef is not None and not 0.0 <= final_ent_coef <= ent_coef:
        return f"{name('final_ent_coef')} must lie in [0, {ent_coef}] (the {name('ent_coef')}), got {final_ent_coef}"
    return None


def update_problem(batch_size: int, n_epochs: int, rollout: int, name: Callable[[str], str] = str) -> str | None:
    """What is wrong with these :class:`PPOSettings` update sizes, or ``None`` if nothing is.

    A minibatch holds from 2 env steps (SB3's minimum) to one whole rollout
    of ``rollout`` steps (``n_steps * n_envs``), and each rollout is passed
    over at least once. ``name`` spells a field as in :func:`schedule_problem`.

    >>> update_problem(4096, 8, rollout=2048)
    'batch_size must lie in [2, 2048] (one rollout), got 4096'
    """
    if not 2 <= batch_size <= rollout:
        return f"{name('batch_size')} must lie in [2, {rollout}] (one rollout), got {batch_size}"
    if n_epochs < 1:
        return f"{name('n_epochs')} must be positive, got {n_epochs}"
    return None


def discount_problem(gamma: float, name: Callable[[str], str] = str) -> str | None:
    """What is wrong with this :class:`PPOSettings` discount, or ``None`` if nothing is: it lies in (0, 1].

    >>> discount_problem(1.5, option_name)
    '--gamma must lie in (0, 1], got 1.5'
    """
    if not 0.0 < gamma <= 1.0:
        return f"{name('gamma')} must lie in (0, 1], got {gamma}"
    return None


def ppo_problem(
    learning_rate: float,
    final_learning_rate: float,
    ent_coef: float,
    final_ent_coef: float | None,
    batch_size: int,
    n_epochs: int,
    n_steps: int,
    gamma: float,
    n_envs: int,
    name: Callable[[str], str] = str,
) -> str | None:
    """What is wrong with these :class:`PPOSettings` values, or ``None``: the first of :func:`schedule_problem`,
    :func:`update_problem` (for a rollout of ``n_steps * n_envs``) and :func:`discount_problem`.

    >>> ppo_problem(1e-3, 0.0, 0.03, None, batch_size=256, n_epochs=8, n_steps=16, gamma=0.95, n_envs=8,
    ...             name=option_name)
    '--batch-size must lie in [2, 128] (one rollout), got 256'
    """
    return (schedule_problem(learning_rate, final_learning_rate, ent_coef, final_ent_coef, name)
            or update_problem(batch_size, n_epochs, n_steps * n_envs, name)
            or discount_problem(gamma, name))


def option_name(field: str) -> str:
    """The command-line option that sets a settings field: ``final_ent_coef`` is ``--final-ent-coef``."""
    return "--" + field.replace("_", "-")


@dataclass(frozen=True)
class PPOSettings:
    """MaskablePPO defaults for IncidentIQ.

    An entropy bonus of 0.03 matters most: with 0.01 the policy stopped
    trying ``resolve`` after its first premature resolves (-0.40) and did
    not find it again once the fault was fixed; decayed to zero over a run
    (``final_ent_coef=0.0``), hard runs stopped asking late a question that
    held-out incidents need (``benchmarks/results/README.md``). The learning
    rate decays linearly to zero over the run (``anneal_lr``): the hard task's held-out
    grade otherwise swings by 0.1 between evaluations late in training.
    ``benchmarks/bench_training.py`` reports what these settings reach per task.
    """

    n_envs: int = 8
    """How many envs fill a rollout (``n_steps * n_envs`` steps), which bounds ``batch_size``. :func:`train`
    sets it to ``TrainSettings.n_envs``, and refuses settings that give the two different values."""
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 8
    learning_rate: float = 1e-3
    anneal_lr: bool = True
    final_learning_rate: float = 0.0
    """The rate ``anneal_lr`` reaches at the end of the run; at ``learning_rate / 2`` the first 300,000 steps
    of a run follow the first half of a 600,000-step run's schedule."""
    gamma: float = 0.95
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.03
    final_ent_coef: float | None = None
    """The entropy coefficient at the end of the run, reached linearly from ``ent_coef`` over it (``None``: the
    coefficient stays ``ent_coef``). The bonus matters most early, before the policy has learned to resolve."""
    embed_dim: int = 32
    slot_dim: int = 64
    hidden: int = 256
    evidence_conclusions: bool = False
    """Score the hard task's conclusions from the findings rather than the context, and resolve an incident that
    lists hypotheses only by concluding one (see :class:`CatalogHead`)."""

    def __post_init__(self):
        problem = ppo_problem(self.learning_rate, self.final_learning_rate, self.ent_coef, self.final_ent_coef,
                              self.batch_size, self.n_epochs, self.n_steps, self.gamma, self.n_envs)
        if problem is not None:
            raise ValueError(problem)

    def callbacks(self) -> list[BaseCallback]:
        """The callbacks these settings need during ``learn`` (the entropy schedule, if the coefficient decays)."""
        if self.final_ent_coef is None or self.final_ent_coef == self.ent_coef:
            return []
        return [EntropySchedule(self.ent_coef, self.final_ent_coef)]

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``MaskablePPO``."""
        return {
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "n_epochs": self.n_epochs,
            "learning_rate": (LinearSchedule(self.learning_rate, self.final_learning_rate, 1.0) if self.anneal_lr
                              else self.learning_rate),
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "clip_range": self.clip_range,
            "ent_coef": self.ent_coef,
            "policy_kwargs": {
                "features_extractor_class": TokenFeaturesExtractor,
                "features_extractor_kwargs": {"embed_dim": self.embed_dim, "slot_dim": self.slot_dim},
                "net_arch": {"pi": [], "vf": [self.hidden, self.hidden]},
                "evidence_conclusions": self.evidence_conclusions,
            },
        }


def make_training_env(env_id: str, n_envs: int = 8, seed: int = 0, subprocess: bool = False, split: str = "train",
                      mix: Sequence[tuple[str, int]] = ()):
    """A vector env of ``env_id`` wrapped for SB3 (``make_vec_env`` with :func:`wrap_for_rl`).

    ``mix`` hands some of the ``n_envs`` to other ids: with
    ``(("IncidentIQ/SingleServiceOutage-v0", 2),)`` the last two envs play
    easy incidents and the others ``env_id``'s. Each env is made, seeded and
    wrapped as ``make_vec_env`` does it.
    """
    ids = mixed_env_ids(env_id, n_envs, mix)
    vec_env_cls = SubprocVecEnv if subprocess else DummyVecEnv
    kwargs = {"split": split, "render_mode": None}  # make_vec_env would ask for "rgb_array"
    if not mix:
        return make_vec_env(f"incidentiq:{env_id}", n_envs=n_envs, seed=seed, env_kwargs=kwargs,
                            wrapper_class=wrap_for_rl, vec_env_cls=vec_env_cls)

    def make(rank: int) -> Callable[[], gym.Env]:
        def build() -> gym.Env:
            env = gym.make(f"incidentiq:{ids[rank]}", **kwargs)
            env.action_space.seed(seed + rank)
            return wrap_for_rl(Monitor(env))

        return build

    vec_env = vec_env_cls([make(rank) for rank in range(n_envs)])
    vec_env.seed(seed)  # each env's first reset takes seed + rank
    return vec_env


def mixed_env_ids(env_id: str, n_envs: int, mix: Sequence[tuple[str, int]] = ()) -> list[str]:
    """The id each of ``n_envs`` training envs plays: ``env_id``, then each of ``mix``'s ids as many times as it says.

    >>> ids = mixed_env_ids("IncidentIQ/CascadingFailure-v0", 3, [("IncidentIQ/SingleServiceOutage-v0", 1)])
    >>> [env_id.removeprefix("IncidentIQ/") for env_id in ids]
    ['CascadingFailure-v0', 'CascadingFailure-v0', 'SingleServiceOutage-v0']
    """
    for other, count in mix:
        if other not in ENV_IDS:
            raise ValueError(f"unknown env id {other!r} in the mix; choose one of {', '.join(ENV_IDS)}")
        if count < 1:
            raise ValueError(f"each id of the mix needs at least one env, got {count} for {other}")
    mixed = [other for other, count in mix for _ in range(count)]
    if len(mixed) >= n_envs:
        raise ValueError(f"the mix takes {len(mixed)} of {n_envs} envs; leave at least one for {env_id}")
    return [env_id] * (n_envs - len(mixed)) + mixed


# ---- playing a trained policy ----------------------------------------------------------------


class PPOAgent:
    """A trained MaskablePPO policy that plays the text env like any other agent.

    It keeps its own :class:`~incidentiq.wrappers.ObservationTokenizer` and
    record of the commands it sent (as ``make_rl_env``'s wrappers do) and turns
    the chosen catalog command into text for the current incident.
    """

    name = "ppo"

    def __init__(self, model: MaskablePPO, deterministic: bool = True):
        self.model = model
        self.deterministic = deterministic
        self.tokenizer = ObservationTokenizer()
        self._first: dict | None = None
        _check_layout(model, self.tokenizer)

    @classmethod
    def load(cls, path: str | Path, deterministic: bool = True) -> PPOAgent:
        """Load a policy saved by :func:`train` (``model.zip``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trained model at {path}")
        try:
            model = MaskablePPO.load(path, device="cpu")
        except RuntimeError as error:
            reason = str(error).splitlines()[0]
            if "Error(s) in loading state_dict" in reason:  # weights whose names or shapes this network lacks
                raise ValueError(
                    f"{path} holds the weights of another version of incidentiq's policy network; train it again "
                    f"({reason})"
                ) from None
            raise ValueError(f"{path} is not a readable model archive ({reason})") from None
        return cls(model, deterministic)

    def reset(self, obs: dict, info: dict) -> None:
        """Start the tokenizer's memory of a new episode."""
        self._first = self.tokenizer.reset(obs)
        self._issued = np.zeros(len(CATALOG), dtype=np.int8)  # as CommandHistory keeps it

    def act(self, obs: dict, info: dict) -> str:
        """The policy's command for ``obs``."""
        if self._first is not None:
            tokens, self._first = self._first, None
        else:
            tokens = self.tokenizer.observe(obs)
        names = obs["affected_services"], obs["team_roster"]["teams"], obs["hypotheses"]
        mask = catalog_mask(*map(len, names)).copy()  # torch wants a writable array
        tokens["issued"] = self._issued.copy()
        action, _ = self.model.predict(tokens, deterministic=self.deterministic, action_masks=mask)
        self._issued[int(action)] = 1
        return render_command(CATALOG[int(action)], *names)


def _check_layout(model: MaskablePPO, tokenizer: ObservationTokenizer) -> None:
    """Raise ``ValueError`` unless ``model`` reads the observations and acts in the catalog this version makes."""
    expected = {name: space.shape for name, space in tokenizer.observation_space.spaces.items()}
    expected["issued"] = (len(CATALOG),)
    found = {name: space.shape for name, space in model.observation_space.spaces.items()}
    problems = [f"no {name!r} observation" for name in sorted(expected.keys() - found.keys())]
    problems += [f"an unknown {name!r} observation" for name in sorted(found.keys() - expected.keys())]
    problems += [
        f"{name!r} of shape {found[name]} instead of {shape}"
        for name, shape in expected.items()
        if name in found and found[name] != shape
    ]
    if getattr(model.action_space, "n", None) != len(CATALOG):
        problems.append(f"an action space {model.action_space} instead of Discrete({len(CATALOG)})")
    if problems:
        raise ValueError(
            "this policy was trained on another observation or action layout than this version of incidentiq "
            f"produces ({'; '.join(problems)}); retrain it with `incidentiq train`"
        )


def mean_grade(agent_factory: Callable[[gym.Env], Any], env_id: str, seeds: Sequence[int],
               split: str = "test") -> float:
    """Mean grade of an agent over one episode per seed of ``env_id``'s ``split``."""
    env = gym.make(env_id, split=split)
    agent = agent_factory(env)
    grades = [run_episode(env, agent, seed=seed)["grade"] for seed in seeds]
    env.close()
    return float(np.mean(grades))


def reference_grades(env_id: str, seeds: Sequence[int], split: str = "test") -> dict[str, float]:
    """Mean grades of the random and heuristic agents on the same incidents (the curve's reference lines)."""
    return {
        name: mean_grade(lambda env, name=name: make_agent(name, env=env, seed=0), env_id, seeds, split)
        for name in ("random", "heuristic")
    }


# ---- training -----------------------------------------------------------------------------


@dataclass
class CurvePoint:
    """One evaluation during training."""

    steps: int
    seconds: float
    grade: float


class EntropySchedule(BaseCallback):
    """Moves the entropy coefficient linearly from ``start`` to ``end`` over the run, as ``anneal_lr`` moves the rate.

    SB3 takes one fixed ``ent_coef``; this sets the model's before each update, from the share of the run still
    to come when the update starts (the share SB3's learning-rate schedule reads).
    """

    def __init__(self, start: float, end: float):
        super().__init__()
        self.start, self.end = start, end

    def _on_training_start(self) -> None:
        self.total = self.locals["total_timesteps"]  # learn()'s own, counted from the model's first step
        self.model.ent_coef = self.start

    def _on_rollout_end(self) -> None:
        remaining = 1.0 - self.model.num_timesteps / self.total
        # Not SB3's LinearSchedule, which the learning rate uses: it computes start + (end - start) * done, which
        # ends a rounding error off ``end`` (0.010000000000000002 for 0.03 to 0.01); this form ends on it exactly.
        self.model.ent_coef = self.end + (self.start - self.end) * max(remaining, 0.0)

    def _on_step(self) -> bool:
        return True


class GradeCurve(BaseCallback):
    """Every ``every`` env steps, the deterministic policy's mean grade on held-out incidents.

    The time spent evaluating is left out of ``seconds``, which counts training time only.
    """

    def __init__(self, env_id: str, seeds: Sequence[int], every: int,
                 on_point: Callable[[CurvePoint], None] | None = None, stop_at: float | None = None):
        super().__init__()
        self.env_id, self.seeds, self.every = env_id, list(seeds), every
        self.on_point, self.stop_at = on_point, stop_at
        self.points: list[CurvePoint] = []
        self._next = every
        self._evaluating = 0.0

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._evaluating = 0.0
        self.evaluate()

    def evaluate(self) -> CurvePoint:
        """Evaluate now and record a point (``on_point``'s time, too, is left out of training time)."""
        started = time.perf_counter()
        grade = mean_grade(lambda env: PPOAgent(self.model), self.env_id, self.seeds)
        point = CurvePoint(self.num_timesteps, started - self._start - self._evaluating, grade)
        self.points.append(point)
        if self.on_point is not None:
            self.on_point(point)
        self._evaluating += time.perf_counter() - started
        return point

    def _on_step(self) -> bool:
        if self.num_timesteps < self._next:
            return True
        self._next += self.every
        point = self.evaluate()
        return self.stop_at is None or point.grade < self.stop_at

    def first_reaching(self, grade: float) -> CurvePoint | None:
        """The first point at or above ``grade`` (None if none)."""
        return next((point for point in self.points if point.grade >= grade), None)


@dataclass(frozen=True)
class TrainSettings:
    """One training run: what to train on, for how long, and where to write it.

    ``mix`` lets some of the ``n_envs`` training envs play other ids'
    incidents (see :func:`make_training_env`); every one of their steps
    counts toward ``timesteps``, and the curve and final grade stay on
    ``env_id``'s held-out incidents. ``split`` is the split the training
    envs draw from: ``"all"`` lets them draw the held-out (family, root)
    pairs too, which measures how much of a test grade is lost to
    generalization rather than to the budget (the grades stay on the test split).
    """

    env_id: str = "IncidentIQ/CascadingFailure-v0"
    timesteps: int = 200_000
    seed: int = 0
    n_envs: int = 8
    subprocess: bool = False
    eval_every: int = 10_000
    eval_episodes: int = 100
    final_episodes: int = 200
    out: Path = Path("runs/cascading_failure")
    stop_at: float | None = None
    mix: tuple[tuple[str, int], ...] = ()
    split: str = "train"
    ppo: PPOSettings = PPOSettings()


def train(settings: TrainSettings, progress: bool = True, log: Callable[[str], None] | None = None) -> dict:
    """Train MaskablePPO, write ``model.zip``, ``metrics.json`` and ``learning_curve.png`` under ``settings.out``.

    The first policy whose curve point reaches :data:`TARGET_GRADE` is also
    saved, as ``model_at_target.zip``, and graded on ``final_episodes`` seeds
    the curve never played, ``eval_episodes`` on (``grade_at_target`` in
    the metrics): the grade of a policy trained for ``steps_to_target`` steps
    and ``seconds_to_target`` seconds, free of the luck that picked it.

    The budget is rounded down to whole rollouts (``n_steps * n_envs``), so
    training never takes more than ``timesteps`` env steps (but at least one
    rollout). The curve evaluates on test-split seeds ``0 .. eval_episodes - 1`` (incidents
    whose (family, root) pairs training never sees); the final grade uses
    ``final_episodes`` seeds, per task for AnyIncident. The metrics also
    record torch's version, threads and vector kernels (``torch``): the same
    seed repeats a run only when they match. Returns the metrics.
    """
    if settings.env_id not in ENV_IDS:
        raise ValueError(f"unknown env id {settings.env_id!r}; choose one of {', '.join(ENV_IDS)}")
    if settings.timesteps < 1:
        raise ValueError(f"timesteps must be positive, got {settings.timesteps}")
    mixed_env_ids(settings.env_id, settings.n_envs, settings.mix)  # a bad mix fails before anything is written
    if settings.ppo.n_envs not in (settings.n_envs, PPOSettings.n_envs):
        # PPOSettings' default is always replaced; another value there and here is a contradiction to point out.
        raise ValueError(f"PPOSettings.n_envs is {settings.ppo.n_envs} but TrainSettings.n_envs is {settings.n_envs}; "
                         "the run uses TrainSettings.n_envs, so give both the same value")
    if settings.split not in TRAINING_SPLITS:
        raise ValueError(f"training draws from split 'train' or 'all', got {settings.split!r}")
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    ppo = dataclasses.replace(settings.ppo, n_envs=settings.n_envs)
    env = make_training_env(settings.env_id, ppo.n_envs, settings.seed, settings.subprocess, settings.split,
                            settings.mix)
    model = MaskablePPO(CatalogPolicy, env, seed=settings.seed, device="cpu", verbose=0, **ppo.model_kwargs())
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty folder in /tmp per run
    say = log or (lambda text: None)
    # The first policy whose curve point reaches the target is kept, to be graded on seeds the curve never played.
    at_target = out / "model_at_target.zip"
    at_target.unlink(missing_ok=True)

    def on_point(point: CurvePoint) -> None:
        say(f"steps={point.steps} train_seconds={point.seconds:.0f} test_grade={point.grade:.3f}")
        if point.grade >= TARGET_GRADE and not at_target.exists():
            model.save(at_target)

    curve = GradeCurve(settings.env_id, range(settings.eval_episodes), settings.eval_every, on_point=on_point,
                       stop_at=settings.stop_at)
    # SB3 finishes the rollout it is in: round the budget down to whole rollouts so it is never exceeded.
    rollout = ppo.n_steps * ppo.n_envs
    budget = max(rollout, settings.timesteps // rollout * rollout)
    started = time.perf_counter()
    model.learn(budget, callback=[curve, *ppo.callbacks()], progress_bar=progress)
    wall = time.perf_counter() - started
    env.close()
    if curve.points[-1].steps != model.num_timesteps:
        curve.evaluate()
    model.save(out / "model.zip")
    final_ids = [i for i in ENV_IDS if ENV_IDS[i][0] is not None] if ENV_IDS[settings.env_id][0] is None else [
        settings.env_id]
    final_seeds = range(settings.final_episodes)
    final = {env_id: mean_grade(lambda env: PPOAgent(model), env_id, final_seeds) for env_id in final_ids}
    references = {env_id: reference_grades(env_id, final_seeds) for env_id in final_ids}
    reached = curve.first_reaching(TARGET_GRADE)
    # The curve picked that policy for its grade on the curve's seeds: graded there again, it would keep the luck
    # that picked it. Seeds the curve never played tell what it learned.
    target_seeds = range(settings.eval_episodes, settings.eval_episodes + settings.final_episodes)
    grade_at_target = None
    if reached is not None:
        first = PPOAgent.load(at_target).model
        grade_at_target = {env_id: mean_grade(lambda env: PPOAgent(first), env_id, target_seeds)
                           for env_id in final_ids}
    metrics = {
        "env_id": settings.env_id,
        "timesteps": int(model.num_timesteps),
        "train_seconds": curve.points[-1].seconds,
        "wall_seconds": wall,
        "target_grade": TARGET_GRADE,
        "steps_to_target": reached.steps if reached else None,
        "seconds_to_target": reached.seconds if reached else None,
        "grade_at_target": grade_at_target,
        "target_seeds": [target_seeds.start, target_seeds.stop],
        "final_test_grade": final,
        "final_episodes": settings.final_episodes,
        "reference_test_grade": references,
        "curve": [dataclasses.asdict(point) for point in curve.points],
        "curve_episodes": settings.eval_episodes,
        "settings": {**dataclasses.asdict(settings), "out": str(settings.out)},
        "torch": torch_setup(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_learning_curve({settings.env_id: metrics}, out / "learning_curve.png")
    return metrics


def torch_setup() -> dict[str, Any]:
    """What of torch decides whether a seed repeats a run: its version, threads and vector kernels.

    The kernels (``cpu_capability``: AVX2, AVX512, ...) follow the CPU, and
    each set rounds float sums its own way; ``ATEN_CPU_CAPABILITY=avx2`` pins
    the AVX2 ones on a machine that has AVX-512.
    """
    return {"version": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def plot_learning_curve(runs: dict[str, dict], path: str | Path) -> None:
    """Mean test grade against env steps, one panel per run, random and heuristic as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    steps_in_thousands = FuncFormatter(lambda x, _: f"{x / 1000:.0f}k" if x else "0")
    fig, axes = plt.subplots(1, len(runs), figsize=(4.6 * len(runs), 3.4), squeeze=False, sharey=True)
    for ax, (env_id, metrics) in zip(axes[0], runs.items()):
        steps = [p["steps"] for p in metrics["curve"]]
        ax.plot(steps, [p["grade"] for p in metrics["curve"]], color="C0", label="MaskablePPO")
        references = metrics["reference_test_grade"]
        for name, color in (("heuristic", "C2"), ("random", "C3")):
            value = float(np.mean([grades[name] for grades in references.values()]))
            ax.axhline(value, color=color, linestyle="--", linewidth=1, label=f"{name} ({value:.2f})")
        ax.axhline(metrics["target_grade"], color="0.6", linestyle=":", linewidth=1)
        title = env_id.removeprefix("IncidentIQ/")
        settings = metrics.get("settings", {})
        notes = []
        if settings.get("mix"):
            mixed = ", ".join(f"{count} {other.removeprefix('IncidentIQ/').removesuffix('-v0')}"
                              for other, count in settings["mix"])
            notes.append(f"of {settings['n_envs']} envs: {mixed}")
        if settings.get("split", "train") != "train":  # trained on the held-out pairs too
            notes.append(f"trained on split '{settings['split']}'")
        if settings.get("ppo", {}).get("evidence_conclusions"):
            notes.append("conclusions from the findings")
        if notes:
            title += "\n" + "\n".join(notes)
        ax.set_title(title, fontsize=9)
        ax.xaxis.set_major_formatter(steps_in_thousands)
        ax.set_xlabel("env steps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel(f"mean test grade ({next(iter(runs.values()))['curve_episodes']} incidents)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = [
    "RULED_OUT",
    "TARGET_GRADE",
    "TRAINING_SPLITS",
    "CatalogHead",
    "CatalogPolicy",
    "CurvePoint",
    "GradeCurve",
    "PPOAgent",
    "PPOSettings",
    "TokenFeaturesExtractor",
    "TrainSettings",
    "discount_problem",
    "make_training_env",
    "mean_grade",
    "mixed_env_ids",
    "option_name",
    "plot_learning_curve",
    "ppo_problem",
    "reference_grades",
    "schedule_problem",
    "torch_setup",
    "train",
    "update_problem",
]
