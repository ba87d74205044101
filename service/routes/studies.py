"""``/studies``: create, list, read, delete, and pause/resume/stop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from protocol import StudyDetail, StudyStatus, StudySummary
from service import studies
from service.deps import AdminAuth, DbDep, ReadAuth
from service.responses import error_responses
from service.spec import StudySpec
from service.tables import utcnow

router = APIRouter(prefix="/studies", tags=["studies"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyDetail,
    summary="Create a study from its spec",
    responses=error_responses(409, 422),
)
def create_study(spec: StudySpec, db: DbDep, _principal: AdminAuth) -> StudyDetail:
    study = studies.create_study(db, spec=spec, now=utcnow())
    with db.reading() as session:
        return studies.detail(session, study=study)


@router.get(
    "",
    response_model=list[StudySummary],
    summary="List studies with their counts and best trial",
    responses=error_responses(422),
)
def list_studies(
    db: DbDep,
    _principal: ReadAuth,
    status: StudyStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[StudySummary]:
    with db.reading() as session:
        return studies.list_studies(session, status=status, limit=limit, offset=offset)


@router.get(
    "/{study_id}",
    response_model=StudyDetail,
    summary="A study's status, direction, counts by state, best trial, current round and spec",
    responses=error_responses(404, 422),
)
def get_study(study_id: int, db: DbDep, _principal: ReadAuth) -> StudyDetail:
    with db.reading() as session:
        return studies.detail(session, study=studies.get_study(session, study_id=study_id))


@router.delete(
    "/{study_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a study, its trials and rounds (in Optuna too)",
    responses=error_responses(404, 422),
)
def delete_study(study_id: int, db: DbDep, _principal: AdminAuth) -> Response:
    studies.delete_study(db, study_id=study_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _action(action: studies.Action, summary: str) -> None:
    @router.post(
        f"/{{study_id}}/{action}",
        response_model=StudyDetail,
        summary=summary,
        name=f"{action}_study",
        responses=error_responses(404, 409, 422),
    )
    def change(study_id: int, db: DbDep, _principal: AdminAuth) -> StudyDetail:
        study = studies.change_status(db, study_id=study_id, action=action, now=utcnow())
        with db.reading() as session:
            return studies.detail(session, study=study)


_action("pause", "Pause: no new trials are leased; running ones finish")
_action("resume", "Resume a paused study")
_action("stop", "Stop for good: no new trials; running ones finish")
