"""The built-in trainers by name: what ``objective.trainer`` may say besides ``"python"``.

The service validates studies against these and the worker runs them; importing this
module imports no torch (see :mod:`trainer.interface`).
"""

from __future__ import annotations

from typing import Any

from trainer.interface import Trainer
from trainer.mlp import MlpTrainer

TRAINERS: dict[str, Trainer[Any]] = {trainer.name: trainer for trainer in (MlpTrainer(),)}
