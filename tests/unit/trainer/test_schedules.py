from __future__ import annotations

import math

import pytest

from trainer.schedules import learning_rate


def test_inverse_time_decay_reproduces_the_lecture_table() -> None:
    rates = [learning_rate("inverse_time", 0.2, 1.0, epoch) for epoch in (1, 2, 3, 4)]
    assert rates == pytest.approx([0.1, 0.2 / 3, 0.05, 0.04])
    assert [round(r, 4) for r in rates] == [0.1, 0.0667, 0.05, 0.04]


def test_zero_decay_keeps_the_rate_constant_under_every_schedule() -> None:
    for schedule in ("inverse_time", "exponential", "step", "none"):
        assert learning_rate(schedule, 0.01, 0.0, 7) == 0.01


def test_exponential_decay_is_e_to_the_minus_decay_times_epoch() -> None:
    assert learning_rate("exponential", 0.1, 0.5, 3) == pytest.approx(0.1 * math.exp(-1.5))
    # The lecture's 0.95^epoch · α0 is decay = −ln 0.95.
    assert learning_rate("exponential", 0.1, -math.log(0.95), 4) == pytest.approx(0.1 * 0.95**4)


def test_step_decay_divides_by_one_plus_decay_every_step_size_epochs() -> None:
    rates = [learning_rate("step", 0.8, 1.0, epoch, step_size=2) for epoch in range(1, 7)]
    assert rates == pytest.approx([0.8, 0.8, 0.4, 0.4, 0.2, 0.2])


def test_none_ignores_the_decay_rate() -> None:
    assert learning_rate("none", 0.3, 5.0, 10) == 0.3


def test_epochs_are_counted_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        learning_rate("inverse_time", 0.2, 1.0, 0)
