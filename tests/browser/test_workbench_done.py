"""The workbench's "done when": a labeler with no instructions completes ten comparisons and
three demonstrations in a row with the keyboard alone, and every label is in the database with
its scores, ranking, flags, time spent and guideline version."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.models import (
    Comparison,
    ComparisonItem,
    Demonstration,
    DemonstrationOrigin,
    Response,
)
from tests.browser.conftest import LiveServer
from tests.browser.test_workbench import (
    assignment_id,
    letters_by_content,
    login,
    score_all,
    seed,
    start_queue,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCORES = [7, 5, 3, 1]


def test_ten_comparisons_and_three_demonstrations_by_keyboard(
    live_server: LiveServer, page: Page
) -> None:
    comparisons = [[f"task {task} answer {index}" for index in range(4)] for task in range(10)]
    seeded = seed(
        live_server,
        comparisons=comparisons,
        demonstrations=["Say hello.", "Say goodbye.", "Say thanks."],
        model_draft="Hello from the model.",
    )
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    login(page, live_server.url)
    start_queue(page, "Compare")

    # What the labeler meant, by content: scores A..D in display order, flags on the last.
    meant: dict[str, tuple[int, int, list[str]]] = {}
    for task in range(10):
        expect(page.get_by_test_id("response-A")).to_be_focused()
        letters = letters_by_content(page)
        order = sorted(letters, key=lambda content: letters[content])
        flagged = task % 3 == 0
        score_all(page, SCORES)
        if flagged:
            # f: the flags of the current response (D); Space ticks the first; Esc goes back.
            page.keyboard.press("f")
            page.keyboard.press(" ")
            page.keyboard.press("Escape")
        page.keyboard.press("r")
        for place, content in enumerate(order):
            flags = ["fails_instruction"] if flagged and place == 3 else []
            meant[content] = (SCORES[place], place + 1, flags)
        before = assignment_id(page)
        page.keyboard.press("Control+Enter")
        expect(page.get_by_test_id("wb-flash")).to_have_text("Submitted.")
        if task < 9:
            expect(page.get_by_test_id("workbench")).not_to_have_attribute(
                "data-assignment-id", str(before)
            )
    expect(page.get_by_test_id("queue-finished")).to_be_visible()
    expect(page.get_by_test_id("back-home")).to_be_focused()
    page.keyboard.press("Enter")

    start_queue(page, "Write")
    # The first offers the model's draft: d starts from it, the labeler corrects it.
    expect(page.locator(".wb-prompt")).to_be_focused()
    page.keyboard.press("d")
    expect(page.get_by_test_id("editor")).to_have_value("Hello from the model.")
    page.keyboard.press("Control+End")
    page.keyboard.type(" Corrected by hand.")
    for text in ("Goodbye, and take care.", "Thank you very much."):
        before = assignment_id(page)
        page.keyboard.press("Control+Enter")
        expect(page.get_by_test_id("workbench")).not_to_have_attribute(
            "data-assignment-id", str(before)
        )
        expect(page.get_by_test_id("wb-flash")).to_have_text("Submitted.")
        expect(page.get_by_test_id("editor")).to_have_value("")
        page.keyboard.press("w")
        expect(page.get_by_test_id("editor")).to_be_focused()
        page.keyboard.type(text)
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("queue-finished")).to_be_visible()

    # Nothing the page did was refused by the Content-Security-Policy or failed.
    assert errors == []
    with live_server.db() as db:
        stored = db.scalars(select(Comparison).order_by(Comparison.id)).all()
        assert len(stored) == 10
        for comparison in stored:
            assert comparison.guideline_version_id == seeded.guideline_id
            assert comparison.time_spent_seconds is not None
            assert comparison.time_spent_seconds > 0
            assert comparison.all_unacceptable is False
            items = db.execute(
                select(Response.content, ComparisonItem.score, ComparisonItem.rank)
                .join(Response, Response.id == ComparisonItem.response_id)
                .where(ComparisonItem.comparison_id == comparison.id)
            ).all()
            flags = db.execute(
                select(Response.content, ComparisonItem.flags)
                .join(Response, Response.id == ComparisonItem.response_id)
                .where(ComparisonItem.comparison_id == comparison.id)
            ).all()
            assert len(items) == 4
            for (content, score, rank), (_, flagged) in zip(items, flags, strict=True):
                assert (score, rank, flagged) == meant[content]
        demonstrations = db.scalars(select(Demonstration).order_by(Demonstration.id)).all()
        assert [found.messages for found in demonstrations] == [
            [{"role": "assistant", "content": "Hello from the model. Corrected by hand."}],
            [{"role": "assistant", "content": "Goodbye, and take care."}],
            [{"role": "assistant", "content": "Thank you very much."}],
        ]
        assert [found.origin for found in demonstrations] == [
            DemonstrationOrigin.edited_draft,
            DemonstrationOrigin.written,
            DemonstrationOrigin.written,
        ]
        assert demonstrations[0].draft_response_id is not None
        for demonstration in demonstrations:
            assert demonstration.guideline_version_id == seeded.guideline_id
            assert demonstration.time_spent_seconds is not None
            assert demonstration.time_spent_seconds > 0
