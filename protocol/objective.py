"""What a worker runs for a trial: the objective part of a study spec, as it travels."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# "python" (a user's entrypoint) or a built-in trainer's name ("mlp"; the service checks
# names against trainer.registry, so a new trainer needs no change here).
Trainer = str
Direction = Literal["minimize", "maximize"]
MAX_EPOCHS_DEFAULT = 30


class Objective(BaseModel):
    """What a trial trains and which reported metric the study optimises.

    ``trainer="mlp"`` runs hone's built-in trainer with ``fixed`` and the trial's
    parameters as its knobs; ``trainer="python"`` calls the user's ``entrypoint``
    (``"package.module:function"``). The service's study spec adds the checks that need
    the trainer (knob names, defaults by task); a grant carries the checked result.
    """

    # Unknown fields are ignored, so a newer service can add one without stopping
    # older workers.
    model_config = ConfigDict(allow_inf_nan=False)

    trainer: Trainer = "mlp"
    entrypoint: str | None = Field(default=None, description="package.module:function (python trainer)")
    dataset: str | None = Field(default=None, min_length=1, max_length=4096)
    metric: str = Field(min_length=1, max_length=128)
    direction: Direction
    max_epochs: int = Field(
        default=MAX_EPOCHS_DEFAULT, ge=1, le=100_000, description="Epochs (pruning steps) per trial"
    )
    fixed: dict[str, Any] = Field(default_factory=dict, description="Knob values shared by every trial")
    timeout_s: float | None = Field(
        default=None, gt=0, le=30 * 24 * 3600, description="Per-trial wall-clock limit"
    )

    def config_values(self, params: dict[str, Any]) -> dict[str, Any]:
        """The built-in trainer's knob values for one trial: ``fixed``, then the trial's
        ``params``, then the objective's own ``dataset`` and ``max_epochs``."""
        values = {**self.fixed, **params, "max_epochs": self.max_epochs}
        if self.dataset is not None:
            values["dataset"] = self.dataset
        return values
