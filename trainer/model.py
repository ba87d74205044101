"""The network: a multilayer perceptron built from a config, and its initialization.

Each hidden layer l computes z[l] = W[l]·a[l−1] + b[l], then optionally batch norm
z̃[l] = BN(z[l]), then a[l] = g(z̃[l]), then optionally inverted dropout. With batch norm
the bias b[l] is left out: BN subtracts the batch mean, so b[l] would cancel and its job
is done by BN's β. The output layer is linear (logits for softmax cross-entropy, or one
value for regression).

Initialization draws W[l] ~ N(0, 1)·scale, as the lecture's ``np.random.randn(shape) *
np.sqrt(...)``, and sets b[l] = 0:

- ``he``:     scale = √(2 / n[l−1])  (ReLU family)
- ``xavier``: scale = √(1 / n[l−1])  (tanh)
- ``glorot``: scale = √(2 / (n[l−1] + n[l]))
- ``default``: PyTorch's ``nn.Linear`` default, W and b ~ U(−1/√n[l−1], 1/√n[l−1]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from trainer.config import Activation, Init
from trainer.data import Standardizer
from trainer.layers import BatchNorm, InvertedDropout


def _activation(name: Activation) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if name == "gelu":
        return nn.GELU()
    return nn.Tanh()


class MLP(nn.Module):
    """x → [Linear → (BatchNorm) → g → (InvertedDropout)] × hidden layers → Linear."""

    def __init__(
        self,
        n_inputs: int,
        widths: Sequence[int],
        n_outputs: int,
        *,
        activation: Activation = "relu",
        batch_norm: bool = False,
        keep_probs: Sequence[float] | None = None,
        dropout_generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        keep = list(keep_probs) if keep_probs is not None else [1.0] * len(widths)
        if len(keep) != len(widths):
            raise ValueError(f"{len(keep)} keep probabilities for {len(widths)} hidden layers")
        layers: list[nn.Module] = []
        n_prev = n_inputs
        for width, keep_prob in zip(widths, keep, strict=True):
            layers.append(nn.Linear(n_prev, width, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm(width))
            layers.append(_activation(activation))
            if keep_prob < 1:
                layers.append(InvertedDropout(keep_prob, dropout_generator))
            n_prev = width
        layers.append(nn.Linear(n_prev, n_outputs))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.layers(x)
        return out

    def linear_layers(self) -> list[nn.Linear]:
        return [m for m in self.layers if isinstance(m, nn.Linear)]

    def penalized_weights(self) -> list[Tensor]:
        """The weight matrices W[l] that L2/L1 penalize: no biases, no BN γ or β."""
        return [layer.weight for layer in self.linear_layers()]


def init_weights(model: MLP, scheme: Init, generator: torch.Generator | None = None) -> None:
    """Draw every linear layer's W and b by ``scheme`` (see the module docstring)."""
    with torch.no_grad():
        for layer in model.linear_layers():
            n_in, n_out = layer.in_features, layer.out_features
            if scheme == "default":
                bound = 1 / math.sqrt(n_in)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
                continue
            if scheme == "he":
                scale = math.sqrt(2 / n_in)
            elif scheme == "xavier":
                scale = math.sqrt(1 / n_in)
            else:
                scale = math.sqrt(2 / (n_in + n_out))
            layer.weight.normal_(0.0, scale, generator=generator)
            if layer.bias is not None:
                layer.bias.zero_()


@dataclass
class FittedModel:
    """A trained network with what it needs to predict on raw inputs.

    The input μ and σ come from the training split only and are reused for every other
    input; a regression target was standardized the same way and is scaled back.
    """

    network: MLP
    task: Literal["classification", "regression"]
    input_scaler: Standardizer | None
    target_scaler: Standardizer | None
    classes: list[object]
    device: torch.device

    def predict(self, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
        """Class labels (classification) or target values (regression) for raw rows ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if self.input_scaler is not None:
            x = self.input_scaler.transform(x)
        inputs = torch.as_tensor(x, dtype=torch.float32, device=self.device)
        self.network.eval()
        with torch.inference_mode():
            outputs = torch.cat([self.network(chunk) for chunk in torch.split(inputs, batch_size)]).float()
        if self.task == "classification":
            indices = outputs.argmax(dim=1).cpu().numpy()
            labels: np.ndarray = np.asarray(self.classes)[indices]
            return labels
        values = outputs[:, 0].cpu().numpy().astype(np.float64)
        if self.target_scaler is not None:
            values = self.target_scaler.inverse_transform(values)
        return values
