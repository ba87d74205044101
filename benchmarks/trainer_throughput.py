"""hone's trainer against a plain ``DataLoader(TensorDataset)`` loop, side by side.

Two measurements per dataset, each reported as a ratio (hone's speed over the loop's):

- **data iteration**: samples per second of shuffled mini-batches over whole epochs and
  nothing else. hone: ``trainer.batches.shuffled_batches`` on tensors already on the
  device (one permutation and one gather per epoch, then views). Loop:
  ``DataLoader(TensorDataset(x, y), batch_size, shuffle=True)`` (per-sample indexing and a
  collate per batch), each batch moved to the device as a plain loop does.
- **whole trial**: wall time of ``trainer.train(config)`` against a plain loop that trains
  the same ``MLP`` with the same initialization, optimizer, data split and epochs, logs
  ``loss.item()`` per batch and evaluates the training rows hone scores for its clean
  training error (all of them, or the same fixed sample) and the validation split through
  a ``DataLoader`` each epoch, and the test split at the end: the same work. Both run with
  the same number of CPU threads.

Datasets: ``digits`` (1,797 rows) and a synthetic classification set of 100,000 rows
(10,000 with ``--quick``).
Run it: ``python -m benchmarks.trainer_throughput [--quick] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.stats import target
from trainer.batches import shuffled_batches
from trainer.config import TrainConfig
from trainer.data import prepare_data
from trainer.devices import cpu_threads, resolve_device, torch_threads
from trainer.model import MLP, init_weights
from trainer.optimizers import make_optimizer
from trainer.run import train, train_eval_rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(run: Callable[[], None], device: torch.device, repeat: int) -> float:
    """Median seconds of ``repeat`` runs, after a warm-up run when ``repeat`` > 1."""
    if repeat > 1:
        run()
        _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def iteration(config: TrainConfig, epochs: int, repeat: int) -> dict[str, float]:
    """Samples per second of shuffled mini-batch iteration, hone against DataLoader."""
    device = resolve_device(config.device)
    splits = prepare_data(config)
    x_cpu, y_cpu = torch.as_tensor(splits.x_train), torch.as_tensor(splits.y_train)
    x, y = x_cpu.to(device), y_cpu.to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    loader = DataLoader(TensorDataset(x_cpu, y_cpu), batch_size=config.batch_size, shuffle=True)

    def hone() -> None:
        for _ in range(epochs):
            for _batch in shuffled_batches(x, y, config.batch_size, generator):
                pass

    def dataloader() -> None:
        for _ in range(epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)

    samples = epochs * len(x_cpu)
    hone_s, loader_s = _timed(hone, device, repeat), _timed(dataloader, device, repeat)
    return {
        "hone_samples_per_s": samples / hone_s,
        "dataloader_samples_per_s": samples / loader_s,
        "ratio": loader_s / hone_s,
    }


def plain_loop(config: TrainConfig) -> float:
    """A straightforward PyTorch training loop for ``config``; returns the test accuracy."""
    device = resolve_device(config.device)
    splits = prepare_data(config)
    torch.manual_seed(config.seed)
    model = MLP(
        splits.n_features,
        config.layer_widths(),
        splits.n_outputs,
        activation=config.activation,
        batch_norm=config.batch_norm,
        keep_probs=config.layer_keep_probs(),
    )
    init_weights(model, config.init, torch.Generator().manual_seed(config.seed))
    model.to(device)
    optimizer = make_optimizer(
        config.optimizer, model.parameters(), lr=config.lr, beta1=config.beta1, beta2=config.beta2
    )

    def loader(x: Any, y: Any, shuffle: bool) -> DataLoader[tuple[torch.Tensor, ...]]:
        dataset = TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
        return DataLoader(dataset, batch_size=config.batch_size, shuffle=shuffle)

    train_loader = loader(splits.x_train, splits.y_train, True)
    rows = train_eval_rows(len(splits.x_train), config.train_eval_rows, config.split_seed)
    picked = slice(None) if rows is None else rows
    train_eval_loader = loader(splits.x_train[picked], splits.y_train[picked], False)
    val_loader = loader(splits.x_val, splits.y_val, False)
    test_loader = loader(splits.x_test, splits.y_test, False)

    def evaluate(data: DataLoader[tuple[torch.Tensor, ...]]) -> tuple[float, float]:
        model.eval()
        loss, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for xb, yb in data:
                xb, yb = xb.to(device), yb.to(device)
                out = model(xb)
                loss += F.cross_entropy(out, yb, reduction="sum").item()
                correct += int((out.argmax(1) == yb).sum().item())
                count += len(yb)
        return loss / count, correct / count

    for _ in range(config.max_epochs):
        model.train()
        running = 0.0
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            running += loss.item()
        evaluate(train_eval_loader)
        evaluate(val_loader)
    return evaluate(test_loader)[1]


def trial(config: TrainConfig, repeat: int) -> dict[str, float]:
    """Whole-trial wall time, ``train(config)`` against the plain loop."""
    device = resolve_device(config.device)
    accuracy: dict[str, float] = {}

    def hone() -> None:
        accuracy["hone"] = train(config).test["test_accuracy"]

    def loop() -> None:
        accuracy["loop"] = plain_loop(config)

    hone_s, loop_s = _timed(hone, device, repeat), _timed(loop, device, repeat)
    return {
        "hone_s": hone_s,
        "dataloader_s": loop_s,
        "ratio": loop_s / hone_s,
        "hone_test_accuracy": accuracy["hone"],
        "dataloader_test_accuracy": accuracy["loop"],
    }


def _configs(quick: bool, device: str, batch_size: int) -> dict[str, TrainConfig]:
    common = {"device": device, "batch_size": batch_size, "l2": 0.0}
    rows = 10_000 if quick else 100_000
    return {
        "digits": TrainConfig(dataset="digits", max_epochs=5 if quick else 30, **common),
        f"synthetic_{rows // 1000}k": TrainConfig(
            dataset="synthetic",
            synthetic_samples=rows,
            synthetic_features=20,
            synthetic_classes=2,
            max_epochs=1 if quick else 5,
            **common,
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a few seconds: fewer epochs and rows and repeats"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    # The first run of a process pays for lazy initialization; keep it out of the figures.
    train(TrainConfig(dataset="iris", max_epochs=1, device=args.device))
    results: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size, "datasets": {}}
    for name, config in _configs(args.quick, args.device, args.batch_size).items():
        splits = prepare_data(config)
        sizes = [splits.n_features, *config.layer_widths(), splits.n_outputs]
        threads = cpu_threads(config.cpu_threads, config.batch_size, sizes)
        # Quick mode still repeats the short digits runs: a single one is too noisy.
        repeat = 1 if args.quick and name != "digits" else 3
        with torch_threads(threads):
            results["datasets"][name] = {
                "threads": threads,
                "epochs": config.max_epochs,
                "iteration": iteration(config, epochs=config.max_epochs, repeat=repeat),
                "trial": trial(config, repeat=repeat),
            }
    results["targets"] = _targets(results)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print(results)
    return results


def _targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    device = results["device"]
    checks = []
    for name, r in results["datasets"].items():
        ratio = r["iteration"]["ratio"]
        checks.append(
            target(
                f"Data iteration vs DataLoader(TensorDataset), {name}, {device}",
                "≥ 10× samples/s",
                f"{ratio:.1f}×",
                ratio >= 10,
                f"{ratio / 10:.1f}× the goal",
            )
        )
    digits = results["datasets"]["digits"]["trial"]["ratio"]
    checks.append(
        target(
            f"Whole digits trial vs the DataLoader loop, {device}",
            "faster (> 1×)",
            f"{digits:.2f}×",
            digits > 1,
            f"{(digits - 1) * 100:+.0f}% speed",
        )
    )
    return checks


def _print(results: dict[str, Any]) -> None:
    print(
        f"hone trainer vs DataLoader(TensorDataset) loop — device {results['device']}, "
        f"batch {results['batch_size']}"
    )
    print(f"{'dataset':<16}{'measure':<16}{'hone':>14}{'DataLoader':>14}{'ratio':>9}")
    for name, r in results["datasets"].items():
        it, tr = r["iteration"], r["trial"]
        print(
            f"{name:<16}{'samples/s':<16}{it['hone_samples_per_s']:>14,.0f}"
            f"{it['dataloader_samples_per_s']:>14,.0f}{it['ratio']:>8.1f}×"
        )
        label = f"trial s ({r['epochs']} ep)"
        print(f"{'':<16}{label:<16}{tr['hone_s']:>14.2f}{tr['dataloader_s']:>14.2f}{tr['ratio']:>8.1f}×")
        print(
            f"{'':<16}{'test accuracy':<16}{tr['hone_test_accuracy']:>14.3f}"
            f"{tr['dataloader_test_accuracy']:>14.3f}"
        )


if __name__ == "__main__":
    main()
