"""The JSON API under /api/v1 (Bearer tokens); the same services as the web pages."""

from fastapi import APIRouter, Depends

from app.api import (
    agreement,
    auth,
    dashboard,
    datasets,
    demographics,
    guidelines,
    labeling,
    projects,
    prompts,
    queues,
    runs,
    users,
)
from app.deps import ids_in_range

router = APIRouter(prefix="/api/v1", dependencies=[Depends(ids_in_range)])
router.include_router(auth.router)
router.include_router(users.router)
router.include_router(projects.router)
router.include_router(guidelines.router)
router.include_router(prompts.router)
router.include_router(queues.router)
router.include_router(labeling.router)
router.include_router(agreement.router)
router.include_router(dashboard.router)
router.include_router(demographics.router)
router.include_router(datasets.router)
router.include_router(runs.router)
