"""Optuna's storages as hone's samplers and pruners read them: per-process caches over
Optuna's private cached storage, and the one grant path that asks Optuna itself."""

from __future__ import annotations

import bisect
import copy
import threading
from collections.abc import Container, Hashable, Iterable
from typing import Any

import optuna
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.caches import CACHE_STUDIES, Recent
from service.optuna_tables._rows import CONFIG_NUMBER_ATTR, _trials, _values


def ask_trial(
    storage: optuna.storages.RDBStorage,
    *,
    cache_key: Hashable,
    study_name: str,
    sampler: optuna.samplers.BaseSampler,
    suggest: Any,
    round_number: int,
    window: int | None = None,
) -> tuple[int, int, dict[str, Any], dict[str, Any]]:
    """A trial from Optuna's own ``study.ask()``, for samplers that read the study's history
    (committed on Optuna's engine): ``(trial_id, number, params, user attributes)``.
    ``suggest(trial)`` suggests the spec's parameters. A new configuration is tagged with
    ``round_number`` (for the dashboard); a retry keeps its own attributes. ``window``:
    the sampler sees the ``BEST_KEPT`` best completed trials and the ``window`` most
    recent finished ones (:class:`SamplerStorage`); None: every trial."""
    study = optuna.load_study(
        study_name=study_name, storage=study_storage(storage, cache_key, window=window), sampler=sampler
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


def study_storage(
    storage: optuna.storages.RDBStorage, key: Hashable, *, window: int | None = None
) -> optuna.storages.BaseStorage:
    """A per-process caching view of ``storage`` for the study ``key`` names; with a
    ``window``, a :class:`SamplerStorage`."""
    return _cached.get(
        (id(storage), key, window),
        lambda: _CachedStorage(storage) if window is None else SamplerStorage(storage, window=window),
        still_valid=lambda found: found._backend is storage,
    )


BEST_KEPT = 25  # TPE's "good" trials are at most the best 25 (Optuna's default gamma)


class _History:
    def __init__(self) -> None:
        self.indexed: set[int] = set()
        self.finished: list[tuple[int, int]] = []  # (number, trial_id), by number
        self.best: list[tuple[float, int]] = []  # (value, or minus it when maximizing; number)
        self.maximize: bool | None = None


class SamplerStorage(_CachedStorage):
    """The storage a history sampler (TPE) reads through on each grant: a bounded history.

    Optuna's cached storage reads only new and unfinished trials from the database, but
    answers each ``get_all_trials`` by sorting every trial of the study in memory, and TPE
    then models every one: a grant of a 100,000-trial study cost 100,000 trials' work,
    several times. Here finished trials are indexed once, as they arrive, and a query for
    any state answers with the unfinished trials, the ``BEST_KEPT`` best completed trials
    and the ``window`` most recent finished ones, by number. A study with fewer than
    ``window`` + ``BEST_KEPT`` finished trials is seen whole, exactly as Optuna sees it;
    beyond, TPE still picks its good trials from the best overall (its gamma keeps at
    most 25) and models the rest of the space from the recent ones. The first read of a
    study, too, loads only those (found with SQL on ids and values), not every trial.
    """

    def __init__(self, backend: optuna.storages.RDBStorage, *, window: int) -> None:
        super().__init__(backend)
        self._window = window
        self._histories: dict[int, _History] = {}
        self._started: set[int] = set()

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._lock:
            known = study_id in self._started
        if not known:
            self._read_history(study_id)
        super()._read_trials_from_remote_storage(study_id)

    def _read_history(self, study_id: int) -> None:
        """The first read of a study: only the trials the view shows (and the unfinished),
        not every trial the study has, which Optuna's first read loads."""
        finished = _trials.c.state.in_([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
        of_study = _trials.c.study_id == study_id
        maximize = self._backend.get_study_directions(study_id)[0] == StudyDirection.MAXIMIZE
        best = (
            select(_trials.c.trial_id)
            .join(_values, _values.c.trial_id == _trials.c.trial_id)
            .where(of_study, _trials.c.state == TrialState.COMPLETE, _values.c.objective == 0)
            .where(_values.c.value.is_not(None))
            .order_by(_values.c.value.desc() if maximize else _values.c.value.asc())
            .limit(BEST_KEPT)
        )
        recent = select(_trials.c.trial_id).where(of_study, finished)
        with self._backend.engine.connect() as connection:
            watermark = connection.scalar(select(func.max(_trials.c.trial_id)).where(of_study, finished))
            ids = set(connection.scalars(recent.order_by(_trials.c.number.desc()).limit(self._window)))
            ids.update(connection.scalars(best))
            ids.update(connection.scalars(select(_trials.c.trial_id).where(of_study, ~finished)))
        watermark = -1 if watermark is None else int(watermark)
        trials = self._backend._get_trials(study_id, None, ids, watermark)
        with self._lock:
            if study_id in self._started:
                return
            self._started.add(study_id)
            # Optuna's cache may know the study already (its name, directions), not its trials.
            study = self._studies.setdefault(study_id, _StudyInfo())
            self._add_trials_to_cache(study_id, trials)
            study.unfinished_trial_ids.update(t._trial_id for t in trials if not t.state.is_finished())
            study.last_finished_trial_id = watermark

    def _add_trials_to_cache(self, study_id: int, trials: list[FrozenTrial]) -> None:
        super()._add_trials_to_cache(study_id, trials)  # under the storage's lock
        history = self._histories.setdefault(study_id, _History())
        for trial in trials:
            if not trial.state.is_finished() or trial._trial_id in history.indexed:
                continue
            history.indexed.add(trial._trial_id)
            bisect.insort(history.finished, (trial.number, trial._trial_id))
            if trial.state == TrialState.COMPLETE and trial.values:
                if history.maximize is None:
                    # The backend's own read: this storage's lock is held here.
                    direction = self._backend.get_study_directions(study_id)[0]
                    history.maximize = direction == StudyDirection.MAXIMIZE
                value = -trial.values[0] if history.maximize else trial.values[0]
                bisect.insort(history.best, (value, trial.number))
                del history.best[BEST_KEPT:]

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        self._read_trials_from_remote_storage(study_id)
        with self._lock:
            study = self._studies[study_id]
            history = self._histories.setdefault(study_id, _History())
            numbers = {number for number, _ in history.finished[-self._window :]}
            numbers.update(number for _, number in history.best)
            numbers.update(self._trial_id_to_study_id_and_number[i][1] for i in study.unfinished_trial_ids)
            trials = [study.trials[n] for n in sorted(numbers)]
            if states is not None:
                trials = [t for t in trials if t.state in states]
            return copy.deepcopy(trials) if deepcopy else trials


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
