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
            if url.startswith("sqlite"):
                # Batch mode rebuilds a table on SQLite (copy, DROP, rename), and with foreign
                # keys on, the DROP deletes the old table's rows first, cascading to every
                # table that refers to it ON DELETE CASCADE: rebuilding `runs` emptied
                # `run_metrics`. SQLite's recipe for a schema change: keys off (only outside a
                # transaction, so on the driver's connection before anything begins), every
                # key checked before the commit (_run_with). The engine is disposed after, so
                # no connection with keys off is ever reused.
                _sqlite_foreign_keys_off(connection)
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
    sqlite = connection.dialect.name == "sqlite"
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
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"a migration broke foreign keys, nothing changed: {broken[:5]}")


def _sqlite_foreign_keys_off(connection: Any) -> None:
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    if driver.execute("PRAGMA foreign_keys").fetchone()[0] != 0:
        raise RuntimeError("SQLite would not turn foreign keys off: a transaction is open")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
