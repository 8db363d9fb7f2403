"""Search prompts and responses on SQLite through FTS5 tables kept in step by triggers

PostgreSQL keeps the GIN indexes of 0008_search and gets nothing here. On SQLite the data
browser (app/services/search.py) searched with LIKE, reading every prompt; this adds two
contentless FTS5 tables, `prompts_fts` (rowid = prompts.id, the text of every string of the
messages, as PostgreSQL's to_tsvector of the JSONB reads them) and `responses_fts` (rowid =
responses.id, the content), filled from the rows already stored, and triggers on insert,
update and delete that keep them in step. Contentless: the text stays in its own table once;
a delete hands FTS5 the old text, which the trigger computes as the insert did. No column
sizes (columnsize=0): they serve ranking, which the browser does not do (newest first), and
cost every insert a write.

The cost is at insert: FTS5 tokenizes every prompt and response as it is stored, which slows
a SQLite import of HH-RLHF transcripts by a tenth to a third (bench/import_hh.py at
10,000 rows on a loaded 2-core machine: 2,062 to 3,022 rows/s against 3,216 to 3,270).

The tokenizer is unicode61 without removing diacritics, like PostgreSQL's 'simple'
configuration (lower case, "café" is not "cafe"). Alembic ignores the FTS tables and their
shadow tables (app.migrate.include_name).

A later batch migration on SQLite that recreates `prompts` or `responses` (copy, drop, rename)
drops these triggers with the old table: it must create them again, as `create_triggers` here
does.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKENIZER = "unicode61 remove_diacritics 0"


def _prompt_text(row: str) -> str:
    # Every string value of the messages (roles and contents), as to_tsvector(jsonb) reads them.
    return f"(SELECT group_concat(value, ' ') FROM json_tree({row}.messages) WHERE type = 'text')"


def create_triggers() -> None:
    old_prompt, new_prompt = _prompt_text("old"), _prompt_text("new")
    statements = [
        f"""CREATE TRIGGER prompts_fts_insert AFTER INSERT ON prompts BEGIN
            INSERT INTO prompts_fts (rowid, text) VALUES (new.id, {new_prompt});
        END""",
        f"""CREATE TRIGGER prompts_fts_delete AFTER DELETE ON prompts BEGIN
            INSERT INTO prompts_fts (prompts_fts, rowid, text)
            VALUES ('delete', old.id, {old_prompt});
        END""",
        f"""CREATE TRIGGER prompts_fts_update AFTER UPDATE OF id, messages ON prompts BEGIN
            INSERT INTO prompts_fts (prompts_fts, rowid, text)
            VALUES ('delete', old.id, {old_prompt});
            INSERT INTO prompts_fts (rowid, text) VALUES (new.id, {new_prompt});
        END""",
        """CREATE TRIGGER responses_fts_insert AFTER INSERT ON responses BEGIN
            INSERT INTO responses_fts (rowid, text) VALUES (new.id, new.content);
        END""",
        """CREATE TRIGGER responses_fts_delete AFTER DELETE ON responses BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, text)
            VALUES ('delete', old.id, old.content);
        END""",
        """CREATE TRIGGER responses_fts_update AFTER UPDATE OF id, content ON responses BEGIN
            INSERT INTO responses_fts (responses_fts, rowid, text)
            VALUES ('delete', old.id, old.content);
            INSERT INTO responses_fts (rowid, text) VALUES (new.id, new.content);
        END""",
    ]
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in ("prompts", "responses"):
        op.execute(
            f"CREATE VIRTUAL TABLE {table}_fts USING fts5(text, content='', tokenize='{TOKENIZER}')"
        )
    op.execute(
        f"INSERT INTO prompts_fts (rowid, text) SELECT id, {_prompt_text('prompts')} FROM prompts"
    )
    op.execute("INSERT INTO responses_fts (rowid, text) SELECT id, content FROM responses")
    create_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in ("prompts", "responses"):
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER {table}_fts_{event}")
        op.execute(f"DROP TABLE {table}_fts")
