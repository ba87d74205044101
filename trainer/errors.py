"""Errors a caller can show to a person as they are: the message says what is wrong."""

from __future__ import annotations


class TrainerError(ValueError):
    """A run cannot start because of its input; the message is meant for the user."""


class DataError(TrainerError):
    """The dataset cannot be used: missing target column, non-numeric feature, NaN, one class."""


class DeviceError(TrainerError):
    """The requested device does not exist on this machine."""
