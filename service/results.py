"""What a study's trials have produced, asked of ``hone_trials`` in SQL: counts by state,
the best trial, keyset pages, and export batches.

Nothing here loads all of a study's trials: counts are read from the counter rows that
database triggers keep (``hone_trial_counts``), the best is an ``ORDER BY value LIMIT 1``,
pages are keyset (``WHERE (value, number) > cursor``) so page 1,000 costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import Session

from protocol import TrialCounts, TrialOut
from service.errors import InvalidInput
from service.tables import Trial, TrialCount

OrderBy = Literal["value", "number"]
DEFAULT_PAGE = 100
MAX_PAGE = 1000
TRIAL_STATES = ("running", "complete", "pruned", "failed", "interrupted", "cancelled")


def trial_counts(session: Session, *, study_id: int) -> TrialCounts:
    """A study's trials by state, from its counter rows (a few rows, however many trials)."""
    return counts_by_study(session, study_ids=[study_id])[study_id]


def counts_by_study(session: Session, *, study_ids: list[int]) -> dict[int, TrialCounts]:
    """Trials by state for many studies, from ``hone_trial_counts`` (one row per round and
    state that the database's triggers keep in step with ``hone_trials``)."""
    result = {study_id: TrialCounts() for study_id in study_ids}
    if not study_ids:
        return result
    query = (
        select(TrialCount.study_id, TrialCount.state, func.sum(TrialCount.trials))
        .where(TrialCount.study_id.in_(study_ids))
        .group_by(TrialCount.study_id, TrialCount.state)
    )
    for study_id, state, count in session.execute(query):
        counts = result[study_id]
        if state in TRIAL_STATES:
            setattr(counts, state, int(count))
        counts.total += int(count)
    return result


def counts_by_round(session: Session, *, study_id: int) -> dict[int, TrialCounts]:
    """Trials by state, and configurations (first attempts), for every round of a study."""
    trials = func.sum(TrialCount.trials)
    query = (
        select(TrialCount.round, TrialCount.state, trials, func.sum(TrialCount.configurations))
        .where(TrialCount.study_id == study_id)
        .group_by(TrialCount.round, TrialCount.state)  # summed over stripes
        .having(trials > 0)
    )
    result: dict[int, TrialCounts] = {}
    for round, state, count, configurations in session.execute(query):
        counts = result.setdefault(round, TrialCounts(configurations=0))
        if state in TRIAL_STATES:
            setattr(counts, state, int(count))
        counts.total += int(count)
        counts.configurations = (counts.configurations or 0) + int(configurations)
    return result


def configurations_started(study_id: Any, round: Any) -> Select[Any]:
    """How many configurations of a round have had a first attempt (a scalar query)."""
    return select(func.coalesce(func.sum(TrialCount.configurations), 0)).where(
        TrialCount.study_id == study_id, TrialCount.round == round
    )


def _value_order(direction: str) -> tuple[ColumnElement[Any], ...]:
    value = Trial.value.asc() if direction == "minimize" else Trial.value.desc()
    return (value, Trial.number.asc())


def best_trial(
    session: Session, *, study_id: int, direction: str, round_number: int | None = None
) -> Trial | None:
    """The best completed trial (ties go to the earlier trial), or None."""
    query = select(Trial).where(
        Trial.study_id == study_id, Trial.state == "complete", Trial.value.is_not(None)
    )
    if round_number is not None:
        query = query.where(Trial.round == round_number)
    return session.scalars(query.order_by(*_value_order(direction)).limit(1)).first()


