"""One training run: ``train(config, report)`` → ``TrainResult``.

The whole dataset lives as tensors on the training device. Each epoch draws one random
permutation, gathers the shuffled rows once and slices mini-batches out of them as views;
there is no per-sample ``DataLoader``. The epoch's loss is summed on the device and read
once per epoch, so a GPU is not stalled by a host sync per mini-batch.

Per epoch the run records ``batch_loss`` (the mean mini-batch loss as trained: dropout on,
L2/L1 penalty left out), the clean training error ``train_loss`` and ``train_accuracy`` or
``train_rmse`` (the end-of-epoch weights in evaluation mode: no dropout, batch norm on its
running averages, as the validation split is scored; on a fixed sample of
``train_eval_rows`` training rows when the split is larger), ``val_loss``,
``val_accuracy`` or ``val_rmse`` (in the target's own units), ``lr`` and ``seconds``. The
clean training error beside the validation error is what the lecture's basic recipe
reads (bias and variance). The best epoch by ``monitor`` is kept; the test split is
scored once, on the best epoch's weights.

Randomness comes from two generators seeded with ``seed`` (initialization on the CPU, so
weights are the same on every device; shuffling and dropout on the training device), so a
run on the CPU gives identical epochs for a seed and leaves the global RNG alone.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer.batches import shuffled_batches
from trainer.config import TrainConfig
from trainer.data import Splits, prepare_data
from trainer.devices import configure_backends, cpu_threads, resolve_device, torch_threads
from trainer.early_stopping import EarlyStopping
from trainer.errors import TrainerError
from trainer.model import MLP, FittedModel, init_weights
from trainer.optimizers import make_optimizer
from trainer.regularization import weight_penalty
from trainer.schedules import learning_rate

Status = Literal["completed", "stopped", "diverged"]
Report = Callable[[int, dict[str, float]], bool]
_EVAL_CHUNK = 65_536


@dataclass
class TrainResult:
    """What a run produced.

    ``status`` is ``completed`` (ran to ``max_epochs`` or stopped early), ``stopped`` (the
    report callback asked to stop) or ``diverged`` (a loss became NaN or infinite).
    ``epochs`` holds one dict per epoch: ``epoch``, ``lr``, ``batch_loss``,
    ``train_loss``, ``train_accuracy`` or ``train_rmse``, ``val_loss``, ``val_accuracy``
    or ``val_rmse``, ``seconds``. ``test`` holds ``test_loss`` and ``test_accuracy`` or
    ``test_rmse`` of the best epoch's weights (empty if no epoch finished with finite
    losses). The training error was measured on ``train_rows_scored`` of the split's
    ``train_rows`` rows (a fixed sample when fewer).
    """

    status: Status
    epochs: list[dict[str, float]]
    best_epoch: int | None
    stopped_early: bool
    test: dict[str, float]
    config: TrainConfig
    train_rows: int = 0
    train_rows_scored: int = 0
    model: FittedModel | None = field(default=None, repr=False, compare=False)

    @property
    def best(self) -> dict[str, float] | None:
        """The best epoch's metrics."""
        return next((e for e in self.epochs if e["epoch"] == self.best_epoch), None)

    def to_json(self) -> dict[str, Any]:
        """The ``hone train --json`` object; NaN and infinities become ``null``."""
        return {
            "epochs": [_finite(e) for e in self.epochs],
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "status": self.status,
            "test": _finite(self.test),
            "train_measured_on": {
                "rows": self.train_rows_scored,
                "of": self.train_rows,
                "sample": self.train_rows_scored < self.train_rows,
            },
            "config": self.config.model_dump(mode="json"),
        }


def train(config: TrainConfig, report: Report | None = None) -> TrainResult:
    """Train the MLP that ``config`` describes and score it on the test split.

    ``report(epoch, metrics)`` is called after every epoch with ``batch_loss``,
    ``train_loss``, ``train_accuracy`` or ``train_rmse``, ``val_loss``, ``val_accuracy``
    or ``val_rmse``, ``lr`` and ``seconds``; returning True
    stops the run (status ``stopped``). Bad data raises ``DataError`` and an unusable
    device ``DeviceError`` (both ``TrainerError``, a ``ValueError``); a diverging run
    returns status ``diverged``. CUDA running out of memory propagates as
    ``torch.cuda.OutOfMemoryError``.
    """
    device = resolve_device(config.device)
    splits = prepare_data(config)
    metric = "val_accuracy" if splits.task == "classification" else "val_rmse"
    if config.monitor not in ("val_loss", metric):
        raise TrainerError(f"monitor {config.monitor!r} does not exist for {splits.task}")
    configure_backends(device)
    if device.type != "cpu":
        return _Run(config, splits, device).fit(report)
    sizes = [splits.n_features, *config.layer_widths(), splits.n_outputs]
    with torch_threads(cpu_threads(config.cpu_threads, config.batch_size, sizes)):
        return _Run(config, splits, device).fit(report)


