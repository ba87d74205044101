"""Optuna's storages as hone's samplers and pruners read them: per-process caches over
Optuna's private cached storage, and the one grant path that asks Optuna itself."""

from __future__ import annotations

import copy
import threading
from collections.abc import Container, Hashable, Iterable
from typing import Any

import optuna
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.caches import CACHE_STUDIES, Recent
from service.optuna_tables._rows import CONFIG_NUMBER_ATTR, _trials


def ask_trial(
    storage: optuna.storages.RDBStorage,
    *,
    cache_key: Hashable,
    study_name: str,
    sampler: optuna.samplers.BaseSampler,
    suggest: Any,
    round_number: int,
) -> tuple[int, int, dict[str, Any], dict[str, Any]]:
    """A trial from Optuna's own ``study.ask()``, for samplers that read the study's history
    (committed on Optuna's engine): ``(trial_id, number, params, user attributes)``.
    ``suggest(trial)`` suggests the spec's parameters. A new configuration is tagged with
    ``round_number`` (for the dashboard); a retry keeps its own attributes."""
    study = optuna.load_study(
        study_name=study_name, storage=study_storage(storage, cache_key), sampler=sampler
    )
    trial = study.ask()
    try:
        params = suggest(trial)
        attrs = dict(trial.user_attrs)
        if CONFIG_NUMBER_ATTR not in attrs:
            trial.set_user_attr("hone_round", round_number)
    except Exception:
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        raise
    return trial._trial_id, trial.number, params, attrs


# Optuna wraps a bare RDBStorage in a fresh _CachedStorage per Study object, so a sampler
# reading the study's finished trials reloaded them all on every grant. One cache per study
# and process reads only what is new, as ``study.optimize`` does; finished trials never
# change, so a cache is safe across processes.
_cached: Recent[Hashable, _CachedStorage] = Recent(CACHE_STUDIES)


def study_storage(storage: optuna.storages.RDBStorage, key: Hashable) -> optuna.storages.BaseStorage:
    """A per-process caching view of ``storage`` for the study ``key`` names."""
    return _cached.get(
        (id(storage), key),
        lambda: _CachedStorage(storage),
        still_valid=lambda found: found._backend is storage,
    )


class _Seen:
    def __init__(self) -> None:
        self.finished: dict[int, FrozenTrial] = {}
        self.open: set[int] = set()
        self.pending: set[int] = set()  # finished, not read yet
        self.complete: set[int] = set()
        self.watermark = -1


class PrunerStorage(_CachedStorage):
    """The storage a study's pruner reads through on each report: finished trials, cheaply.

    A pruner asks for the study's finished trials on every report; Optuna's cached storage
    answers by re-reading every unfinished trial in full each time. Here :meth:`probe`
    reads ids and states only (new ids, and the ids it saw unfinished) in the report's own
    transaction, and :meth:`load` reads in full, once, the trials that finished since.
    ``get_all_trials`` with only finished states then answers from memory."""

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        super().__init__(backend)
        self._seen: dict[int, _Seen] = {}
        self._seen_lock = threading.Lock()

    def serves(self, storage: optuna.storages.RDBStorage) -> bool:
        """Whether this reads through ``storage`` (a cache outlives a replaced storage)."""
        return self._backend is storage

    def _study(self, study_id: int) -> _Seen:
        return self._seen.setdefault(study_id, _Seen())

    def probe(self, session: Session, study_id: int) -> None:
        """Note which trials finished since the last probe (ids and states only)."""
        # No lock is held across SQL here or in load(): the caller's transaction may hold
        # SQLite's write lock, which a concurrent load() (Optuna's connection) would wait on.
        with self._seen_lock:
            seen = self._study(study_id)
            watermark, open_ids = seen.watermark, sorted(seen.open)
        query = select(_trials.c.trial_id, _trials.c.state)
        rows = list(
            session.execute(query.where(_trials.c.trial_id > watermark, _trials.c.study_id == study_id))
        )
        if open_ids:
            rows += session.execute(query.where(_trials.c.trial_id.in_(open_ids)))
        with self._seen_lock:
            for trial_id, state in rows:
                seen.watermark = max(seen.watermark, trial_id)
                if trial_id in seen.finished or trial_id in seen.pending:
                    continue
                if TrialState(state).is_finished():
                    seen.open.discard(trial_id)
                    seen.pending.add(trial_id)
                    if TrialState(state) == TrialState.COMPLETE:
                        seen.complete.add(trial_id)
                else:
                    seen.open.add(trial_id)

    def completed(self, study_id: int) -> int:
        """COMPLETE trials of the study as of the last :meth:`probe`."""
        with self._seen_lock:
            return len(self._study(study_id).complete)

    def load(self, study_id: int) -> None:
        """Read in full the trials :meth:`probe` found finished."""
        with self._seen_lock:
            seen = self._study(study_id)
            pending = set(seen.pending)
        if not pending:
            return
        trials = self._backend._get_trials(study_id, None, pending, max(pending))
        with self._seen_lock:
            for trial in trials:
                trial_id = trial._trial_id
                seen.watermark = max(seen.watermark, trial_id)
                if trial.state.is_finished():
                    seen.finished[trial_id] = trial
                    seen.open.discard(trial_id)
                    seen.pending.discard(trial_id)
                    if trial.state == TrialState.COMPLETE:
                        seen.complete.add(trial_id)
                elif trial_id not in seen.finished and trial_id not in seen.pending:
                    seen.open.add(trial_id)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if not isinstance(states, Iterable) or not all(TrialState(s).is_finished() for s in states):
            return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)
        wanted = set(states)
        with self._seen_lock:
            trials = [t for t in self._study(study_id).finished.values() if t.state in wanted]
        trials.sort(key=lambda t: t.number)
        return copy.deepcopy(trials) if deepcopy else trials
