"""The lease protocol workers speak (``/api/v1/leases``): every request and answer body.

1. ``POST /leases`` (:class:`LeaseRequest`) → 201 with a :class:`LeaseGrant`, or 204
   (with ``Retry-After``) when no running study has work and room.
2. While training: ``POST /leases/{id}/report`` (:class:`ReportIn` → :class:`ReportOut`)
   per step, steps held back riding along in ``steps``, and ``POST /leases/{id}/heartbeat``
   (→ :class:`HeartbeatOut`) every ``heartbeat_interval`` seconds.
3. At the end, exactly one of ``complete`` (:class:`CompleteIn`), ``fail``
   (:class:`FailIn`) or ``prune``, each answered with :class:`FinishedOut`.

Non-finite values are refused by the service's routes, not here: a 422 echoing NaN back
as its input could not be written as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictInt, WithJsonSchema, field_validator

from protocol.objective import Objective
from protocol.studies import TrialState

MAX_STEPS_PER_CALL = 10_000

# Why a worker failed a trial. The service decides retries by it: a trial given back
# at shutdown is not the trial's fault and costs no retry.
# A trial given back at shutdown ends ``interrupted``, a cancelled one ``cancelled``:
# neither counts as a failure.
FailureCause = Literal["shutdown", "cancelled", "timeout", "out_of_memory", "diverged", "error"]

Metrics = Annotated[dict[str, float], Field(default_factory=dict, max_length=64)]


class LeaseRequest(BaseModel):
    """A worker asking for a trial."""

    worker: str = Field(min_length=1, max_length=256, description="Stable id of the worker slot")
    devices: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    studies: list[StrictInt] | None = Field(default=None, max_length=1000, description="Only these study ids")
    host: str | None = Field(default=None, max_length=256)


class LeaseOut(BaseModel):
    """The lease itself: its id, when it expires, how often to heartbeat it."""

    id: str
    expires_at: datetime
    heartbeat_interval: float = Field(description="Seconds between heartbeats the service expects")


class LeasedStudy(BaseModel):
    """The study a leased trial belongs to."""

    id: int
    name: str


class LeasedTrial(BaseModel):
    """The leased trial: its number, round and the configuration to run."""

    number: int
    params: dict[str, Any]
    round: int


class LeaseGrant(BaseModel):
    """A granted trial: run ``trial.params`` with ``objective`` and report under ``lease.id``."""

    lease: LeaseOut
    study: LeasedStudy
    trial: LeasedTrial
    # Inlined rather than a $ref: the study spec's own "Objective" (the body of POST
    # /studies) is a component of that name, and two would rename both.
    objective: Annotated[Objective, WithJsonSchema(Objective.model_json_schema())] = Field(
        description="The study spec's objective (trainer, metric, ...)"
    )


class HeldStep(BaseModel):
    """A step sent along with a later one (its per-step metrics stay with the worker: the
    pruner reads values only, and the largest valid batch stays far below the body limit)."""

    step: int = Field(ge=0, le=10_000_000)
    value: float


class StepIn(HeldStep):
    """A step with its metrics."""

    metrics: Metrics


Steps = Annotated[
    list[HeldStep],
    Field(
        default_factory=list,
        max_length=MAX_STEPS_PER_CALL,
        description="Steps the worker held back and sends along (it coalesces steps that come "
        "faster than a round trip is worth); recorded like single reports",
    ),
]


class ReportIn(StepIn):
    """A step's report, with the steps held back before it."""

    steps: Steps


class ReportOut(BaseModel):
    """The pruner's answer to a report."""

    prune: bool = Field(description="Stop the trial now and send /prune")


class HeartbeatOut(BaseModel):
    """The lease's new expiry, and whether the study was stopped."""

    expires_at: datetime
    cancel: bool = Field(
        description="The study was stopped or failed: abandon the trial and send /fail (cause cancelled)"
    )


class CompleteIn(BaseModel):
    """A finished trial's objective value and metrics, with the steps not sent yet."""

    value: float
    metrics: Metrics
    steps: Steps


class FailIn(BaseModel):
    """A failed trial: why (``reason``, one line for people; ``cause`` for the service's
    accounting; ``traceback``, the full text), whether to re-queue its configuration, and
    the steps not sent yet."""

    reason: str = Field(
        min_length=1,
        max_length=10_000,
        description="One line: the exception's type and message (e.g. \"KeyError: 'accuracy'\"), "
        "or what stopped the trial; a multi-line reason (older workers) is split by the service "
        "into its last line and the traceback",
    )
    cause: FailureCause | None = Field(
        default=None,
        description="What ended the trial: shutdown (given back, costs no retry), cancelled "
        "(study stopped), timeout, out_of_memory, diverged (the configuration's loss became NaN "
        "or infinite: the search's outcome, never a sign the study is broken), or error; absent: error (workers before this "
        "field gave a trial back with the reason 'worker shutting down', read as shutdown)",
    )
    traceback: str | None = Field(
        default=None, max_length=100_000, description="The full traceback, shown with the trial"
    )
    retry: bool = Field(default=False, description="Re-queue the configuration (within max_retries)")
    steps: Steps

    @field_validator("reason", "traceback")
    @classmethod
    def _storable(cls, text: str | None) -> str | None:
        # A traceback may quote binary data; PostgreSQL text cannot hold NUL, and the
        # failure must still be recorded.
        return None if text is None else text.replace("\x00", "\ufffd")


class FinishedOut(BaseModel):
    """A trial's final state after complete, fail or prune."""

    study_id: int
    number: int
    state: TrialState
    duplicate: bool = Field(description="This result had been received already")
