"""A project's dashboard: queue progress, labelers, prompt categories, flags and cost.

What counts as a project's labels (scope.py): those made by labelers (imports are not paid
work and have no labeler), on the project's prompts; a labeler's rewrite of a response, stored
as a comparison of its own inside another comparison, is part of that comparison and is not
counted again. Agreement figures come from app/services/agreement, never recomputed here.
"""

from app.services.dashboard.content import category_counts, flag_counts
from app.services.dashboard.cost import cost_summary
from app.services.dashboard.labelers import labeler_rows, project_labelers
from app.services.dashboard.service import project_dashboard, queue_rows

__all__ = [
    "category_counts",
    "cost_summary",
    "flag_counts",
    "labeler_rows",
    "project_dashboard",
    "project_labelers",
    "queue_rows",
]
