"""/api/v1 agreement: admins and researchers read the figures; admins export labelers as CSV."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiAdmin, ApiStaff, SessionDep
from app.schemas.agreement import AgreementReport, TaskConsensus
from app.services.agreement import service

router = APIRouter(responses=STANDARD_ERRORS, tags=["agreement"])


@router.get("/projects/{project_id}/agreement", response_model=AgreementReport)
def get_agreement(
    project_id: int,
    db: SessionDep,
    _: ApiStaff,
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
) -> AgreementReport:
    return service.agreement_report(
        db, project_id, queue_id=queue_id, guideline_version_id=guideline_version_id
    )


@router.get(
    "/projects/{project_id}/agreement/labelers.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per labeler."}},
)
def get_labelers_csv(
    project_id: int,
    db: SessionDep,
    _: ApiAdmin,
    queue_id: int | None = None,
    guideline_version_id: int | None = None,
) -> Response:
    report = service.agreement_report(
        db, project_id, queue_id=queue_id, guideline_version_id=guideline_version_id
    )
    return Response(
        service.labelers_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{service.csv_name(project_id)}"'},
    )


@router.get("/tasks/{task_id}/consensus", response_model=TaskConsensus)
def get_task_consensus(task_id: int, db: SessionDep, _: ApiStaff) -> TaskConsensus:
    return service.task_consensus(db, [task_id])[0]
