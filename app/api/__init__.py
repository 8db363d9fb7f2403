"""The JSON API under /api/v1 (Bearer tokens); the same services as the web pages."""

from fastapi import APIRouter

from app.api import auth, projects, users

router = APIRouter(prefix="/api/v1")
router.include_router(auth.router)
router.include_router(users.router)
router.include_router(projects.router)
