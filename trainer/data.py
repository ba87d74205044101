"""Datasets: bundled, generated or the user's own file, split and normalized.

``prepare_data(config)`` loads the rows, infers the task, checks the data (a problem is a
``DataError`` with a message for the user, never a traceback), makes a stratified
train/validation/test split with ``split_seed`` and normalizes the inputs with the
training split's μ and σ only:

    μ = 1/m · Σ x(i),  σ² = 1/m · Σ (x(i) − μ)²,  x := (x − μ) / σ

for the training, validation and test rows alike (a feature with σ = 0 is only centred).
A regression target is standardized the same way for training; metrics report it in its
own units.

Task inference: a non-numeric or boolean target, or one whose values are integers with
at most ``MAX_INFERRED_CLASSES`` distinct values, is classification; anything else is
regression. ``task`` in the config overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from trainer.config import BUNDLED_DATASETS, DATA_FILE_SUFFIXES, TrainConfig
from trainer.errors import DataError

TaskKind = Literal["classification", "regression"]
MAX_INFERRED_CLASSES = 50


@dataclass(frozen=True)
class Standardizer:
    """x ↦ (x − μ) / σ with μ and σ measured on the training split."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        mean = x.mean(axis=0)
        std = x.std(axis=0)  # 1/m, as the lecture
        return cls(mean=mean, std=np.where(std > 0, std, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (x - self.mean) / self.std
        return out

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = x * self.std + self.mean
        return out


@dataclass(frozen=True)
class Table:
    """Rows as loaded: numeric features and the raw target."""

    x: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_name: str


@dataclass(frozen=True)
class Splits:
    """Train/validation/test arrays ready for tensors (features float32, normalized)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: TaskKind
    classes: list[object]
    feature_names: list[str]
    input_scaler: Standardizer | None
    target_scaler: Standardizer | None

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "classification" else 1


def prepare_data(config: TrainConfig) -> Splits:
    """Load, check, split and normalize the dataset a config names."""
    table = load_table(config)
    task = infer_task(table.y) if config.task == "auto" else config.task
    classes: list[object] = []
    if task == "classification":
        classes, y = _encode_classes(table)
    else:
        y = _numeric_target(table)
    train, val, test = split_indices(
        y if task == "classification" else None,
        len(y),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.split_seed,
    )
    x = table.x
    input_scaler = Standardizer.fit(x[train]) if config.normalize_inputs else None
    if input_scaler is not None:
        x = input_scaler.transform(x)
    target_scaler = None
    if task == "regression":
        target_scaler = Standardizer.fit(y[train])
        y = target_scaler.transform(y).astype(np.float32)
    x = x.astype(np.float32)
    return Splits(
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x[test],
        y_test=y[test],
        task=task,
        classes=classes,
        feature_names=table.feature_names,
        input_scaler=input_scaler,
        target_scaler=target_scaler,
    )


def load_table(config: TrainConfig) -> Table:
    """The rows of a bundled, synthetic or user dataset, checked for NaN and non-numbers."""
    name = config.dataset
    if name == "synthetic":
        table = _synthetic(config)
    elif name in BUNDLED_DATASETS:
        table = _bundled(name)
    elif Path(name).suffix.lower() in DATA_FILE_SUFFIXES:
        table = _user_file(Path(name), config.target)
    else:
        raise DataError(
            f"unknown dataset {name!r}: use one of {', '.join(BUNDLED_DATASETS)} "
            "or a path to a .csv, .parquet or .npz file"
        )
    _check(table)
    return table


def infer_task(y: np.ndarray) -> TaskKind:
    """Classification for labels and small sets of integers, regression otherwise."""
    if y.dtype.kind not in "iuf":
        return "classification"
    finite = y[np.isfinite(y)] if y.dtype.kind == "f" else y
    if y.dtype.kind == "f" and not np.all(np.floor(finite) == finite):
        return "regression"
    return "classification" if len(np.unique(finite)) <= MAX_INFERRED_CLASSES else "regression"


def split_indices(
    labels: np.ndarray | None,
    n: int,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of the train, validation and test splits, stratified by ``labels``."""
    rows = np.arange(n)
    try:
        rest, test = train_test_split(rows, test_size=test_fraction, random_state=seed, stratify=labels)
        train, val = train_test_split(
            rest,
            test_size=val_fraction / (1 - test_fraction),
            random_state=seed,
            stratify=None if labels is None else labels[rest],
        )
    except ValueError as exc:
        kind = "a stratified" if labels is not None else "a"
        raise DataError(
            f"cannot make {kind} train/validation/test split of {n} rows "
            f"(val_fraction={val_fraction}, test_fraction={test_fraction}): {exc}"
        ) from None
    return np.sort(train), np.sort(val), np.sort(test)


def _bundled(name: str) -> Table:
    bunch = getattr(sk_datasets, f"load_{name}")()
    return Table(
        x=np.asarray(bunch.data, dtype=np.float64),
        y=np.asarray(bunch.target),
        feature_names=[str(f) for f in bunch.feature_names],
        target_name="target",
    )


def _synthetic(config: TrainConfig) -> Table:
    n, d, k = config.synthetic_samples, config.synthetic_features, config.synthetic_classes
    if k == 0:
        x, y = sk_datasets.make_regression(
            n_samples=n,
            n_features=d,
            n_informative=min(d, 10),
            noise=10.0,
            random_state=config.split_seed,
        )
    else:
        informative = min(d, max(2, d // 2))
        if k > 2**informative:
            raise DataError(
                f"synthetic_classes={k} needs more features: {d} feature(s) give "
                f"{informative} informative one(s), enough for at most {2**informative} classes"
            )
        x, y = sk_datasets.make_classification(
            n_samples=n,
            n_features=d,
            n_informative=informative,
            n_redundant=0,
            n_classes=k,
            n_clusters_per_class=1,
            random_state=config.split_seed,
        )
    return Table(
        x=np.asarray(x, dtype=np.float64),
        y=np.asarray(y),
        feature_names=[f"x{i}" for i in range(d)],
        target_name="y",
    )


def _user_file(path: Path, target: str | None) -> Table:
    if not path.is_file():
        raise DataError(f"dataset file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path, target or "y")
    import pandas as pd

    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # pandas raises many types; all mean "not a readable table"
        raise DataError(f"cannot read {str(path)!r}: {exc}") from None
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if target is None:
        raise DataError(
            f"name the target column of {path.name} with 'target' (--target); columns: {', '.join(columns)}"
        )
    if target not in columns:
        raise DataError(f"target column {target!r} not found in {path.name}; columns: {', '.join(columns)}")
    features = frame.drop(columns=[target])
    non_numeric = [
        c
        for c in features.columns
        if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))
    ]
    if non_numeric:
        raise DataError(
            f"feature column(s) {_names(non_numeric)} of {path.name} are not numeric; "
            "encode them as numbers (or drop them) first"
        )
    y = frame[target].to_numpy()
    if y.dtype == object and frame[target].isna().any():
        raise DataError(f"target column {target!r} has {int(frame[target].isna().sum())} missing value(s)")
    return Table(
        x=features.to_numpy(dtype=np.float64, na_value=np.nan),
        y=y,
        feature_names=list(features.columns),
        target_name=target,
    )


def _npz(path: Path, target: str) -> Table:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as exc:  # a corrupt or foreign file
        raise DataError(f"cannot read {str(path)!r}: {exc}") from None
    with archive:
        arrays = {key: archive[key] for key in archive.files}
    if target not in arrays:
        raise DataError(f"target array {target!r} not found in {path.name}; arrays: {', '.join(arrays)}")
    y = arrays.pop(target)
    if "X" in arrays or "x" in arrays:
        x = arrays["X" if "X" in arrays else "x"]
        if x.ndim != 2:
            raise DataError(f"the feature array of {path.name} must be 2-D, got shape {x.shape}")
        names = [f"x{i}" for i in range(x.shape[1])]
    else:
        bad = [k for k, a in arrays.items() if a.ndim != 1 or a.dtype.kind not in "biuf"]
        if bad or not arrays:
            raise DataError(
                f"{path.name} needs a 2-D array 'X', or 1-D numeric arrays as columns; "
                f"unusable: {_names(bad) if bad else 'no feature arrays'}"
            )
        names = list(arrays)
        x = np.column_stack([arrays[k] for k in names])
    if x.dtype.kind not in "biuf":
        raise DataError(f"the features of {path.name} are not numeric (dtype {x.dtype})")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"target {target!r} of {path.name} must be 1-D with one value per row: "
            f"shape {y.shape} for {len(x)} rows"
        )
    return Table(x=x.astype(np.float64), y=y, feature_names=names, target_name=target)


def _check(table: Table) -> None:
    x, y = table.x, table.y
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError("the dataset has no rows")
    if x.shape[1] == 0:
        raise DataError("the dataset has no feature columns besides the target")
    bad = ~np.isfinite(x)
    if bad.any():
        columns = [table.feature_names[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise DataError(
            f"feature column(s) {_names(columns)} contain NaN or infinite values "
            f"in {int(bad.any(axis=1).sum())} row(s); drop or fill them first"
        )
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        count = int((~np.isfinite(y)).sum())
        raise DataError(f"target {table.target_name!r} has {count} missing or infinite value(s)")


def _encode_classes(table: Table) -> tuple[list[object], np.ndarray]:
    try:
        classes, y = np.unique(table.y, return_inverse=True)
    except TypeError:  # mixed types in an object column
        classes, y = np.unique(table.y.astype(str), return_inverse=True)
    if len(classes) < 2:
        only = repr(_plain(classes[0])) if len(classes) else "none"
        raise DataError(
            f"target {table.target_name!r} has only one class ({only}); classification needs at least two"
        )
    return [_plain(c) for c in classes], y.astype(np.int64)


def _plain(value: object) -> object:
    """A Python scalar for a numpy one, so labels print and serialize as themselves."""
    return value.item() if isinstance(value, np.generic) else value


def _numeric_target(table: Table) -> np.ndarray:
    if table.y.dtype.kind not in "biuf":
        raise DataError(
            f"target {table.target_name!r} is not numeric, so it cannot be a regression "
            "target; use task 'classification'"
        )
    return table.y.astype(np.float64)


def _names(columns: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")
