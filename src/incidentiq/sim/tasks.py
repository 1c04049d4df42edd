"""The three tasks and their settings."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TaskId(str, enum.Enum):
    """Task identifiers, as the original IncidentIQ server environment names them."""

    SINGLE_SERVICE_OUTAGE = "single_service_outage"
    CASCADING_FAILURE = "cascading_failure"
    AMBIGUOUS_PAYMENT_DEGRADATION = "ambiguous_payment_degradation"


class Split(str, enum.Enum):
    """Which (family, root service) combinations an episode may draw from."""

    TRAIN = "train"
    TEST = "test"
    ALL = "all"


@dataclass(frozen=True)
class TaskConfig:
    """Fixed settings of one task.

    ``max_steps`` and ``sla_minutes`` follow the specification's table;
    ``decoys`` is the default number of healthy services listed beside the
    ones involved.
    """

    task_id: TaskId
    difficulty: str
    max_steps: int
    sla_minutes: int
    decoys: int
    description: str


TASKS: dict[TaskId, TaskConfig] = {
    TaskId.SINGLE_SERVICE_OUTAGE: TaskConfig(
        TaskId.SINGLE_SERVICE_OUTAGE, "easy", 10, 30, 2,
        "One service is down and its logs already show why.",
    ),
    TaskId.CASCADING_FAILURE: TaskConfig(
        TaskId.CASCADING_FAILURE, "medium", 18, 15, 2,
        "A fault in one service cascades to its callers; alerts come from the callers.",
    ),
    TaskId.AMBIGUOUS_PAYMENT_DEGRADATION: TaskConfig(
        TaskId.AMBIGUOUS_PAYMENT_DEGRADATION, "hard", 25, 45, 1,
        "payment-service degrades; three hypotheses fit the first alerts.",
    ),
}

MAX_STEPS = max(config.max_steps for config in TASKS.values())
MAX_SLA_MINUTES = max(config.sla_minutes for config in TASKS.values())
