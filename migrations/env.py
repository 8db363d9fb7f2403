"""Alembic environment: the URL comes from the caller's config or from Smiley's settings."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import JSON

from app.db import make_engine
from app.migrate import include_name
from app.models import Base
from app.models.base import UTCDateTime
from app.settings import get_settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    url = _url()
    if url.startswith("sqlite"):
        get_settings().ensure_data_dir()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _run_with(connection)
    finally:
        engine.dispose()


def _render_item(type_: str, obj: object, autogen_context: Any) -> str | bool:
    # Migrations stay free of app imports: UTCDateTime is a plain timestamptz in the database.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, JSON) and "postgresql" in obj._variant_mapping:
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")'
    return False


def _run_with(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
