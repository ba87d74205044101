"""The lecture's two layers that act differently in training and at test time.

``InvertedDropout`` is the lecture's code: ``d = rand < keep_prob; a *= d; a /= keep_prob``
in training, nothing at test time. ``torch.nn.Dropout`` computes the same thing (with
p = 1 − keep_prob); this one takes an explicit generator so a run is reproducible
without touching the global random state.

``BatchNorm`` normalizes z with the mini-batch's μ and σ² = 1/m·Σ(z − μ)² (biased), then
z̃ = γ·z_norm + β. At test time it uses exponentially weighted averages of the batch
statistics, μ = βμ + (1 − β)μ_batch with β = 0.9 and zero start, divided by 1 − β^t
(the lecture's bias correction). ``torch.nn.BatchNorm1d`` differs in three ways: its
running σ² averages the *unbiased* batch variance (m/(m − 1) larger), it starts the
running σ² at 1 instead of 0, and it applies no bias correction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class InvertedDropout(nn.Module):
    """Keep each unit with probability ``keep_prob`` and scale survivors by 1/keep_prob."""

    def __init__(self, keep_prob: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0 < keep_prob <= 1:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
        self.keep_prob = keep_prob
        self.generator = generator

    def forward(self, a: Tensor) -> Tensor:
        if not self.training or self.keep_prob == 1.0:
            return a
        d = torch.rand(a.shape, generator=self.generator, device=a.device) < self.keep_prob
        return a * d / self.keep_prob

    def extra_repr(self) -> str:
        return f"keep_prob={self.keep_prob}"


class BatchNorm(nn.Module):
    """Batch normalization of a layer's z with learnable γ, β (the lecture's form)."""

    running_mean: Tensor
    running_var: Tensor
    steps: Tensor

    def __init__(self, units: int, eps: float = 1e-5, beta: float = 0.9) -> None:
        super().__init__()
        self.eps = eps
        self.beta = beta
        self.gamma = nn.Parameter(torch.ones(units))
        self.shift = nn.Parameter(torch.zeros(units))  # the lecture's β of BN
        self.register_buffer("running_mean", torch.zeros(units))
        self.register_buffer("running_var", torch.zeros(units))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, z: Tensor) -> Tensor:
        if self.training:
            var, mean = torch.var_mean(z, dim=0, correction=0)
            with torch.no_grad():
                # EWMA: V = βV + (1 − β)θ, i.e. a lerp towards θ by 1 − β.
                self.running_mean.lerp_(mean.float(), 1 - self.beta)
                self.running_var.lerp_(var.float(), 1 - self.beta)
                self.steps += 1
        else:
            # Bias correction: the averages started at 0. Before any training step the
            # layer has no statistics at all; it then normalizes with μ = 0, σ² = 1.
            if int(self.steps) == 0:
                mean, var = self.running_mean, torch.ones_like(self.running_var)
            else:
                correction = 1 - self.beta ** self.steps.float()
                mean, var = self.running_mean / correction, self.running_var / correction
        z_norm = (z - mean) * torch.rsqrt(var + self.eps)
        return self.gamma * z_norm + self.shift

    def extra_repr(self) -> str:
        return f"{self.gamma.numel()}, eps={self.eps}, beta={self.beta}"
