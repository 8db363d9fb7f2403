"""The JSON API under /api/v1 (Bearer tokens); the same services as the web pages."""

from fastapi import APIRouter

from app.api import (
    agreement,
    auth,
    demographics,
    guidelines,
    labeling,
    projects,
    prompts,
    queues,
    users,
)

router = APIRouter(prefix="/api/v1")
router.include_router(auth.router)
router.include_router(users.router)
router.include_router(projects.router)
router.include_router(guidelines.router)
router.include_router(prompts.router)
router.include_router(queues.router)
router.include_router(labeling.router)
router.include_router(agreement.router)
router.include_router(demographics.router)
