"""/api/v1 AI judges: each judge against the people, sending its disagreements back for a
human label, and the versioned judge template. Staff only (admins and researchers). A judge
run is launched like any run: POST /projects/{id}/runs with kind "judge"."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from app.api.errors import STANDARD_ERRORS
from app.deps import MAX_ID, ApiStaff, SessionDep
from app.schemas.judging import (
    JudgeAgreementReport,
    JudgeTemplateCreate,
    JudgeTemplateOut,
    SendBackTasks,
    SentBackTasks,
)
from app.services.judging import agreement, sending, templates

router = APIRouter(responses=STANDARD_ERRORS, tags=["judges"])


@router.get("/projects/{project_id}/agreement/judges", response_model=JudgeAgreementReport)
def judge_agreement(
    project_id: int,
    db: SessionDep,
    _: ApiStaff,
    queue_id: int | None = Query(default=None, ge=1, le=MAX_ID),
    limit: int = Query(default=agreement.DEFAULT_LIMIT, ge=0, le=10_000),
) -> JudgeAgreementReport:
    """Each judge (model and template version) against the labelers' consensus: agreement
    overall, per prompt category and per queue with a 95% interval, and its `limit` most
    confident disagreements."""
    return agreement.judge_report(db, project_id, queue_id=queue_id, limit=limit)


@router.post("/projects/{project_id}/agreement/judges/send-back", response_model=SentBackTasks)
def send_back(project_id: int, data: SendBackTasks, db: SessionDep, _: ApiStaff) -> SentBackTasks:
    """Ask for one more human label on each task (its overlap grows by one); all or none."""
    return SentBackTasks(task_ids=sending.send_back_tasks(db, project_id, data.task_ids))


@router.get("/projects/{project_id}/judge-templates", response_model=list[JudgeTemplateOut])
def list_templates(project_id: int, db: SessionDep, _: ApiStaff) -> list[JudgeTemplateOut]:
    """The project's judge template versions, newest first."""
    return [JudgeTemplateOut.model_validate(t) for t in templates.list_templates(db, project_id)]


@router.post(
    "/projects/{project_id}/judge-templates",
    response_model=JudgeTemplateOut,
    status_code=status.HTTP_201_CREATED,
)
def save_template(
    project_id: int, data: JudgeTemplateCreate, db: SessionDep, user: ApiStaff
) -> JudgeTemplateOut:
    """A new version of the judge template (versions are never edited)."""
    return JudgeTemplateOut.model_validate(templates.save_template(db, project_id, data, user))
