"""L2 and L1 penalties, added to the cost the way the lecture writes it.

    J = 1/m · Σ L(ŷ, y) + λ2/(2m) · Σ_l ‖W[l]‖²  + λ1/(2m) · Σ_l Σ |w|

``m`` is the size of the mini-batch the cost is computed on (the last, smaller batch of
an epoch uses its own size), so backprop gives dW = (from backprop) + λ2/m · W, the
lecture's "weight decay" (1 − αλ/m)·W under plain gradient descent. The L1 term keeps
the same 1/(2m) factor as the L2 term, so its gradient is λ1/(2m) · sign(w); some texts
write λ/m · Σ|w| instead, which is this with λ twice as large.

Only the weight matrices W[l] are penalized: biases, and batch norm's γ and β, are not
(the lecture's neural-network cost sums ‖W[l]‖² only). ``torch.optim``'s
``weight_decay`` differs: it adds λ·W (no 1/m) to the gradient of every parameter in the
group, biases included, and has no L1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def weight_penalty(weights: Sequence[Tensor], *, l2: float, l1: float, m: int) -> Tensor | None:
    """λ2/(2m)·Σ‖W‖² + λ1/(2m)·Σ|w| over ``weights``, or None when both λ are 0."""
    if m < 1:
        raise ValueError(f"the mini-batch size m must be at least 1, got {m}")
    terms: list[Tensor] = []
    if l2 > 0:
        terms.append(l2 / (2 * m) * torch.stack([w.square().sum() for w in weights]).sum())
    if l1 > 0:
        terms.append(l1 / (2 * m) * torch.stack([w.abs().sum() for w in weights]).sum())
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]
