"""The storage a study's pruner reads through on each report: finished trials, cheaply.

A pruner asks for the study's finished trials (the median pruner: COMPLETE ones) on
every report. Optuna's ``_CachedStorage`` answers by re-reading every unfinished trial of
the study in full (params, attributes, all intermediate values) each time, so each
report cost as many full trial reads as there were trials running. Here a report first
probes Optuna's ``trials`` table for ids and states only (new ids, and the ids it saw
unfinished), inside the report's own transaction; only trials that finished since are
read in full, once. Finished trials never change, so they are kept.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Container, Iterable

import optuna
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb.models import TrialModel
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import select
from sqlalchemy.orm import Session

_trials = TrialModel.__table__


class _Seen:
    def __init__(self) -> None:
        self.finished: dict[int, FrozenTrial] = {}
        self.open: set[int] = set()
        self.pending: set[int] = set()  # finished, not read yet
        self.complete: set[int] = set()
        self.watermark = -1


class PrunerStorage(_CachedStorage):
    """Optuna's cached storage, but finished trials come from :meth:`probe` + :meth:`load`.

    Call ``probe(session, study_id)`` then ``load(study_id)`` before each pruning decision;
    ``get_all_trials`` with only finished states then answers from memory."""

    def __init__(self, backend: optuna.storages.RDBStorage) -> None:
        super().__init__(backend)
        self._seen: dict[int, _Seen] = {}
        self._seen_lock = threading.Lock()

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