def trial_out(trial: Trial) -> TrialOut:
    duration = (
        (trial.finished_at - trial.started_at).total_seconds() if trial.finished_at is not None else None
    )
    return TrialOut(
        number=trial.number,
        round=trial.round,
        config_number=trial.config_number,
        attempt=trial.attempt,
        state=trial.state,
        params=trial.params,
        value=trial.value,
        last_step=trial.last_step,
        reason=trial.reason,
        cause=trial.cause,
        worker_id=trial.worker_id,
        started_at=trial.started_at,
        finished_at=trial.finished_at,
        duration_s=duration,
        updated_at=trial.updated_at,
    )


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the sort key of its last trial (opaque to clients)."""

    order_by: OrderBy
    number: int
    value: float | None = None

    def encode(self) -> str:
        raw = json.dumps([self.order_by, self.number, self.value], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str, *, order_by: OrderBy) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            kind, number, value = json.loads(raw)
            valid = (
                kind in ("value", "number")
                and isinstance(number, int)
                and (value is None or (isinstance(value, int | float) and math.isfinite(value)))
            )
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidInput(("query", "cursor"), "not a cursor this API handed out")
        if kind != order_by:
            raise InvalidInput(("query", "cursor"), f"this cursor pages by {kind}, not by {order_by}")
        return cls(order_by=kind, number=number, value=None if value is None else float(value))


@dataclass(frozen=True)
class TrialFilter:
    study_id: int
    state: str | None = None
    round_number: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = [Trial.study_id == self.study_id]
        if self.state is not None:
            clauses.append(Trial.state == self.state)
        if self.round_number is not None:
            clauses.append(Trial.round == self.round_number)
        return clauses


def page_trials(
    session: Session,
    *,
    where: TrialFilter,
    direction: str,
    order_by: OrderBy = "number",
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> tuple[list[Trial], str | None]:
    """One page of trials and the cursor of the next page (None on the last).

    ``order_by="value"`` puts the best first (ascending for minimize, descending for
    maximize), trials without a value last, ties by number.
    """
    after = Cursor.decode(cursor, order_by=order_by) if cursor else None
    if order_by == "number":
        query = select(Trial).where(*where.where())
        if after is not None:
            query = query.where(Trial.number > after.number)
        rows = list(session.scalars(query.order_by(Trial.number).limit(limit + 1)))
    else:
        rows = _value_page(session, where=where, direction=direction, after=after, limit=limit)
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, Cursor(order_by=order_by, number=last.number, value=last.value).encode()


def _value_page(
    session: Session, *, where: TrialFilter, direction: str, after: Cursor | None, limit: int
) -> list[Trial]:
    rows: list[Trial] = []
    if after is None or after.value is not None:
        query: Select[Trial] = select(Trial).where(*where.where(), Trial.value.is_not(None))
        if after is not None and after.value is not None:
            # "value >= v" first so the index on (study_id, value) bounds the scan.
            if direction == "minimize":
                query = query.where(
                    Trial.value >= after.value,
                    or_(Trial.value > after.value, Trial.number > after.number),
                )
            else:
                query = query.where(
                    Trial.value <= after.value,
                    or_(Trial.value < after.value, Trial.number > after.number),
                )
        rows = list(session.scalars(query.order_by(*_value_order(direction)).limit(limit + 1)))
    if len(rows) <= limit:
        nulls = select(Trial).where(*where.where(), Trial.value.is_(None))
        if after is not None and after.value is None:
            nulls = nulls.where(Trial.number > after.number)
        rows += session.scalars(nulls.order_by(Trial.number).limit(limit + 1 - len(rows)))
    return rows


def trial_batches(session_factory: Any, *, study_id: int, batch: int = MAX_PAGE) -> Iterator[list[TrialOut]]:
    """Every trial of a study in batches by number, each batch in its own short read,
    so an export of 100,000 trials never holds them all (nor one long transaction)."""
    after = -1
    while True:
        with session_factory() as session:
            rows = list(
                session.scalars(
                    select(Trial)
                    .where(and_(Trial.study_id == study_id, Trial.number > after))
                    .order_by(Trial.number)
                    .limit(batch)
                )
            )
            page = [trial_out(row) for row in rows]
        if not page:
            return
        yield page
        after = page[-1].number
