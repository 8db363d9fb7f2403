"""The labeler's workbench in Chromium: keyboard-only demonstrations that survive a reload,
ranking by dragging and by keyboard, hostile responses that stay inert, and a submit retried
after the network lost its answer, stored exactly once."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Locator, Page, Route, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    Comparison,
    ComparisonItem,
    Demonstration,
    DemonstrationOrigin,
    Queue,
    QueueKind,
    Response,
    ResponseSource,
    Role,
)
from app.schemas.users import UserCreate
from app.services import users
from tests.browser.conftest import LiveServer, save_screenshot
from tests.factories import (
    make_project,
    make_prompt,
    make_queue,
    make_task,
    publish_guideline,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "lena's long password"
GUIDELINE = "# How to judge\n\nPrefer **honest** answers.\n\nRefuse harmful requests politely.\n"


@dataclass
class Seeded:
    project_id: int
    guideline_id: int
    comparison_queue: int | None = None
    demonstration_queue: int | None = None
    # Response contents per comparison task, in their stored order.
    contents: list[list[str]] = field(default_factory=list)


def seed(
    live_server: LiveServer,
    *,
    comparisons: list[list[str]] | None = None,
    demonstrations: list[str] | None = None,
    model_draft: str | None = None,
    lease_seconds: int = 900,
) -> Seeded:
    """A labeler, a project with a published guideline, and the queues asked for. The first
    demonstration task offers `model_draft` when given."""
    with live_server.db() as db:
        users.create_user(db, UserCreate(username="lena", role=Role.labeler, password=PASSWORD))
        project = make_project(db)
        guideline = publish_guideline(db, project, 1, GUIDELINE)
        seeded = Seeded(project_id=project.id, guideline_id=guideline.id)
        if comparisons:
            queue = make_queue(
                db, project, QueueKind.comparison, name="Compare", lease_seconds=lease_seconds
            )
            for index, contents in enumerate(comparisons):
                prompt = make_prompt(db, project, f"Question {index + 1}?")
                responses = [
                    Response(
                        prompt_id=prompt.id,
                        content=content,
                        source=ResponseSource.imported,
                        source_name="secret-model-x",
                    )
                    for content in contents
                ]
                db.add_all(responses)
                db.flush()
                make_task(db, queue, prompt, responses, priority=len(comparisons) - index)
            seeded.comparison_queue = queue.id
            seeded.contents = comparisons
        if demonstrations:
            queue = make_queue(
                db, project, QueueKind.demonstration, name="Write", lease_seconds=lease_seconds
            )
            for index, text in enumerate(demonstrations):
                prompt = make_prompt(db, project, text)
                offered = []
                if index == 0 and model_draft is not None:
                    draft = Response(
                        prompt_id=prompt.id,
                        content=model_draft,
                        source=ResponseSource.imported,
                        source_name="secret-model-x",
                    )
                    db.add(draft)
                    db.flush()
                    offered = [draft]
                make_task(db, queue, prompt, offered, priority=len(demonstrations) - index)
            seeded.demonstration_queue = queue.id
        db.commit()
        return seeded


def login(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill("lena")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_test_id("whoami")).to_have_text("lena · labeler")


def tab_to(page: Page, target: Locator, limit: int = 40) -> None:
    """Presses Tab until `target` has the focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError("Tab never reached the element")


def start_queue(page: Page, name: str) -> None:
    tab_to(page, page.get_by_role("button", name=f"Start {name}"))
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("workbench")).to_have_attribute("data-ready", "true")


def letters_by_content(page: Page) -> dict[str, str]:
    """The content shown under each letter (the order is shuffled per assignment)."""
    found = {}
    for letter in "ABCDEFGHI":
        box = page.get_by_test_id(f"response-text-{letter}")
        if box.count() == 0:
            break
        found[box.inner_text().strip()] = letter
    return found


def score_all(page: Page, scores: list[int]) -> None:
    """Scores A, B, … by keyboard: the first response has the focus when a task opens."""
    for index, value in enumerate(scores):
        if index:
            page.keyboard.press("j")
        page.keyboard.press(str(value))


