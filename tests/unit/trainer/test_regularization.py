"""L2/L1 enter the cost as λ/(2m)·Σ‖W‖² and λ/(2m)·Σ|w|, on weights only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trainer.model import MLP, init_weights
from trainer.regularization import weight_penalty


def _batch(m: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(m, 5, generator=g), torch.randint(0, 3, (m,), generator=g)


def _model(batch_norm: bool = False) -> MLP:
    model = MLP(5, [7, 6], 3, batch_norm=batch_norm)
    init_weights(model, "he", torch.Generator().manual_seed(0))
    return model


def _grads(model: MLP, *, l2: float = 0.0, l1: float = 0.0, m: int = 8) -> dict[str, torch.Tensor]:
    x, y = _batch(m)
    model.zero_grad()
    cost = F.cross_entropy(model(x), y)
    penalty = weight_penalty(model.penalized_weights(), l2=l2, l1=l1, m=m)
    if penalty is not None:
        cost = cost + penalty
    cost.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_l2_gradient_is_backprop_plus_lambda_over_m_times_w() -> None:
    model = _model()
    plain = _grads(model)
    regularized = _grads(model, l2=0.7, m=8)
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            assert torch.allclose(regularized[name], plain[name] + 0.7 / 8 * p.detach(), atol=1e-7)
        else:
            assert torch.equal(regularized[name], plain[name]), f"{name} was penalized"


def test_l2_penalty_value_is_lambda_over_2m_times_the_squared_frobenius_norms() -> None:
    w1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    w2 = torch.tensor([[0.5, -0.5]])
    penalty = weight_penalty([w1, w2], l2=2.0, l1=0.0, m=4)
    assert penalty is not None
    assert penalty.item() == pytest.approx(2.0 / 8 * (1 + 4 + 9 + 16 + 0.25 + 0.25))


def test_l1_gradient_is_backprop_plus_lambda_over_2m_times_the_sign_of_w() -> None:
    model = _model()
    plain = _grads(model)
    regularized = _grads(model, l1=0.4, m=8)
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            expected = plain[name] + 0.4 / 16 * torch.sign(p.detach())
            assert torch.allclose(regularized[name], expected, atol=1e-7)
        else:
            assert torch.equal(regularized[name], plain[name])


def test_batch_norm_gamma_and_beta_are_not_penalized() -> None:
    model = _model(batch_norm=True)
    penalized = {id(w) for w in model.penalized_weights()}
    for name, p in model.named_parameters():
        assert (id(p) in penalized) == (name.endswith("weight") and p.dim() == 2), name
    plain = _grads(model)
    regularized = _grads(model, l2=3.0, l1=1.0)
    for name in plain:
        if "gamma" in name or "shift" in name or "bias" in name:
            assert torch.equal(regularized[name], plain[name]), name


def test_no_penalty_is_computed_when_both_lambdas_are_zero() -> None:
    assert weight_penalty([torch.ones(2, 2)], l2=0.0, l1=0.0, m=4) is None


def test_mini_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        weight_penalty([torch.ones(2, 2)], l2=1.0, l1=0.0, m=0)
