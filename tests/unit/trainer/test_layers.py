"""Inverted dropout and batch norm, training against test time."""

from __future__ import annotations

import pytest
import torch

from trainer.layers import BatchNorm, InvertedDropout


def test_dropout_zeroes_about_one_minus_keep_prob_and_scales_survivors() -> None:
    dropout = InvertedDropout(0.8, torch.Generator().manual_seed(0))
    a = torch.full((2000, 100), 0.5)
    out = dropout(a)
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert torch.allclose(out[kept], torch.tensor(0.5 / 0.8))


def test_dropout_keeps_the_expected_activation() -> None:
    dropout = InvertedDropout(0.6, torch.Generator().manual_seed(1))
    a = torch.rand(4000, 50, generator=torch.Generator().manual_seed(2)) + 0.5
    assert dropout(a).mean().item() == pytest.approx(a.mean().item(), rel=0.01)


def test_dropout_is_off_in_eval() -> None:
    dropout = InvertedDropout(0.5, torch.Generator().manual_seed(0))
    dropout.eval()
    a = torch.rand(10, 10)
    assert torch.equal(dropout(a), a)


def test_dropout_masks_follow_the_lecture_rand_below_keep_prob() -> None:
    a = torch.rand(6, 5)
    out = InvertedDropout(0.8, torch.Generator().manual_seed(3))(a)
    d = torch.rand(a.shape, generator=torch.Generator().manual_seed(3)) < 0.8
    assert torch.equal(out, a * d / 0.8)


def test_dropout_rejects_a_keep_prob_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="keep_prob"):
        InvertedDropout(0.0)


def _z(seed: int) -> torch.Tensor:
    return torch.randn(16, 4, generator=torch.Generator().manual_seed(seed)) * 3 + 2


def test_batch_norm_uses_the_mini_batch_statistics_in_training() -> None:
    bn = BatchNorm(4, eps=1e-5)
    with torch.no_grad():
        bn.gamma.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        bn.shift.copy_(torch.tensor([0.0, 1.0, -1.0, 3.0]))
    z = _z(0)
    mu = z.mean(dim=0)
    var = ((z - mu) ** 2).mean(dim=0)  # 1/m, not 1/(m − 1)
    expected = bn.gamma * (z - mu) / torch.sqrt(var + 1e-5) + bn.shift
    assert torch.allclose(bn(z), expected, atol=1e-5)


def test_batch_norm_uses_the_bias_corrected_running_averages_in_eval() -> None:
    bn = BatchNorm(4, eps=1e-5, beta=0.9)
    z1, z2 = _z(1), _z(2)
    bn(z1)
    bn(z2)
    mu = (0.9 * 0.1 * z1.mean(0) + 0.1 * z2.mean(0)) / (1 - 0.9**2)
    var = (0.9 * 0.1 * z1.var(0, unbiased=False) + 0.1 * z2.var(0, unbiased=False)) / (1 - 0.9**2)
    bn.eval()
    z = _z(3)
    assert torch.allclose(bn(z), (z - mu) / torch.sqrt(var + 1e-5), atol=1e-5)
    # ...and not the statistics of the batch it is given.
    assert not torch.allclose(bn(z).mean(0), torch.zeros(4), atol=1e-2)


def test_batch_norm_does_not_update_its_averages_in_eval() -> None:
    bn = BatchNorm(4)
    bn(_z(1))
    bn.eval()
    before = bn.running_mean.clone(), bn.running_var.clone()
    bn(_z(2))
    assert torch.equal(bn.running_mean, before[0])
    assert torch.equal(bn.running_var, before[1])
