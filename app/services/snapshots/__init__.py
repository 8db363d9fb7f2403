"""Immutable, content-hashed dataset snapshots in TRL's formats (and raw/KTO exports).

filters.py: what can be selected and the SQL for it; rows.py, preference.py, judgements.py:
the rows of each kind; formats.py: their shapes, canonical JSON and the train/test split;
writers.py: the files; service.py: the functions routes and the CLI call.
"""

from app.services.snapshots.service import (
    create_snapshot,
    export_judgements,
    get_snapshot,
    list_snapshots,
    preview_rows,
    supersede_snapshot,
)

__all__ = [
    "create_snapshot",
    "export_judgements",
    "get_snapshot",
    "list_snapshots",
    "preview_rows",
    "supersede_snapshot",
]
