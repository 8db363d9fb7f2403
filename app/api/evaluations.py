"""/api/v1 side-by-side evaluations and the rounds of the loop. Staff only (admins and
researchers): labelers judge the evaluation's tasks without being told whose answer is whose,
so they must not read which model won."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.api.errors import STANDARD_ERRORS
from app.deps import ApiStaff, SessionDep, SettingsDep
from app.schemas.evaluations import EvaluationCreate, EvaluationOut, RoundOut
from app.services import evaluations, rounds

router = APIRouter(responses=STANDARD_ERRORS, tags=["evaluations"])


@router.post(
    "/projects/{project_id}/evaluations",
    response_model=EvaluationOut,
    status_code=status.HTTP_202_ACCEPTED,
)
def create_evaluation(
    project_id: int, data: EvaluationCreate, db: SessionDep, settings: SettingsDep, user: ApiStaff
) -> EvaluationOut:
    """Checks both models and the prompts, then stores the evaluation's queue and queues the
    generation run that fills it."""
    evaluation = evaluations.create_evaluation(db, settings, project_id, data, acting=user)
    return evaluations.evaluation_out(db, evaluation)


@router.get("/projects/{project_id}/evaluations", response_model=list[EvaluationOut])
def list_evaluations(project_id: int, db: SessionDep, _: ApiStaff) -> list[EvaluationOut]:
    return [
        evaluations.evaluation_out(db, evaluation)
        for evaluation in evaluations.list_evaluations(db, project_id)
    ]


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationOut)
def get_evaluation(evaluation_id: int, db: SessionDep, _: ApiStaff) -> EvaluationOut:
    """With its result so far: wins, ties and losses of A, the win rate and its interval."""
    return evaluations.evaluation_out(db, evaluations.get_evaluation(db, evaluation_id))


@router.get("/projects/{project_id}/rounds", response_model=list[RoundOut])
def list_rounds(project_id: int, db: SessionDep, _: ApiStaff) -> list[RoundOut]:
    return rounds.project_rounds(db, project_id)