def assignment_id(page: Page) -> int:
    return int(page.get_by_test_id("workbench").get_attribute("data-assignment-id") or 0)


def stored_ranking(db: Session, comparison: Comparison) -> dict[str, int | None]:
    rows = db.execute(
        select(Response.content, ComparisonItem.rank)
        .join(Response, Response.id == ComparisonItem.response_id)
        .where(ComparisonItem.comparison_id == comparison.id)
    ).all()
    return {content: rank for content, rank in rows}


# --- demonstrations -------------------------------------------------------------------------


def test_a_submit_right_after_a_swap_is_still_an_htmx_request(
    live_server: LiveServer, page: Page
) -> None:
    """htmx gives a swapped-in form its handlers only when it settles the swap; the workbench
    takes the new form at once. Held here at 2 s (it is 20 ms, much longer on a busy machine),
    a Ctrl+Enter in between was a plain browser POST and a whole page load."""
    seed(live_server, demonstrations=["Name a river.", "Name a lake."])
    login(page, live_server.url)
    start_queue(page, "Write")
    page.evaluate("htmx.config.defaultSettleDelay = 2000")
    loads: list[str] = []
    page.on("request", lambda r: loads.append(r.url) if r.is_navigation_request() else None)
    for answer in ("The Nile.", "Lake Baikal."):
        before = assignment_id(page)
        page.keyboard.press("w")
        page.keyboard.type(answer)
        page.keyboard.press("Control+Enter")
        if answer == "The Nile.":
            expect(page.get_by_test_id("workbench")).not_to_have_attribute(
                "data-assignment-id", str(before)
            )
    expect(page.get_by_test_id("queue-finished")).to_be_visible()
    assert loads == []


def test_keyboard_demonstration_survives_a_reload(live_server: LiveServer, page: Page) -> None:
    seed(live_server, demonstrations=["Explain tides to a child."])
    base = live_server.url
    login(page, base)
    start_queue(page, "Write")

    editor = page.get_by_test_id("editor")
    # The prompt has the focus, so "?" opens the shortcuts instead of typing into the answer.
    page.keyboard.press("?")
    expect(page.get_by_test_id("help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(editor).to_have_value("")
    page.keyboard.press("w")
    expect(editor).to_be_focused()
    page.keyboard.type("The **moon** pulls the sea.")
    expect(page.get_by_test_id("save-status")).to_have_text("Draft saved")
    # The preview is rendered (and sanitized) by the server.
    expect(page.get_by_test_id("preview").locator("strong")).to_have_text("moon")

    page.reload()
    expect(editor).to_have_value("The **moon** pulls the sea.")
    page.keyboard.press("w")
    expect(editor).to_be_focused()
    page.keyboard.type(" Twice a day.")
    # Continue the conversation: Esc leaves the editor, t adds a user turn and an answer.
    page.keyboard.press("Escape")
    page.keyboard.press("t")
    page.keyboard.type("Why twice?")
    page.keyboard.press("Tab")
    page.keyboard.type("Because the Earth turns.")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("wb-flash")).to_have_text("Submitted.")
    expect(page.get_by_test_id("queue-finished")).to_be_visible()

    with live_server.db() as db:
        (demonstration,) = db.scalars(select(Demonstration)).all()
        assert demonstration.messages == [
            {"role": "assistant", "content": "The **moon** pulls the sea. Twice a day."},
            {"role": "user", "content": "Why twice?"},
            {"role": "assistant", "content": "Because the Earth turns."},
        ]
        assert demonstration.origin == DemonstrationOrigin.written
        assert demonstration.time_spent_seconds is not None
        assert demonstration.time_spent_seconds > 0


def test_an_expired_lease_keeps_the_draft_and_is_taken_again(
    live_server: LiveServer, page: Page
) -> None:
    seeded = seed(live_server, demonstrations=["Explain tides."], lease_seconds=4)
    login(page, live_server.url)
    start_queue(page, "Write")
    first = assignment_id(page)
    page.keyboard.press("w")
    page.keyboard.type("The moon pulls the sea.")
    expect(page.get_by_test_id("lease-expired")).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("lease-expired")).to_contain_text("Your draft is kept.")
    with live_server.db() as db:
        queue = db.get(Queue, seeded.demonstration_queue)
        assert queue is not None
        queue.lease_seconds = 900
        db.commit()
    page.keyboard.press("Escape")
    page.keyboard.press("l")
    expect(page.get_by_test_id("notice")).to_have_text("The task is yours again.")
    assert assignment_id(page) != first
    expect(page.get_by_test_id("editor")).to_have_value("The moon pulls the sea.")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("queue-finished")).to_be_visible()
    with live_server.db() as db:
        (demonstration,) = db.scalars(select(Demonstration)).all()
        assert demonstration.messages == [
            {"role": "assistant", "content": "The moon pulls the sea."}
        ]
        statuses = db.scalars(select(Assignment.status).order_by(Assignment.id)).all()
        assert statuses == ["expired", "submitted"]


