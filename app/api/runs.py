"""/api/v1 runs and models: launch, watch, cancel and resume training; the model registry.
Staff only (admins and researchers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.deps import MAX_ID, ApiStaff, SessionDep, SettingsDep
from app.schemas.training import (
    ModelNode,
    ModelOut,
    ModelRegister,
    RunCreate,
    RunMetricOut,
    RunOut,
)
from app.services import registry, runs

router = APIRouter(tags=["training"])


@router.post(
    "/projects/{project_id}/runs", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED
)
def create_run(
    project_id: int, data: RunCreate, db: SessionDep, settings: SettingsDep, user: ApiStaff
) -> RunOut:
    """Checks everything (models, snapshot kind, hyperparameters) before queueing the run."""
    return RunOut.model_validate(runs.create_run(db, settings, project_id, data, acting=user))


@router.get("/projects/{project_id}/runs", response_model=list[RunOut])
def list_runs(project_id: int, db: SessionDep, _: ApiStaff) -> list[RunOut]:
    return [RunOut.model_validate(run) for run in runs.list_runs(db, project_id)]


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: int, db: SessionDep, _: ApiStaff) -> RunOut:
    return RunOut.model_validate(runs.get_run(db, run_id))


@router.get("/runs/{run_id}/metrics", response_model=list[RunMetricOut])
def run_metrics(
    run_id: int,
    db: SessionDep,
    _: ApiStaff,
    # Bounded like ids: PostgreSQL would overflow comparing a larger number (a 500).
    after_step: Annotated[int, Query(ge=-1, le=MAX_ID)] = -1,
) -> list[RunMetricOut]:
    """The logged rows in step order; pass the last step you have as `after_step` to follow."""
    return [
        RunMetricOut.model_validate(row)
        for row in runs.run_metrics(db, run_id, after_step=after_step)
    ]


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: int, db: SessionDep, user: ApiStaff) -> RunOut:
    return RunOut.model_validate(runs.request_cancel(db, run_id, acting=user))


@router.post("/runs/{run_id}/resume", response_model=RunOut, status_code=status.HTTP_202_ACCEPTED)
def resume_run(run_id: int, db: SessionDep, settings: SettingsDep, user: ApiStaff) -> RunOut:
    return RunOut.model_validate(runs.resume_run(db, settings, run_id, acting=user))


@router.get("/projects/{project_id}/models", response_model=list[ModelOut])
def list_models(project_id: int, db: SessionDep, _: ApiStaff) -> list[ModelOut]:
    return [registry.model_out(db, model) for model in registry.list_models(db, project_id)]


@router.get("/projects/{project_id}/models/tree", response_model=list[ModelNode])
def model_tree(project_id: int, db: SessionDep, _: ApiStaff) -> list[ModelNode]:
    return registry.lineage(db, project_id)


@router.post(
    "/projects/{project_id}/models", response_model=ModelOut, status_code=status.HTTP_201_CREATED
)
def register_model(
    project_id: int, data: ModelRegister, db: SessionDep, settings: SettingsDep, user: ApiStaff
) -> ModelOut:
    model = registry.register_model(db, settings, data, acting=user, project_id=project_id)
    return registry.model_out(db, model)


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model_id: int, db: SessionDep, _: ApiStaff) -> ModelOut:
    return registry.model_out(db, registry.get_model(db, model_id))
