"""The browser front door: Jinja2 pages with htmx fragments, CSRF-checked on every post."""

from fastapi import APIRouter, Depends

from app.deps import ids_in_range
from app.web import (
    account,
    agreement,
    auth,
    browsing,
    dashboard,
    datasets,
    demographics,
    evaluations,
    generation,
    guidelines,
    home,
    judging,
    loop_audit,
    principles,
    projects,
    prompts,
    queues,
    reviews,
    runs,
    task_events,
    users,
    workbench,
)
from app.web.csrf import verify_csrf

router = APIRouter(
    dependencies=[Depends(verify_csrf), Depends(ids_in_range)], include_in_schema=False
)
router.include_router(auth.router)
router.include_router(home.router)
router.include_router(account.router)
router.include_router(users.router)
router.include_router(projects.router)
router.include_router(browsing.router)
router.include_router(guidelines.router)
router.include_router(queues.router)
router.include_router(prompts.router)
router.include_router(reviews.router)
router.include_router(agreement.router)
router.include_router(dashboard.router)
router.include_router(datasets.router)
router.include_router(demographics.router)
router.include_router(runs.router)
router.include_router(task_events.router)
router.include_router(evaluations.router)
router.include_router(generation.router)
router.include_router(principles.router)
router.include_router(judging.router)
router.include_router(loop_audit.router)
router.include_router(workbench.router)
