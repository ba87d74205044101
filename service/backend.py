"""What every stage of a lease's life works with: hone's database, Optuna's storage on the
same database, and the settings. One object, so they travel together."""

from __future__ import annotations

from dataclasses import dataclass

import optuna

from hone.settings import Settings
from service.db import Database


@dataclass(frozen=True)
class Backend:
    """The database, Optuna's storage and the settings of one API process.

    Args:
        db: hone's engine, sessions and process lock.
        storage: Optuna's storage on the same database (read by samplers and pruners; every
            write to Optuna's tables goes through :mod:`service.optuna_tables` in ``db``'s
            transactions).
        settings: the process's settings (``grace_period``, ``max_retries``, ...).
    """

    db: Database
    storage: optuna.storages.RDBStorage
    settings: Settings
