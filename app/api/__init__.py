"""The JSON API under /api/v1 (Bearer tokens); the same services as the web pages."""

from fastapi import APIRouter, Depends

from app.api import (
    agreement,
    auth,
    browsing,
    critique,
    dashboard,
    datasets,
    demographics,
    evaluations,
    guidelines,
    judging,
    labeling,
    loop_audit,
    projects,
    prompts,
    queues,
    reviews,
    runs,
    task_events,
    users,
)
from app.api.errors import STANDARD_ERRORS
from app.deps import ids_in_range, known_query_parameters

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(ids_in_range), Depends(known_query_parameters)],
    responses=STANDARD_ERRORS,
)
# Labeling first: routes are matched in order, one by one (twice a request in FastAPI's
# included routers), and the lease and submit are most of the requests (issue 17).
router.include_router(labeling.router)
router.include_router(auth.router)
router.include_router(browsing.router)
router.include_router(users.router)
router.include_router(projects.router)
router.include_router(guidelines.router)
router.include_router(prompts.router)
router.include_router(queues.router)
router.include_router(reviews.router)
router.include_router(agreement.router)
router.include_router(dashboard.router)
router.include_router(demographics.router)
router.include_router(datasets.router)
router.include_router(runs.router)
router.include_router(task_events.router)
router.include_router(evaluations.router)
router.include_router(loop_audit.router)
router.include_router(critique.router)
router.include_router(judging.router)