# --- ranking --------------------------------------------------------------------------------

FOUR = ["alpha answer", "bravo answer", "charlie answer", "delta answer"]


def test_rank_by_dragging(live_server: LiveServer, page: Page) -> None:
    seed(live_server, comparisons=[FOUR])
    login(page, live_server.url)
    start_queue(page, "Compare")
    letter = letters_by_content(page)
    score_all(page, [4, 4, 4, 4])

    # Wanted, best first: delta, bravo, alpha, charlie; built by dragging rows.
    wanted = ["delta answer", "bravo answer", "alpha answer", "charlie answer"]
    for place, content in enumerate(wanted):
        rows = page.get_by_test_id("rank-list").locator(".wb-rank-row")
        row = page.get_by_test_id(f"rank-row-{letter[content]}")
        row.drag_to(rows.nth(place))
    summary = " > ".join(letter[content] for content in wanted)
    expect(page.get_by_test_id("ranking-summary")).to_have_text(re.compile("^" + summary))
    page.get_by_test_id("submit").click()
    expect(page.get_by_test_id("queue-finished")).to_be_visible()
    with live_server.db() as db:
        (comparison,) = db.scalars(select(Comparison)).all()
        assert stored_ranking(db, comparison) == {
            content: i + 1 for i, content in enumerate(wanted)
        }


def test_rank_by_keyboard_with_a_tie_and_a_confirmed_disagreement(
    live_server: LiveServer, page: Page
) -> None:
    seed(live_server, comparisons=[FOUR])
    login(page, live_server.url)
    start_queue(page, "Compare")
    letter = letters_by_content(page)
    by_letter = {value: key for key, value in letter.items()}
    score_all(page, [6, 5, 3, 2])
    page.keyboard.press("r")
    expect(page.get_by_test_id("ranking-summary")).to_have_text(re.compile(r"^A > B > C > D"))
    # The current response is D (scored last): up two places, with Alt+↑ and with "[".
    page.keyboard.press("Alt+ArrowUp")
    page.keyboard.press("[")
    expect(page.get_by_test_id("ranking-summary")).to_have_text(re.compile(r"^A > D > B > C"))
    # Back to B with k, k; "=" ties it with the row above it.
    page.keyboard.press("k")
    page.keyboard.press("k")
    page.keyboard.press("=")
    expect(page.get_by_test_id("ranking-summary")).to_have_text(re.compile(r"^A > D = B > C"))
    save_screenshot(page, "workbench.png")

    # D (2) above C (3): pointed out, not fixed; the labeler confirms.
    page.keyboard.press("Control+Enter")
    dialog = page.get_by_test_id("confirm")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("confirm-list")).to_have_text(
        "D is ranked above C but scored lower (2 < 3)."
    )
    expect(page.get_by_test_id("confirm-cancel")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("queue-finished")).to_be_visible()
    with live_server.db() as db:
        (comparison,) = db.scalars(select(Comparison)).all()
        assert stored_ranking(db, comparison) == {
            by_letter["A"]: 1,
            by_letter["D"]: 2,
            by_letter["B"]: 2,
            by_letter["C"]: 3,
        }


