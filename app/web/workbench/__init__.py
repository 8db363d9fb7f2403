"""The labeler's workbench: the pages labelers work in, under /work."""

from fastapi import APIRouter

from app.web.workbench import labels, pages

router = APIRouter(prefix="/work")
router.include_router(pages.router)
router.include_router(labels.router)
