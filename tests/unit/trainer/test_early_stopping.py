from __future__ import annotations

import math

from trainer.early_stopping import EarlyStopping


def test_stops_after_patience_epochs_without_improvement() -> None:
    stopper = EarlyStopping("min", patience=2)
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.85], start=1):
        stopper.update(epoch, loss)
    assert stopper.should_stop
    assert (stopper.best_epoch, stopper.best) == (2, 0.8)


def test_an_improvement_resets_the_count() -> None:
    stopper = EarlyStopping("min", patience=2)
    for epoch, loss in enumerate([1.0, 1.1, 0.9, 1.2], start=1):
        stopper.update(epoch, loss)
    assert not stopper.should_stop
    assert stopper.best_epoch == 3


def test_improvements_smaller_than_min_delta_do_not_count() -> None:
    stopper = EarlyStopping("min", patience=1, min_delta=0.05)
    stopper.update(1, 1.0)
    assert not stopper.update(2, 0.97)
    assert stopper.should_stop and stopper.best_epoch == 1


def test_accuracy_is_maximized() -> None:
    stopper = EarlyStopping("max", patience=3)
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6], start=1):
        stopper.update(epoch, accuracy)
    assert stopper.best_epoch == 2


def test_a_nan_is_never_the_best() -> None:
    stopper = EarlyStopping("min", patience=5)
    assert not stopper.update(1, math.nan)
    assert stopper.best_epoch is None
