"""What the import form offers from the admin's import folder."""

from __future__ import annotations

from pathlib import Path

from app.services.imports import list_import_files
from app.settings import Settings


def test_dataset_files_relative_and_sorted_hidden_and_other_files_left_out(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "imports"
    (folder / "hh" / ".cache").mkdir(parents=True)
    for name in ("b.jsonl", "a.CSV", "hh/train.parquet", "notes.md", ".secret.jsonl",
                 "hh/.cache/x.jsonl"):  # fmt: skip
        (folder / name).write_text("{}\n")
    (folder / "dir.jsonl").mkdir()
    listed = settings.model_copy(update={"import_dir": folder})
    assert list_import_files(listed, 500) == ["a.CSV", "b.jsonl", "hh/train.parquet"]
    assert len(list_import_files(listed, 2) or []) == 2


def test_no_folder_set_is_none_and_a_missing_one_is_empty(
    settings: Settings, tmp_path: Path
) -> None:
    assert list_import_files(settings.model_copy(update={"import_dir": None}), 500) is None
    missing = settings.model_copy(update={"import_dir": tmp_path / "gone"})
    assert list_import_files(missing, 500) == []
