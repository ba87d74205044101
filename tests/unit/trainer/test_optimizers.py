"""One (or two) steps of each optimizer against the lecture's formulas by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.optimizers import SGD, Adam, Momentum, RMSprop, make_optimizer

W0 = [1.0, -2.0, 0.5]
DW1 = [0.3, -0.1, 0.002]
DW2 = [0.1, 0.4, -0.003]


def _param() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(W0, dtype=torch.float64))


def _step(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter, grad: list[float]) -> None:
    param.grad = torch.tensor(grad, dtype=torch.float64)
    optimizer.step()


def test_sgd_step_is_w_minus_alpha_dw() -> None:
    w = _param()
    _step(SGD([w], lr=0.1), w, DW1)
    expected = [w0 - 0.1 * g for w0, g in zip(W0, DW1, strict=True)]
    assert w.tolist() == pytest.approx(expected, abs=1e-15)


def test_momentum_starts_from_zero_and_weights_the_gradient_by_one_minus_beta() -> None:
    w = _param()
    opt = Momentum([w], lr=0.1, beta=0.9)
    _step(opt, w, DW1)
    v1 = [0.1 * g for g in DW1]  # V = 0.9·0 + 0.1·dW, not dW as torch.optim.SGD's first step
    w1 = [w0 - 0.1 * v for w0, v in zip(W0, v1, strict=True)]
    assert w.tolist() == pytest.approx(w1, abs=1e-15)
    _step(opt, w, DW2)
    v2 = [0.9 * v + 0.1 * g for v, g in zip(v1, DW2, strict=True)]
    assert w.tolist() == pytest.approx([a - 0.1 * v for a, v in zip(w1, v2, strict=True)], abs=1e-15)


def test_momentum_differs_from_torch_sgd_with_dampening_on_the_first_step() -> None:
    ours, theirs = _param(), _param()
    _step(Momentum([ours], lr=0.1, beta=0.9), ours, DW1)
    _step(torch.optim.SGD([theirs], lr=0.1, momentum=0.9, dampening=0.9), theirs, DW1)
    assert not torch.allclose(ours, theirs)


def test_rmsprop_divides_by_the_root_of_s_plus_eps() -> None:
    w = _param()
    _step(RMSprop([w], lr=0.01, beta=0.9, eps=1e-4), w, DW1)
    s = [0.1 * g * g for g in DW1]
    expected = [w0 - 0.01 * g / math.sqrt(s_ + 1e-4) for w0, g, s_ in zip(W0, DW1, s, strict=True)]
    assert w.tolist() == pytest.approx(expected, abs=1e-15)


def test_adam_bias_corrects_both_averages_and_keeps_eps_inside_the_root() -> None:
    b1, b2, eps, lr = 0.9, 0.999, 1e-4, 0.01
    w = _param()
    opt = Adam([w], lr=lr, beta1=b1, beta2=b2, eps=eps)
    expected = list(W0)
    v = [0.0] * 3
    s = [0.0] * 3
    for t, grad in enumerate((DW1, DW2), start=1):
        _step(opt, w, grad)
        v = [b1 * v_ + (1 - b1) * g for v_, g in zip(v, grad, strict=True)]
        s = [b2 * s_ + (1 - b2) * g * g for s_, g in zip(s, grad, strict=True)]
        v_hat = [v_ / (1 - b1**t) for v_ in v]
        s_hat = [s_ / (1 - b2**t) for s_ in s]
        expected = [
            w_ - lr * vh / math.sqrt(sh + eps) for w_, vh, sh in zip(expected, v_hat, s_hat, strict=True)
        ]
        assert w.tolist() == pytest.approx(expected, abs=1e-14)


def test_adam_differs_from_torch_adam_where_eps_matters() -> None:
    ours, theirs = _param(), _param()
    _step(Adam([ours], lr=0.01, eps=1e-4), ours, DW1)
    _step(torch.optim.Adam([theirs], lr=0.01, eps=1e-4), theirs, DW1)
    # The third gradient (0.002) is small next to √ε = 0.01: the two placements disagree there.
    assert abs(ours[2].item() - theirs[2].item()) > 1e-4
    assert ours[0].item() == pytest.approx(theirs[0].item(), abs=1e-4)


def test_parameters_without_a_gradient_are_left_alone() -> None:
    w, frozen = _param(), _param()
    opt = Adam([w, frozen], lr=0.1)
    _step(opt, w, DW1)
    assert frozen.tolist() == W0
    assert frozen not in opt.state


def test_make_optimizer_maps_each_config_name_to_its_class() -> None:
    w = _param()
    kinds = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSprop, "adam": Adam}
    for name, kind in kinds.items():
        assert type(make_optimizer(name, [w], lr=0.1)) is kind