class _Run:
    def __init__(self, config: TrainConfig, splits: Splits, device: torch.device) -> None:
        self.config = config
        self.splits = splits
        self.device = device
        self.classification = splits.task == "classification"
        self.metric = "val_accuracy" if self.classification else "val_rmse"
        target_std = splits.target_scaler.std if splits.target_scaler is not None else 1.0
        self.target_std = float(target_std)

        def tensor(a: Any) -> Tensor:
            return torch.as_tensor(a).to(device)

        self.x_train, self.y_train = tensor(splits.x_train), tensor(splits.y_train)
        self.x_val, self.y_val = tensor(splits.x_val), tensor(splits.y_val)
        self.x_test, self.y_test = tensor(splits.x_test), tensor(splits.y_test)
        rows = train_eval_rows(len(splits.x_train), config.train_eval_rows, config.split_seed)
        if rows is None:
            self.x_train_eval, self.y_train_eval = self.x_train, self.y_train
        else:
            picked = torch.as_tensor(rows, device=device)
            self.x_train_eval, self.y_train_eval = self.x_train[picked], self.y_train[picked]

        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.model = MLP(
            splits.n_features,
            config.layer_widths(),
            splits.n_outputs,
            activation=config.activation,
            batch_norm=config.batch_norm,
            keep_probs=config.layer_keep_probs(),
            dropout_generator=self.generator,
        )
        init_weights(self.model, config.init, torch.Generator().manual_seed(config.seed))
        self.model.to(device)
        self.optimizer = make_optimizer(
            config.optimizer,
            self.model.parameters(),
            lr=config.lr,
            beta=config.beta,
            beta1=config.beta1,
            beta2=config.beta2,
            eps=config.eps,
        )
        self.amp = config.amp and device.type == "cuda"

    def fit(self, report: Report | None) -> TrainResult:
        config = self.config
        watch = "val_loss" if config.monitor == "val_loss" else self.metric
        stopper = EarlyStopping(
            "max" if watch == "val_accuracy" else "min", config.patience, config.min_delta
        )
        best_state: dict[str, Tensor] | None = None
        epochs: list[dict[str, float]] = []
        status: Status = "completed"
        stopped_early = False
        for epoch in range(1, config.max_epochs + 1):
            metrics = self._epoch(epoch)
            epochs.append({"epoch": epoch, **metrics})
            losses = (metrics["batch_loss"], metrics["train_loss"], metrics["val_loss"])
            if not all(math.isfinite(loss) for loss in losses):
                status = "diverged"
                break
            if stopper.update(epoch, metrics[watch]):
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if report is not None and report(epoch, dict(metrics)):
                status = "stopped"
                break
            if config.early_stopping and stopper.should_stop:
                stopped_early = True
                break

        test: dict[str, float] = {}
        if best_state is not None:
            self.model.load_state_dict(best_state)
            scores = self._evaluate(self.x_test, self.y_test)
            test = {f"test_{k}": v for k, v in scores.items()}
        return TrainResult(
            status=status,
            epochs=epochs,
            best_epoch=stopper.best_epoch,
            stopped_early=stopped_early,
            test=test,
            config=config,
            train_rows=int(self.x_train.shape[0]),
            train_rows_scored=int(self.x_train_eval.shape[0]),
            model=FittedModel(
                network=self.model,
                task=self.splits.task,
                input_scaler=self.splits.input_scaler,
                target_scaler=self.splits.target_scaler,
                classes=self.splits.classes,
                device=self.device,
            ),
        )

    def _epoch(self, epoch: int) -> dict[str, float]:
        config = self.config
        start = time.perf_counter()
        lr = learning_rate(config.lr_schedule, config.lr, config.lr_decay, epoch, config.lr_step_size)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        weights = self.model.penalized_weights()
        total = torch.zeros((), device=self.device)
        batches = shuffled_batches(self.x_train, self.y_train, config.batch_size, self.generator)
        for xb, yb in batches:
            m = xb.shape[0]
            with self._autocast():
                loss = self._loss(self.model(xb), yb)
            penalty = weight_penalty(weights, l2=config.l2, l1=config.l1, m=m)
            cost = loss if penalty is None else loss + penalty
            self.optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(cost)
            self.optimizer.step()
            total += loss.detach() * m
        batch_loss = (total / self.x_train.shape[0]).item()
        quality = self.metric.removeprefix("val_")
        clean = self._evaluate(self.x_train_eval, self.y_train_eval)
        val = self._evaluate(self.x_val, self.y_val)
        return {
            "lr": lr,
            "batch_loss": batch_loss,
            "train_loss": clean["loss"],
            f"train_{quality}": clean[quality],
            "val_loss": val["loss"],
            self.metric: val[quality],
            "seconds": time.perf_counter() - start,
        }

    def _loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        output = output.float()
        if self.classification:
            return F.cross_entropy(output, target, reduction=reduction)
        return F.mse_loss(output[:, 0], target, reduction=reduction)

    @torch.inference_mode()
    def _evaluate(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """Loss and accuracy (or RMSE in the target's units) in eval mode, by chunks."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for xc, yc in zip(torch.split(x, _EVAL_CHUNK), torch.split(y, _EVAL_CHUNK), strict=True):
            with self._autocast():
                output = self.model(xc)
            loss_sum += self._loss(output, yc, reduction="sum")
            if self.classification:
                correct += (output.argmax(dim=1) == yc).sum()
        n = max(int(x.shape[0]), 1)
        loss = (loss_sum / n).item()
        if self.classification:
            return {"loss": loss, "accuracy": correct.item() / n}
        return {"loss": loss, "rmse": math.sqrt(loss) * self.target_std}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def train_eval_rows(n_rows: int, limit: int, seed: int) -> list[int] | None:
    """The training rows scored for the clean training error: None (all of them) when the
    split has at most ``limit`` rows or ``limit`` is 0, else ``limit`` rows drawn once with
    ``seed`` (the split's), sorted, so every epoch and every trial of a study reads the same ones."""
    if limit == 0 or n_rows <= limit:
        return None
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n_rows, generator=generator)[:limit].tolist())


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}
