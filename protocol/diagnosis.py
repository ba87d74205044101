"""``GET /studies/{id}/diagnosis``: the lecture's basic recipe read off a study's best trials.

Error is the quantity the recipe reasons about: ``1 − value`` for a maximized metric
(a score on [0, 1]: accuracy, F1, AUC, R²), the value itself for a minimized one (a loss,
RMSE). The avoidable bias is training error − target error, the variance is validation
error − training error; each is *high* above its threshold.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Verdict = Literal["high_bias", "high_variance", "both", "fine"]
MoveDirection = Literal["up", "down"]


class DiagnosedTrial(BaseModel):
    """One of the best completed trials, read as the recipe reads it."""

    number: int
    round: int
    value: float = Field(description="The study metric's value")
    training_error: float
    validation_error: float
    avoidable_bias: float = Field(description="training_error − target_error")
    variance: float = Field(description="validation_error − training_error")
    verdict: Verdict


class Thresholds(BaseModel):
    """Where "high" starts, in the error's units, and how the numbers were chosen."""

    bias: float = Field(description="avoidable bias above this is high bias")
    variance: float = Field(description="variance above this is high variance")
    basis: str = Field(description="How the thresholds were set (absolute, relative, or the request's)")


class BoxMove(BaseModel):
    """One parameter the recipe moves: which way, from which range to which, and what stopped it."""

    param: str
    direction: MoveDirection
    incumbent: Any = Field(description="The best diagnosed trial's value, where the move starts")
    before: dict[str, Any] = Field(description="The current round's range")
    after: dict[str, Any] = Field(description="The proposed range")
    stopped: str | None = Field(
        default=None, description="Why the move went no further (the spec's bound), if one stopped it"
    )


class Proposal(BaseModel):
    """The next round's box the recipe proposes: the narrowed box with the recipe's moves
    applied (``POST /studies/{id}/rounds`` with ``"box": "diagnosis"`` opens it)."""

    box: dict[str, Any]
    moves: list[BoxMove]
    max_epochs: int | None = Field(
        default=None,
        description="Epochs each trial of the next round trains when the recipe says train longer "
        "(high bias): twice the current round's, at most objective.max_epochs_limit; null: unchanged",
    )
    notes: list[str] = Field(
        description="What the recipe would change but cannot (not searched, not a knob), and "
        "where a bound stopped it"
    )


class DiagnosisOut(BaseModel):
    """The basic recipe's diagnosis of a study (or of one round) from its best trials.

    The study's figures are medians over the best trials that report a training metric
    (``trials``), so one lucky trial does not decide the verdict.
    """

    study_id: int
    round: int | None = Field(description="The round diagnosed; null: the whole study")
    metric: str
    training_metric: str = Field(description="The training counterpart of the metric the trials reported")
    error: str = Field(description="How error is read from the metric, e.g. '1 − val_accuracy'")
    target_error: float
    target_source: Literal["objective.target_error", "default"] = Field(
        description="objective.target_error, or the default 0 (a perfect model)"
    )
    training_error: float
    validation_error: float
    avoidable_bias: float
    variance: float
    verdict: Verdict
    bias_judged: bool = Field(
        description="False for a minimized metric without objective.target_error: a loss has no "
        "scale of its own, so only the variance is judged"
    )
    thresholds: Thresholds
    why: str = Field(description="The verdict in words, with the numbers")
    advice: list[str] = Field(description="The recipe's next steps for this verdict")
    trials: list[DiagnosedTrial] = Field(description="The best trials read, best first")
    trials_without_training_metric: int = Field(
        description="Best trials skipped because their result has no training metric"
    )
    proposal: Proposal | None = Field(
        description="The recipe as the next round's box (built-in trainers); null for a python objective"
    )
    proposal_note: str | None = None
