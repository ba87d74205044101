"""What a page draws of a study of any size (``GET /studies/{id}/points``): per round a
bounded sample of its completed trials, and the steps of the best value so far.

A round of 30,000 trials cannot be sent to a browser, nor read into Python per request.
Each round's sample is two indexed queries with a ``LIMIT``: its best trials (the region
narrowing closes in on, which a uniform sample would thin out), then every k-th of the
rest by trial number. The best-so-far steps are a window function in SQL, so only the
improvements leave the database (a handful: a random order improves ~ln n times).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from protocol import BestStep, RoundPoints, StudyPoints, TrialPoint
from service.results import counts_by_round
from service.tables import Study, Trial

DEFAULT_PER_ROUND = 500
MAX_PER_ROUND = 5000
# The share of a sampled round's points given to its best trials.
BEST_SHARE = 0.25


def _completed(study_id: int, round_number: int) -> Select[Any]:
    return select(Trial.number, Trial.value, Trial.params).where(
        Trial.study_id == study_id,
        Trial.round == round_number,
        Trial.state == "complete",
        Trial.value.is_not(None),
    )


def _point(row: Row[Any]) -> TrialPoint:
    return TrialPoint(number=row.number, value=row.value, params=dict(row.params))


def _points(rows: Iterable[Row[Any]]) -> list[TrialPoint]:
    return [_point(row) for row in rows]


def _round_points(
    session: Session, *, study: Study, round_number: int, complete: int, per_round: int
) -> RoundPoints:
    query = _completed(study.id, round_number)
    if complete <= per_round:
        points = _points(session.execute(query.order_by(Trial.number)))
        return RoundPoints(round=round_number, complete=complete, sampled=False, points=points)
    best_count = max(1, int(per_round * BEST_SHARE))
    value = Trial.value.asc() if study.direction == "minimize" else Trial.value.desc()
    best = _points(session.execute(query.order_by(value, Trial.number).limit(best_count)))
    spread_count = per_round - best_count
    stride = math.ceil(complete / spread_count)
    spread = _points(
        session.execute(query.where(Trial.number % stride == 0).order_by(Trial.number).limit(spread_count))
    )
    chosen: dict[int, TrialPoint] = {}
    for point in [*best, *spread]:
        chosen.setdefault(point.number, point)
    points = sorted(chosen.values(), key=lambda point: point.number)
    return RoundPoints(round=round_number, complete=complete, sampled=True, points=points)


def best_so_far(session: Session, *, study: Study) -> list[BestStep]:
    """The completed trials that beat every trial completed before them, in finish order."""
    extreme = func.min if study.direction == "minimize" else func.max
    before = (
        extreme(Trial.value).over(order_by=(Trial.finished_at, Trial.number), rows=(None, -1)).label("before")
    )
    ordered = (
        select(Trial.number, Trial.value, Trial.finished_at, before)
        .where(
            Trial.study_id == study.id,
            Trial.state == "complete",
            Trial.value.is_not(None),
            Trial.finished_at.is_not(None),
        )
        .subquery()
    )
    better = (
        ordered.c.value < ordered.c.before
        if study.direction == "minimize"
        else ordered.c.value > ordered.c.before
    )
    rows = session.execute(
        select(ordered.c.number, ordered.c.value, ordered.c.finished_at)
        .where(ordered.c.before.is_(None) | better)
        .order_by(ordered.c.finished_at, ordered.c.number)
    )
    return [BestStep(number=row.number, value=row.value, finished_at=row.finished_at) for row in rows]


def study_points(session: Session, *, study: Study, per_round: int = DEFAULT_PER_ROUND) -> StudyPoints:
    """Every round's sampled points and the best-so-far steps of ``study``."""
    counts = counts_by_round(session, study_id=study.id)
    rounds = [
        _round_points(
            session, study=study, round_number=number, complete=counts[number].complete, per_round=per_round
        )
        for number in sorted(counts)
        if counts[number].complete > 0
    ]
    return StudyPoints(
        direction="minimize" if study.direction == "minimize" else "maximize",
        per_round=per_round,
        rounds=rounds,
        best_so_far=best_so_far(session, study=study),
    )
