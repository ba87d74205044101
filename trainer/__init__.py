"""hone's built-in objective: a PyTorch MLP with every technique of the lecture as a knob.

``trainer.config`` is torch-free (the service validates with it); the rest uses torch.
``train`` and ``TrainResult`` are re-exported lazily, so that importing the config
(which imports this package first) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.run import TrainResult, train

__all__ = ["TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from trainer import run

        return getattr(run, name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
