"""Which torch device a run uses, and the backend settings that make it fast there."""

from __future__ import annotations

import torch

from trainer.errors import DeviceError


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
