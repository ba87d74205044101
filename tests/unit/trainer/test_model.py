"""The network's shape and the lecture's initializations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainer.layers import BatchNorm, InvertedDropout
from trainer.model import MLP, init_weights

N_IN, N_OUT = 400, 1000


def _initialized(scheme: str) -> nn.Linear:
    model = MLP(N_IN, [N_OUT], 2)
    init_weights(model, scheme, torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    return model.linear_layers()[0]


@pytest.mark.parametrize(
    ("scheme", "variance"),
    [("he", 2 / N_IN), ("xavier", 1 / N_IN), ("glorot", 2 / (N_IN + N_OUT))],
)
def test_initial_weight_variance_matches_the_scheme(scheme: str, variance: float) -> None:
    layer = _initialized(scheme)
    assert layer.weight.var().item() == pytest.approx(variance, rel=0.02)
    assert layer.weight.mean().item() == pytest.approx(0.0, abs=0.01 * math.sqrt(variance))
    assert layer.bias is not None and torch.count_nonzero(layer.bias) == 0


def test_default_init_is_uniform_within_one_over_root_n() -> None:
    layer = _initialized("default")
    bound = 1 / math.sqrt(N_IN)
    assert layer.weight.abs().max().item() <= bound
    assert layer.weight.var().item() == pytest.approx(bound**2 / 3, rel=0.02)


def test_initialization_is_reproducible_for_a_generator_seed() -> None:
    assert torch.equal(_initialized("he").weight, _initialized("he").weight)


def test_hidden_layers_follow_linear_batch_norm_activation_dropout() -> None:
    model = MLP(8, [16, 12], 3, activation="tanh", batch_norm=True, keep_probs=[0.5, 1.0])
    kinds = [type(layer) for layer in model.layers]
    assert kinds == [nn.Linear, BatchNorm, nn.Tanh, InvertedDropout, nn.Linear, BatchNorm, nn.Tanh, nn.Linear]
    hidden = model.linear_layers()[:2]
    assert all(layer.bias is None for layer in hidden), "BN's β replaces the bias"
    assert model(torch.randn(5, 8)).shape == (5, 3)


def test_keep_probs_must_match_the_hidden_layers() -> None:
    with pytest.raises(ValueError, match="keep probabilities"):
        MLP(4, [8, 8], 2, keep_probs=[0.5])
