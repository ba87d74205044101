"""Loading, checking, splitting and normalizing datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from trainer.config import TrainConfig
from trainer.data import Standardizer, infer_task, prepare_data, split_indices
from trainer.errors import DataError


def test_validation_and_test_rows_are_normalized_with_the_training_mu_and_sigma() -> None:
    splits = prepare_data(TrainConfig(dataset="wine"))
    raw = load_wine().data
    # Recover which raw rows went where: the split is by index, so rebuild it.
    labels = np.unique(load_wine().target, return_inverse=True)[1]
    train, val, test = split_indices(labels, len(raw), val_fraction=0.2, test_fraction=0.2, seed=0)
    mu, sigma = raw[train].mean(axis=0), raw[train].std(axis=0)
    assert np.allclose(splits.x_train, (raw[train] - mu) / sigma, atol=1e-5)
    assert np.allclose(splits.x_val, (raw[val] - mu) / sigma, atol=1e-5)
    assert np.allclose(splits.x_test, (raw[test] - mu) / sigma, atol=1e-5)
    # Test rows are not normalized with their own statistics.
    assert not np.allclose(splits.x_test.mean(axis=0), 0.0, atol=1e-3)
    assert splits.input_scaler is not None
    assert np.allclose(splits.input_scaler.mean, mu)


def test_training_split_has_zero_mean_and_unit_variance() -> None:
    splits = prepare_data(TrainConfig(dataset="breast_cancer"))
    assert np.allclose(splits.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(splits.x_train.std(axis=0), 1.0, atol=1e-4)


def test_constant_features_are_centred_but_not_divided_by_zero() -> None:
    scaler = Standardizer.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert scaler.transform(np.array([[2.0, 5.0]])).tolist() == [[0.0, 0.0]]


def test_normalization_can_be_turned_off() -> None:
    splits = prepare_data(TrainConfig(dataset="iris", normalize_inputs=False))
    assert splits.input_scaler is None
    assert splits.x_train.max() > 5


def test_the_split_is_stratified_and_has_the_asked_sizes() -> None:
    splits = prepare_data(TrainConfig(dataset="digits", val_fraction=0.25, test_fraction=0.25))
    n = 1797
    assert len(splits.y_test) == pytest.approx(0.25 * n, abs=1)
    assert len(splits.y_val) == pytest.approx(0.25 * n, abs=1)
    for part in (splits.y_train, splits.y_val, splits.y_test):
        shares = np.bincount(part, minlength=10) / len(part)
        assert np.allclose(shares, 0.1, atol=0.01)


def test_the_split_depends_on_split_seed_only() -> None:
    a = prepare_data(TrainConfig(dataset="iris", seed=1))
    b = prepare_data(TrainConfig(dataset="iris", seed=2))
    c = prepare_data(TrainConfig(dataset="iris", split_seed=5))
    assert np.array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_diabetes_is_regression_with_a_standardized_target() -> None:
    splits = prepare_data(TrainConfig(dataset="diabetes"))
    assert splits.task == "regression"
    assert splits.n_outputs == 1
    assert splits.target_scaler is not None and splits.target_scaler.std > 50
    assert abs(float(splits.y_train.mean())) < 1e-5


def test_synthetic_data_has_the_asked_size_and_task() -> None:
    cls = prepare_data(
        TrainConfig(dataset="synthetic", synthetic_samples=500, synthetic_features=7, synthetic_classes=3)
    )
    assert cls.task == "classification" and cls.n_outputs == 3 and cls.n_features == 7
    assert len(cls.y_train) + len(cls.y_val) + len(cls.y_test) == 500
    reg = prepare_data(TrainConfig(dataset="synthetic", synthetic_samples=200, synthetic_classes=0))
    assert reg.task == "regression"


def test_synthetic_classes_need_enough_features() -> None:
    with pytest.raises(DataError, match="more features"):
        prepare_data(TrainConfig(dataset="synthetic", synthetic_features=2, synthetic_classes=5))


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (np.array([0, 1, 2, 1]), "classification"),
        (np.array(["a", "b", "a"], dtype=object), "classification"),
        (np.array([1.0, 2.0, 1.0]), "classification"),
        (np.array([0.5, 1.25, 3.0]), "regression"),
        (np.arange(200), "regression"),
    ],
)
def test_task_is_inferred_from_the_target(y: np.ndarray, task: str) -> None:
    assert infer_task(y) == task


def _csv(tmp_path: Path, frame: pd.DataFrame) -> str:
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return str(path)


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"a": rng.normal(size=n), "b": rng.normal(size=n), "label": ["yes", "no", "maybe"] * (n // 3)}
    )


def test_a_csv_with_a_string_target_is_classification(tmp_path: Path) -> None:
    splits = prepare_data(TrainConfig(dataset=_csv(tmp_path, _frame()), target="label"))
    assert splits.task == "classification"
    assert splits.classes == ["maybe", "no", "yes"]
    assert splits.feature_names == ["a", "b"]


def test_a_parquet_file_loads_like_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    _frame().to_parquet(path)
    assert prepare_data(TrainConfig(dataset=str(path), target="label")).n_features == 2


def test_an_npz_file_with_x_and_a_named_target_loads(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.normal(size=(50, 3)), price=rng.normal(size=50))
    splits = prepare_data(TrainConfig(dataset=str(path), target="price"))
    assert splits.task == "regression" and splits.n_features == 3


def test_an_npz_file_of_columns_loads(tmp_path: Path) -> None:
    path = tmp_path / "cols.npz"
    np.savez(path, a=np.arange(40.0), b=np.ones(40), y=np.arange(40) % 2)
    assert prepare_data(TrainConfig(dataset=str(path))).feature_names == ["a", "b"]


def test_a_forced_task_overrides_the_inferred_one(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(60.0), "y": np.arange(60) % 3})
    splits = prepare_data(TrainConfig(dataset=_csv(tmp_path, frame), target="y", task="regression"))
    assert splits.task == "regression"


@pytest.mark.parametrize(
    ("change", "target", "message"),
    [
        (lambda f: f, "price", "target column 'price' not found in data.csv; columns: a, b, label"),
        (lambda f: f.assign(city=["x", "y", "z"] * 20), "label", "feature column(s) 'city'"),
        (lambda f: f.assign(a=[np.nan] + [1.0] * 59), "label", "'a' contain NaN"),
        (lambda f: f.assign(label="yes"), "label", "only one class ('yes')"),
        (lambda f: f, None, "name the target column"),
    ],
)
def test_bad_data_is_a_clear_data_error(tmp_path: Path, change, target, message) -> None:  # type: ignore[no-untyped-def]
    path = _csv(tmp_path, change(_frame()))
    with pytest.raises(DataError) as caught:
        prepare_data(TrainConfig(dataset=path, target=target))
    assert message in str(caught.value)


def test_a_missing_regression_target_value_is_a_data_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(30.0), "y": [0.5] * 29 + [np.nan]})
    with pytest.raises(DataError, match="target 'y' has 1 missing"):
        prepare_data(TrainConfig(dataset=_csv(tmp_path, frame), target="y"))


def test_a_string_target_cannot_be_forced_to_regression(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not numeric"):
        prepare_data(TrainConfig(dataset=_csv(tmp_path, _frame()), target="label", task="regression"))


def test_a_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        prepare_data(TrainConfig(dataset=str(tmp_path / "absent.csv"), target="y"))


def test_too_few_rows_per_class_for_a_stratified_split_is_a_data_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": np.arange(12.0), "y": [0] * 11 + [1]})
    with pytest.raises(DataError, match="stratified"):
        prepare_data(TrainConfig(dataset=_csv(tmp_path, frame), target="y"))


def test_data_errors_are_value_errors() -> None:
    assert issubclass(DataError, ValueError)