# --- hostile content ------------------------------------------------------------------------

HOSTILE = [
    "<script>window.__pwned = 1</script>Script answer",
    '<img src=x onerror="window.__pwned = 2">Image answer',
    "[click me](javascript:window.__pwned=3) Link answer",
]


def test_hostile_responses_render_inert(live_server: LiveServer, page: Page) -> None:
    seed(live_server, comparisons=[HOSTILE])
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    login(page, live_server.url)
    start_queue(page, "Compare")
    letter = letters_by_content(page)
    script_box = page.get_by_test_id(
        f"response-text-{letter['<script>window.__pwned = 1</script>Script answer']}"
    )
    expect(script_box).to_have_text("<script>window.__pwned = 1</script>Script answer")
    # The javascript: link stays text: there is nothing to click.
    link_box = page.get_by_test_id(
        f"response-text-{letter['[click me](javascript:window.__pwned=3) Link answer']}"
    )
    expect(link_box).to_have_text("[click me](javascript:window.__pwned=3) Link answer")
    assert page.locator("a[href^='javascript' i]").count() == 0
    link_box.click()
    page.get_by_test_id("rank-list").hover()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img").count() == 0
    assert not [url for url in requests if url.endswith("/x")]


# --- a submit whose answer is lost ----------------------------------------------------------


def test_submit_is_retried_after_a_network_failure_and_stored_once(
    live_server: LiveServer, page: Page
) -> None:
    seed(live_server, comparisons=[FOUR, FOUR])
    login(page, live_server.url)
    start_queue(page, "Compare")
    first = assignment_id(page)
    calls: list[int] = []

    def lose_first_answer(route: Route) -> None:
        calls.append(1)
        if len(calls) == 1:
            route.fetch()  # the server stores the label …
            route.abort()  # … and the browser never hears back
        else:
            route.continue_()

    page.route("**/work/assignments/*/comparison", lose_first_answer)
    score_all(page, [7, 5, 3, 1])
    page.keyboard.press("r")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("wb-flash")).to_have_text("Submitted.")
    assert len(calls) == 2
    second = assignment_id(page)
    assert second != first
    with live_server.db() as db:
        comparisons = db.scalars(select(Comparison)).all()
        assert [found.assignment_id for found in comparisons] == [first]
        # The resent submit opened the task the first one had leased, not one more.
        active = db.scalars(select(Assignment.id).where(Assignment.status == "active")).all()
        assert active == [second]
        assert db.scalar(select(Queue.id)) is not None


# --- the Content-Security-Policy across swaps -----------------------------------------------


def test_a_resized_comment_box_breaks_no_policy_on_the_next_task(
    live_server: LiveServer, page: Page, csp_violations: list[str]
) -> None:
    """Dragging a textarea's corner makes the browser write a style attribute on it; htmx used
    to copy that onto the next task's box (setAttribute, refused by the CSP) on every swap."""
    seed(live_server, comparisons=[FOUR, FOUR])
    login(page, live_server.url)
    start_queue(page, "Compare")
    comment = page.locator("#comment")
    comment.scroll_into_view_if_needed()
    box = comment.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] - 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, box["y"] + box["height"] + 80, steps=4)
    page.mouse.up()
    assert "height" in (comment.get_attribute("style") or "")
    score_all(page, [7, 5, 3, 1])
    page.keyboard.press("r")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("wb-flash")).to_have_text("Submitted.")
    expect(page.get_by_test_id("workbench")).to_have_attribute("data-ready", "true")
    # The new task's box has the stylesheet's size, and htmx has finished settling it. (Not
    # wait_for_function with a string: its polling evaluates the string, which the CSP refuses.)
    expect(page.locator(".htmx-settling")).to_have_count(0)
    assert comment.get_attribute("style") is None
    page.evaluate("0")
    assert csp_violations == []


