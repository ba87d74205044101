"""Which torch device a run uses, and the backend settings that make it fast there."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from trainer.errors import DeviceError

# Multiply-adds per mini-batch below which one CPU thread is fastest. Splitting small
# matrix products across threads costs more than it saves, and when several runs share a
# machine (a worker per core, ``pytest -n``) extra threads spin against each other: on
# a busy 2-core machine, 2 threads made a digits run 30 times slower than 1.
SMALL_WORK = 32 * 2**20


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, or ``auto`` (the GPU when there is one)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise DeviceError(f"device {name!r} is not supported: use 'cpu', 'cuda', 'cuda:N' or 'auto'")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} was asked for, but this machine has no usable CUDA GPU")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(f"device {name!r} does not exist: this machine has {count} CUDA GPU(s)")
    return device


def configure_backends(device: torch.device) -> None:
    """On CUDA, let float32 matrix products use TF32 tensor cores.

    TF32 keeps float32's range with a 10-bit mantissa, which costs an MLP's training
    nothing measurable and runs its matrix products several times faster. The setting is
    process-wide; the worker runs trials in dedicated processes.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def cpu_threads(requested: int, batch_size: int, layer_sizes: list[int]) -> int:
    """Threads for a run on the CPU: ``requested``, or by the size of a mini-batch's work."""
    if requested > 0:
        return requested
    macs = batch_size * sum(a * b for a, b in zip(layer_sizes, layer_sizes[1:], strict=False))
    return 1 if macs < SMALL_WORK else torch.get_num_threads()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
