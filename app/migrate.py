"""Run Alembic from inside the package, so `smiley db upgrade` works from any folder."""

from __future__ import annotations

import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# SQLite's FTS5 tables of migration 0010 (and the shadow tables FTS5 keeps for each): made by
# the migration, not the models, so autogenerate and `alembic check` must not see them.
FTS_TABLE = re.compile(r"(prompts|responses)_fts(_(data|idx|docsize|config|content))?")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's include_name hook: every name but the FTS tables."""
    return not (type_ == "table" and name is not None and FTS_TABLE.fullmatch(name))


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        # ConfigParser treats % as interpolation; URLs may hold %-escaped passwords.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
