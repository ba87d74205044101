"""``/studies/{id}/best``, ``/importance``, ``/points`` and ``/export``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from protocol import ImportanceEvaluator, ImportanceOut, StudyPoints, TrialOut
from service import export, importance, points, results, studies
from service.caches import study_spec
from service.deps import DbDep, ReadAuth
from service.errors import NotFound
from service.responses import error_responses

router = APIRouter(prefix="/studies/{study_id}", tags=["analysis"])


@router.get(
    "/best",
    response_model=TrialOut,
    summary="The best completed trial",
    responses=error_responses(404, 422),
)
def best(study_id: int, db: DbDep, _principal: ReadAuth) -> TrialOut:
    with db.reading() as session:
        study = studies.get_study(session, study_id=study_id)
        trial = results.best_trial(session, study_id=study_id, direction=study.direction)
        if trial is None:
            raise NotFound(f"study {study_id} has no completed trial yet")
        return results.trial_out(trial)


@router.get(
    "/importance",
    response_model=ImportanceOut,
    summary="Parameter importances (PED-ANOVA by default; fanova, mean_decrease_impurity on request) "
    "over completed trials, of the study or of one round (sampled beyond 1,000)",
    responses=error_responses(404, 409, 422),
)
def param_importance(
    study_id: int,
    db: DbDep,
    _principal: ReadAuth,
    evaluator: Annotated[
        ImportanceEvaluator, Query(description="The algorithm: ped_anova (Optuna's default), fanova, ...")
    ] = "ped_anova",
    round: Annotated[
        int | None, Query(ge=1, description="Only this round's trials, evaluated in its box")
    ] = None,
) -> ImportanceOut:
    with db.reading() as session:
        study = studies.get_study(session, study_id=study_id)
        return importance.param_importances(session, study=study, evaluator=evaluator, round=round)


@router.get(
    "/points",
    response_model=StudyPoints,
    summary="Completed trials to draw, per round down-sampled to at most per_round points (its best "
    "first, then an even spread), and the best value so far over time",
    responses=error_responses(404, 422),
)
def study_points(
    study_id: int,
    db: DbDep,
    _principal: ReadAuth,
    per_round: Annotated[
        int, Query(ge=1, le=points.MAX_PER_ROUND, description="The most points listed for one round")
    ] = points.DEFAULT_PER_ROUND,
) -> StudyPoints:
    with db.reading() as session:
        study = studies.get_study(session, study_id=study_id)
        return points.study_points(session, study=study, per_round=per_round)


@router.get(
    "/export",
    response_class=StreamingResponse,
    summary="Every trial as CSV (params as params_<name> columns) or a JSON array, streamed",
    responses={
        200: {
            "description": "The trials",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/TrialOut"}}
                },
            },
        },
        **error_responses(404, 422),
    },
)
def export_trials(
    study_id: int, db: DbDep, _principal: ReadAuth, format: export.ExportFormat = "csv"
) -> StreamingResponse:
    with db.reading() as session:
        study = studies.get_study(session, study_id=study_id)
        names = study_spec(study).param_order()
    filename = f"hone-study-{study_id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "csv":
        return StreamingResponse(
            export.export_csv(db, study_id=study_id, param_names=names),
            media_type="text/csv",
            headers=headers,
        )
    return StreamingResponse(
        export.export_json(db, study_id=study_id), media_type="application/json", headers=headers
    )
