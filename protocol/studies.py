"""Studies, rounds and trials as the REST API (``/api/v1/studies…``) shows them.

The body of ``POST /studies`` is the service's study spec itself; every other model a
client reads or sends about studies is declared here, so the OpenAPI schema at ``/docs``
and :mod:`hone.client` agree by construction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.objective import Direction

# ``interrupted``: given back by a worker that was shutting down, and re-queued;
# ``cancelled``: abandoned because its study was stopped or failed. Neither is a failure.
TrialState = Literal["running", "complete", "pruned", "failed", "interrupted", "cancelled"]
# ``failed``: the study's failure policy found it hopeless, or a round ended without a
# completed trial; ``StudySummary.failure`` says why.
StudyStatus = Literal["running", "paused", "stopped", "completed", "failed"]


class TrialCounts(BaseModel):
    """Trials by state (a retried configuration is one row per attempt)."""

    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    interrupted: int = 0
    cancelled: int = 0
    total: int = 0
    configurations: int | None = Field(
        default=None,
        description="First attempts, what round budgets count (in /rounds; null in study totals)",
    )


class TrialOut(BaseModel):
    """One trial as listed in pages: its configuration, outcome and lease."""

    model_config = ConfigDict(from_attributes=True)

    number: int = Field(description="Optuna's trial number (the same in optuna-dashboard)")
    round: int
    config_number: int = Field(description="Number of the configuration's first attempt")
    attempt: int = Field(description="0 for a first attempt, k for its k-th retry")
    state: TrialState
    params: dict[str, Any]
    value: float | None
    last_step: int | None
    reason: str | None = Field(
        description="Why the trial was pruned, failed, interrupted or cancelled, in one line "
        "(for a failure: the exception's type and message, or the timeout, out of memory, ...)"
    )
    cause: str | None = Field(
        default=None,
        description="What ended a failed, interrupted or cancelled trial, as a code: error, "
        "timeout, out_of_memory, lease_expired, shutdown or cancelled",
    )
    worker_id: str | None
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    updated_at: datetime


class TrialDetail(TrialOut):
    """A trial with its per-step values (read from Optuna for this one trial)."""

    trial_id: int = Field(description="Optuna's global trial_id")
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    intermediate_values: dict[int, float]
    traceback: str | None = Field(
        default=None, description="The full traceback of a failed trial, as the worker sent it"
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="What a completed trial's result reported (test metrics, epochs, ...)",
    )


class TrialPage(BaseModel):
    """One page of trials; pass ``next_cursor`` as ``cursor`` for the next (null at the end)."""

    items: list[TrialOut]
    next_cursor: str | None


class EnqueueRequest(BaseModel):
    """A configuration to try next. Parameters left out are drawn by the sampler."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(min_length=1)


class EnqueuedTrial(BaseModel):
    """A configuration waiting in Optuna's queue; a worker's next lease takes it first."""

    number: int
    round: int
    params: dict[str, Any]
    state: Literal["waiting"] = "waiting"


class FailureGroup(BaseModel):
    """Failed trials that share one cause (their one-line ``reason``)."""

    reason: str
    count: int


class StudySummary(BaseModel):
    """A study at a glance: lifecycle, counts by state, best trial, current round."""

    id: int = Field(description="Equals the Optuna study_id (the id in optuna-dashboard)")
    name: str
    status: StudyStatus
    direction: Direction
    metric: str
    current_round: int
    rounds: int = Field(description="Rounds the spec plans")
    budget: int = Field(description="Configurations over all rounds")
    max_concurrent: int | None
    counts: TrialCounts
    best: TrialOut | None
    failure: str | None = Field(default=None, description="Why the study failed (status failed)")
    created_at: datetime
    updated_at: datetime


class StudyDetail(StudySummary):
    """A study's summary plus its spec (with defaults filled in, e.g. the sampler seed)."""

    spec: dict[str, Any]
    failures: list[FailureGroup] = Field(
        default_factory=list, description="Failed trials grouped by cause, most frequent first"
    )


class RoundOut(BaseModel):
    """A round of the coarse-to-fine search: its box, budget, counts and best."""

    number: int
    status: Literal["open", "closed"]
    budget: int = Field(description="Configurations in this round")
    box: dict[str, Any]
    opened_at: datetime
    closed_at: datetime | None
    best_value: float | None
    best_trial_number: int | None
    counts: TrialCounts


class RoundPreview(BaseModel):
    """The round that would open next, and the box it would sample in."""

    number: int
    budget: int | None = Field(description="The spec's budget for it; null past the spec's last round")
    box: dict[str, Any]


class OpenRoundRequest(BaseModel):
    """Open the next round now, optionally with an explicit box (else the narrowing rule's)
    and budget (else the spec's; required past the spec's last round)."""

    model_config = ConfigDict(extra="forbid")

    box: dict[str, Any] | None = None
    trials: int | None = Field(default=None, ge=1, le=100_000)


ImportanceEvaluator = Literal["ped_anova", "fanova", "mean_decrease_impurity"]


class ImportanceOut(BaseModel):
    """Parameter importances over completed trials (of the whole study, or of one round),
    computed by ``evaluator``: Optuna's PED-ANOVA by default, fANOVA or mean decrease in
    impurity on request."""

    importances: dict[str, float]
    completed_trials: int
    trials_used: int
    sampled: bool = Field(description="True when only a sample of the completed trials was used")
    note: str | None = None
    evaluator: ImportanceEvaluator = Field(
        default="ped_anova", description="The algorithm that computed them"
    )
    round: int | None = Field(
        default=None, description="The round whose trials were evaluated (in its box); null: the whole study"
    )


class TrialPoint(BaseModel):
    """A completed trial as a point to draw: its number, value and parameters."""

    number: int
    value: float
    params: dict[str, Any]


class RoundPoints(BaseModel):
    """A round's completed trials, down-sampled to at most ``per_round`` points: its best
    trials first, then an even spread over the rest by trial number."""

    round: int
    complete: int = Field(description="Completed trials in the round")
    sampled: bool = Field(description="True when fewer points than completed trials are listed")
    points: list[TrialPoint]


class BestStep(BaseModel):
    """A completed trial that improved on every trial completed before it (by finish time)."""

    number: int
    value: float
    finished_at: datetime


class StudyPoints(BaseModel):
    """What a page draws of a study of any size: per round a bounded sample of its points,
    and the steps of the best value so far over time."""

    direction: Direction
    per_round: int
    rounds: list[RoundPoints]
    best_so_far: list[BestStep]
