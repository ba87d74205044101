"""``/studies/{id}/rounds``: the rounds so far, a preview of the next, and opening it now."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select

from protocol import OpenRoundRequest, RoundOut, RoundPreview, TrialCounts
from service import results, rounds, studies, study_locks
from service.caches import study_spec
from service.deps import AdminAuth, DbDep, ReadAuth
from service.errors import Conflict, InvalidInput
from service.responses import error_responses
from service.tables import Round, utcnow

router = APIRouter(prefix="/studies/{study_id}/rounds", tags=["rounds"])


def _round_out(round_: Round, counts: TrialCounts | None) -> RoundOut:
    return RoundOut(
        number=round_.number,
        status="closed" if round_.status == "closed" else "open",
        budget=round_.budget,
        box=round_.box,
        opened_at=round_.opened_at,
        closed_at=round_.closed_at,
        best_value=round_.best_value,
        best_trial_number=round_.best_trial_number,
        counts=counts or TrialCounts(configurations=0),
    )


@router.get(
    "",
    response_model=list[RoundOut],
    summary="Every round: its box, budget, counts by state and best",
    responses=error_responses(404, 422),
)
def list_rounds(study_id: int, db: DbDep, _principal: ReadAuth) -> list[RoundOut]:
    with db.reading() as session:
        studies.get_study(session, study_id=study_id)
        counts = results.counts_by_round(session, study_id=study_id)
        found = session.scalars(select(Round).where(Round.study_id == study_id).order_by(Round.number))
        return [_round_out(r, counts.get(r.number)) for r in found]


@router.get(
    "/next",
    response_model=RoundPreview,
    summary="Preview the next round's box, narrowed around the best trials so far (opens nothing)",
    responses=error_responses(404, 409, 422),
)
def preview_round(study_id: int, db: DbDep, _principal: ReadAuth) -> RoundPreview:
    with db.reading() as session:
        study = studies.get_study(session, study_id=study_id)
        if study.status == "completed":
            raise Conflict(
                f"the study is completed: no next round is planned after round {study.current_round} "
                f"(POST /studies/{study_id}/rounds with a budget opens one and runs it again)"
            )
        if study.status == "stopped":
            raise Conflict("the study is stopped: there is no next round")
        box = rounds.preview_next_round(session, study=study)
        number = study.current_round + 1
        planned = study_spec(study).rounds
        budget = planned[number - 1].trials if number <= len(planned) else None
    return RoundPreview(number=number, budget=budget, box=dict(box))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=RoundOut,
    summary="Close the current round and open the next now, optionally with an explicit box",
    responses=error_responses(404, 409, 422),
)
def open_round(study_id: int, body: OpenRoundRequest, db: DbDep, _principal: AdminAuth) -> RoundOut:
    # The study's lock: no lease is granted from a half-switched round.
    with db.process_lock, db.transaction() as session:
        study_locks.lock_study(session, study_id)
        study = studies.get_study(session, study_id=study_id)
        if study.status == "stopped":
            raise Conflict("the study is stopped; it opens no more rounds")
        try:
            opened = rounds.open_next_round(
                session, study=study, box=body.box, trials=body.trials, now=utcnow()
            )
        except ValueError as exc:
            message = str(exc)
            field = "trials" if message.startswith("trials") else "box"
            raise InvalidInput(("body", field), message) from None
    return _round_out(opened, None)
