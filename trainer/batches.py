"""Mini-batches of one epoch from tensors that already live on the training device.

One random permutation per epoch, one gather of the shuffled rows, then the mini-batches
are views into that copy: a handful of kernel launches per epoch, against one Python
``__getitem__`` per sample and a collate per batch for ``DataLoader(TensorDataset)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


def shuffled_batches(
    x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, y)`` mini-batches of ``batch_size`` rows (the last may be smaller), shuffled."""
    order = torch.randperm(x.shape[0], device=x.device, generator=generator)
    yield from zip(torch.split(x[order], batch_size), torch.split(y[order], batch_size), strict=True)
