"""The home page: counts in words, and what a staff member's "Your labeling" rows lead to."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import QueueKind, User
from tests.conftest import web_login
from tests.factories import make_project, make_queue


def texts(testid: str, page: str) -> list[str]:
    found = re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</', page, re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split()) for text in found]


def test_counts_read_as_words_not_parenthesised_plurals(
    client: TestClient, db: Session, admin: User
) -> None:
    web_login(client, admin.username)
    page = client.get("/").text
    assert texts("my-counts", page) == ["0 demonstrations and 0 comparisons submitted."]
    assert "(s)" not in page
    assert re.findall(r"· (\d+ registered models?)</p>", page) == ["0 registered models"]


def test_an_admins_queue_rows_open_the_queue(client: TestClient, db: Session, admin: User) -> None:
    project = make_project(db, "Alpha", admin)
    queue = make_queue(db, project, QueueKind.comparison, name="Pairs", open_to_all=True)
    db.commit()
    web_login(client, admin.username)
    page = client.get("/").text
    row = re.search(rf'<tr data-testid="my-queue-{queue.id}">(.*?)</tr>', page, re.S)
    assert row is not None, page
    assert re.findall(
        r'<a href="([^"]+)" data-testid="open-queue"[^>]*>(\w+)</a>', row.group(1)
    ) == [(f"/queues/{queue.id}", "Open")]
    assert texts("staff-labeling-hint", page) == [
        "Labeling happens in the workbench under a labeler account; "
        "these are the queues open to you."
    ]
