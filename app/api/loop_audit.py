"""/api/v1 reward model audit and response lineage. Staff only (admins and researchers): a
labeler must never see where a response came from."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiStaff, SessionDep, SettingsDep
from app.schemas.audit import AuditRequeue, AuditRequeueOut, ResponseLineage, RewardAudit
from app.schemas.training import RunOut
from app.services import audit, lineage

router = APIRouter(responses=STANDARD_ERRORS, tags=["audit"])

ProjectId = Query(
    default=None,
    description="The project whose labels the reward model is held against; by default the "
    "model's own.",
)


@router.get("/models/{model_id}/audit", response_model=RewardAudit)
def reward_audit(
    model_id: int,
    db: SessionDep,
    _: ApiStaff,
    project_id: int | None = ProjectId,
    limit: int = Query(default=audit.DEFAULT_LIMIT, ge=0, le=10_000),
) -> RewardAudit:
    """Agreement of a reward model's scores with the labelers' consensus, and the pairs it
    disagrees with most confidently."""
    return audit.reward_audit(db, project_id, model_id, limit=limit)


@router.post("/models/{model_id}/audit/requeue", response_model=AuditRequeueOut)
def requeue_pairs(
    model_id: int,
    data: AuditRequeue,
    db: SessionDep,
    user: ApiStaff,
    project_id: int | None = ProjectId,
) -> AuditRequeueOut:
    """One comparison task per pair (every disagreement when `pairs` is left out)."""
    return audit.queue_audit_pairs(db, project_id, model_id, data.queue_id, data.pairs, acting=user)


@router.post(
    "/models/{model_id}/audit/score", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED
)
def launch_score_run(
    model_id: int,
    db: SessionDep,
    settings: SettingsDep,
    user: ApiStaff,
    project_id: int | None = ProjectId,
) -> RunOut:
    """A score run of the reward model over every response the labelers judged."""
    run = audit.launch_score_run(db, settings, project_id, model_id, acting=user)
    return RunOut.model_validate(run)


@router.get("/responses/{response_id}/lineage", response_model=ResponseLineage)
def response_lineage(
    response_id: int, db: SessionDep, settings: SettingsDep, _: ApiStaff
) -> ResponseLineage:
    return lineage.response_lineage(db, settings, response_id)
