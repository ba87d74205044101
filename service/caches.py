"""Small per-process caches keyed by study, and the one reader of a study's stored spec.

A study's spec never changes, so it is parsed once per process: pydantic validation on
every grant and report cost more than the rest of a report. Stored specs are read with
:meth:`StudySpec.from_stored`, which skips checks added after their study was created.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Generic, TypeVar

from service.spec import StudySpec
from service.tables import Study

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A small per-process cache of the most recently used entries, safe across threads."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V], *, still_valid: Callable[[V], bool] | None = None) -> V:
        with self._lock:
            found = self._items.get(key)
            if found is not None and (still_valid is None or still_valid(found)):
                self._items.move_to_end(key)
                return found
        made = make()  # outside the lock: making one may read the database
        with self._lock:
            self._items[key] = made
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return made


# Per-study caches are keyed by the study's id, name and creation time: SQLite can reuse
# the id of a deleted study. Only a few studies each, since they hold finished trials.
CACHE_STUDIES = 8
StudyKey = tuple[int, int, str, datetime]


def study_key(owner: object, study: Study) -> StudyKey:
    return (id(owner), study.id, study.name, study.created_at)


_specs: Recent[StudyKey, StudySpec] = Recent(64)


def study_spec(study: Study) -> StudySpec:
    """The study's validated spec, parsed once per process."""
    return _specs.get(study_key(None, study), lambda: StudySpec.from_stored(study.spec))
