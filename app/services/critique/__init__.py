"""Critique runs (Constitutional AI): a model critiques responses under a project's principles
and revises them; each revision is stored as a response with a "revision ≻ original" pair.

launching.py checks a critique run's inputs and writes what its worker reads; recording.py
stores a finished run's revisions; revisions.py reads them back for pages, the API and
snapshots. The principles themselves are app/services/principles.py's.
"""

from app.services.critique.launching import INPUT_FILE, plan_inputs
from app.services.critique.recording import OUTPUT_FILE, SOURCE_NAME, record_output
from app.services.critique.revisions import list_revisions

__all__ = [
    "INPUT_FILE",
    "OUTPUT_FILE",
    "SOURCE_NAME",
    "list_revisions",
    "plan_inputs",
    "record_output",
]
