"""A user objective (``trainer: python``) for the page's browser tests: a smooth bowl whose
minimum sits inside the search space, so every round narrows around it and each round's box
lies inside the previous one."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def bowl(params: dict[str, Any], report: Callable[..., bool]) -> dict[str, float]:
    """Least at lr = 1e-2, momentum = 0.99, width = 32 (each on its own scale). Its
    ``train_loss`` is half the value, so the diagnosis reads high variance (a variance of
    half the validation error, over the quarter it allows a loss)."""
    loss = (
        (math.log10(params["lr"]) + 2.0) ** 2
        + (math.log10(1.0 - params["momentum"]) + 2.0) ** 2
        + (math.log2(params["width"]) - 5.0) ** 2 / 4
        + (0.0 if params["optimizer"] == "adam" else 0.3)
    )
    report(1, loss + 1.0)
    return {"value": loss, "train_loss": loss / 2}