def test_a_busy_server_gets_the_same_submit_again_after_its_retry_after(
    live_server: LiveServer, page: Page
) -> None:
    seed(live_server, comparisons=[FOUR, FOUR])
    login(page, live_server.url)
    start_queue(page, "Compare")
    first = assignment_id(page)
    sent: list[str] = []

    def busy_once(route: Route) -> None:
        sent.append(route.request.post_data or "")
        if len(sent) == 1:
            # As app/unavailable.py answers a database too busy to take the label.
            route.fulfill(
                status=503,
                headers={"Retry-After": "2", "Content-Type": "text/plain"},
                body="Smiley is busy right now.",
            )
        else:
            route.continue_()

    page.route("**/work/assignments/*/comparison", busy_once)
    score_all(page, [7, 5, 3, 1])
    page.keyboard.press("r")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("send-status")).to_have_text(
        "The server is busy; your work is safe here. Trying again in 2 s…"
    )
    expect(page.get_by_test_id("wb-flash")).to_have_text("Submitted.", timeout=10_000)
    # The very same form twice: its idempotency key too.
    assert len(sent) == 2 and sent[0] == sent[1]
    assert "idempotency_key=wb-" in sent[0]
    with live_server.db() as db:
        stored = db.scalars(select(Comparison.assignment_id)).all()
        assert stored == [first]


def test_a_submit_the_server_refuses_shows_why_and_keeps_the_work(
    live_server: LiveServer, page: Page
) -> None:
    seed(live_server, comparisons=[FOUR])
    login(page, live_server.url)
    start_queue(page, "Compare")
    score_all(page, [7, 5, 3, 1])
    page.keyboard.press("r")
    # Text only the server refuses (the page's own checks pass it): its 422 form comes back.
    page.locator("#comment").evaluate("(box) => { box.value = 'bad \\u0000 byte'; }")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("form-error")).to_have_text(
        "comment: text may not contain NUL bytes"
    )
    # The rest of the form is as it was (HTML shows the NUL itself as U+FFFD).
    expect(page.locator("#comment")).to_have_value("bad \ufffd byte")
    expect(page.get_by_test_id("send-status")).to_have_text("")
    with live_server.db() as db:
        assert db.scalars(select(Comparison.id)).all() == []


# --- help, guideline, skip ------------------------------------------------------------------


def test_help_guideline_search_and_skip_by_keyboard(live_server: LiveServer, page: Page) -> None:
    seed(live_server, comparisons=[FOUR, FOUR])
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    login(page, live_server.url)
    start_queue(page, "Compare")
    first = assignment_id(page)

    page.keyboard.press("?")
    expect(page.get_by_test_id("help")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("help")).to_be_hidden()

    page.keyboard.press("g")
    expect(page.get_by_test_id("guideline-search")).to_be_focused()
    page.keyboard.type("honest")
    expect(page.get_by_test_id("guideline-matches")).to_have_text("1 matching paragraph")
    expect(page.locator("mark.wb-match")).to_have_text("honest")
    expect(page.get_by_test_id("guideline-body").get_by_text("Refuse harmful")).to_be_hidden()
    # The banner's button comes just before the search field.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("guideline-read")).to_have_text(
        "Marked version 1 of the guideline as read."
    )

    page.keyboard.press("s")
    expect(page.get_by_label("The prompt is unclear")).to_be_focused()
    page.keyboard.press(" ")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_test_id("wb-flash")).to_have_text(
        "Skipped. The task goes back to the queue for others."
    )
    second = assignment_id(page)
    assert second != first
    expect(page).to_have_url(f"{live_server.url}/work/assignments/{second}")
    with live_server.db() as db:
        skipped = db.get(Assignment, first)
        assert skipped is not None
        assert (skipped.status, skipped.skip_reason) == ("skipped", "unclear_prompt")
    assert errors == []
