"""One hostile string in every user- and model-provided field, every page that shows one, in
headless Chromium: nothing runs, no dialog opens, nothing is requested, the CSP sees nothing to
block, and the string reads as text.

The rows are written straight to the database, past the forms' validation, as a buggy import or
a compromised worker could write them: what is stored must still be shown inert."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, Dialog, Page, Request, expect

from app.models import (
    DatasetJob,
    DatasetJobKind,
    DatasetJobStatus,
    Evaluation,
    Model,
    ModelRole,
    Principle,
    Response,
    ResponseSource,
    Role,
    Run,
    RunKind,
    RunStatus,
    Snapshot,
    SnapshotKind,
    User,
)
from app.models.base import utcnow
from app.schemas.labeling import ComparisonSubmit, ItemJudgement
from app.schemas.users import UserCreate
from app.services import assignments, drafts, leasing, users
from tests.browser.conftest import LiveServer
from tests.factories import make_project, make_prompt, make_queue, make_task, publish_guideline

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "boss password 1"
# Usernames are checked by the service (letters, digits, . _ -); one stored anyway, e.g. by an
# older version, must still be shown as text.
HOSTILE_USERNAME = '\u202e"><svg onload=window.__pwned=5>{{7*7}}'
# A right-to-left override and isolate left open (the page text after them would read
# backwards), script, handler, attribute break-out, javascript: link, htmx attributes, template
# syntax; short enough for 200-character names.
NAME = (
    "\u202e\u2067<script>window.__pwned=1</script><img src=x onerror=window.__pwned=2>"
    '"><svg onload=window.__pwned=3><a href="javascript:window.__pwned=4">j</a>'
    "<b hx-get=/logout hx-trigger=load>h</b>{{7*7}}"
)
# For longer text, also the closing tags of raw-text elements (a textarea's value, the title).
HOSTILE = "</textarea></title>" + NAME
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""

# Where a bidi control would reorder the page's own text: a text node (or the title) with one
# outside every FSI/LRI/RLI … PDI pair and outside the CSS-isolated untrusted blocks (their
# computed unicode-bidi checked too); raw-text elements and form fields hold values, not page
# text.
UNISOLATED_BIDI = r"""() => {
  const control = /[\u202a-\u202e\u2066-\u2069]/;
  const leaks = (text) => {
    let depth = 0;
    for (const char of text) {
      if ("\u2066\u2067\u2068".includes(char)) depth += 1;
      else if (char === "\u2069") depth = Math.max(0, depth - 1);
      else if (depth === 0 && "\u202a\u202b\u202d\u202e".includes(char)) return true;
    }
    return false;
  };
  const found = [];
  if (leaks(document.title)) found.push("title: " + document.title);
  for (const box of document.querySelectorAll(".untrusted")) {
    const bidi = getComputedStyle(box).unicodeBidi;
    if (bidi !== "isolate") found.push("untrusted block with unicode-bidi " + bidi);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!control.test(node.data)) continue;
    if (node.parentElement.closest(".untrusted, textarea, script, style")) continue;
    if (leaks(node.data)) found.push(node.parentElement.outerHTML.slice(0, 120));
  }
  return found;
}"""


@dataclass
class Seeded:
    project: int
    queue: int
    snapshot: int
    run: int
    reward_model: int
    model_response: int
    human_response: int
    dataset_job: int
    evaluation: int
    drafted: int


@dataclass
class Watched:
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def seed(live_server: LiveServer) -> Seeded:
    with live_server.db() as db:
        boss, _ = users.create_user(
            db, UserCreate(username="boss", role=Role.admin, password=PASSWORD)
        )
        labeler, _ = users.create_user(
            db, UserCreate(username="lab", role=Role.labeler, password=PASSWORD)
        )
        for user in (boss, labeler):
            user.display_name = NAME
        project = make_project(db, NAME, creator=boss)
        project.description = HOSTILE
        publish_guideline(db, project, 1, body=HOSTILE)
        db.add(
            Principle(project_id=project.id, name=NAME, critique_request=HOSTILE,
                      revision_request=HOSTILE, created_by_id=boss.id)
        )  # fmt: skip
        queue = make_queue(db, project, name=NAME)
        prompt = make_prompt(db, project, HOSTILE)
        reward = Model(name=NAME, role=ModelRole.reward, path=NAME)
        db.add(reward)
        db.flush()
        snapshot = Snapshot(
            project_id=project.id,
            name=NAME,
            kind=SnapshotKind.preference,
            filters={"note": HOSTILE},
            content_hash="0" * 64,
            row_counts={"train": 1},
            path="snapshots/hostile",
        )
        db.add(snapshot)
        db.flush()
        run = Run(
            project_id=project.id,
            kind=RunKind.reward,
            status=RunStatus.failed,
            base_model_ref=NAME,
            snapshot_id=snapshot.id,
            hyperparameters={"note": HOSTILE},
            error=HOSTILE,
            traceback=HOSTILE,
            started_at=utcnow(),
            finished_at=utcnow(),
        )
        db.add(run)
        db.flush()
        from_model = Response(
            prompt_id=prompt.id,
            content=HOSTILE,
            source=ResponseSource.model,
            source_name=NAME,
            model_id=reward.id,
            run_id=run.id,
        )
        from_human = Response(
            prompt_id=prompt.id,
            content=HOSTILE,
            source=ResponseSource.human,
            source_name=NAME,
            author_id=labeler.id,
        )
        db.add_all([from_model, from_human])
        db.flush()
        make_task(db, queue, prompt, [from_model, from_human])
        job = DatasetJob(
            project_id=project.id,
            kind=DatasetJobKind.import_rows,
            status=DatasetJobStatus.failed,
            created_by_id=boss.id,
            params={"name": HOSTILE},
            source_name=NAME,
            error=HOSTILE,
            result=None,
            started_at=utcnow(),
            finished_at=utcnow(),
        )
        db.add(job)
        policy = Model(name=NAME[:190] + " baseline", role=ModelRole.policy, hub_name="o/n")
        db.add(policy)
        db.flush()
        evaluation_queue = make_queue(db, project, name=NAME[:190] + " eval")
        evaluation = Evaluation(
            project_id=project.id,
            name=NAME,
            model_a_id=reward.id,
            model_b_id=policy.id,
            queue_id=evaluation_queue.id,
            run_id=run.id,
        )
        db.add(evaluation)
        weird = User(
            username=HOSTILE_USERNAME,
            display_name=NAME,
            role=Role.labeler,
            password_hash=boss.password_hash,
        )
        db.add(weird)
        # A second task for `weird` to judge with a hostile comment, and one for `lab` to
        # find a hostile draft on.
        for _ in range(2):
            extra = make_prompt(db, project, HOSTILE + str(_))
            pair = [
                Response(prompt_id=extra.id, content=HOSTILE, source=ResponseSource.imported)
                for _ in range(2)
            ]
            db.add_all(pair)
            db.flush()
            make_task(db, queue, extra, pair, priority=10)
        db.commit()
        judged = leasing.lease_next_task(db, queue.id, weird)
        assert judged is not None
        shown = assignments.assignment_view(db, judged)[3]
        assignments.submit_comparison(
            db,
            judged.id,
            weird,
            ComparisonSubmit(
                items=[
                    ItemJudgement(response_id=response.id, rank=rank, score=5)
                    for rank, response in enumerate(shown, start=1)
                ],
                comment=HOSTILE,
            ),
        )
        drafted = leasing.lease_next_task(db, queue.id, labeler)
        assert drafted is not None
        drafts.save_draft(
            db, drafted.id, labeler, {"form": {"comment": [HOSTILE], "note_A": [HOSTILE]}}
        )
        return Seeded(
            project=project.id,
            queue=queue.id,
            snapshot=snapshot.id,
            run=run.id,
            reward_model=reward.id,
            model_response=from_model.id,
            human_response=from_human.id,
            dataset_job=job.id,
            evaluation=evaluation.id,
            drafted=drafted.id,
        )


def watch(page: Page) -> Watched:
    found = Watched()
    page.add_init_script(RECORD_VIOLATIONS)

    def on_request(request: Request) -> None:
        found.requests.append(request.url)

    def on_dialog(dialog: Dialog) -> None:
        found.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("request", on_request)
    page.on("dialog", on_dialog)
    return found


def login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_test_id("whoami")).to_be_visible()


def check_inert(page: Page, base: str, path: str, watched: Watched, shown: bool) -> None:
    response = page.goto(f"{base}{path}")
    assert response is not None and response.status == 200, path
    page.wait_for_load_state("networkidle")
    assert page.evaluate("typeof window.__pwned") == "undefined", path
    assert page.evaluate("window.__violations") == [], path
    assert (
        page.locator("svg[onload], img[onerror], a[href^='javascript:'], [hx-trigger=load]").count()
        == 0
    ), path
    assert page.evaluate(UNISOLATED_BIDI) == [], path
    if shown:
        assert "<script>window.__pwned=1</script>" in page.inner_text("body"), path
        assert "{{7*7}}" in page.inner_text("body"), path


def test_hostile_text_is_inert_on_every_page(live_server: LiveServer, browser: Browser) -> None:
    seeded = seed(live_server)
    drive_every_page(browser, live_server.url, seeded)


def drive_every_page(browser: Browser, base: str, seeded: Seeded) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        watched = watch(page)
        login(page, base, "boss")
        p = seeded.project
        for path, shown in (
            ("/", True),
            ("/projects", True),
            (f"/projects/{p}", True),
            (f"/projects/{p}/edit", True),
            (f"/projects/{p}/guidelines", False),
            (f"/projects/{p}/guidelines/1", True),
            (f"/projects/{p}/queues", True),
            (f"/queues/{seeded.queue}", True),
            (f"/projects/{p}/agreement", True),
            (f"/projects/{p}/dashboard", True),
            (f"/projects/{p}/datasets", True),
            (f"/snapshots/{seeded.snapshot}", True),
            (f"/projects/{p}/runs", True),
            (f"/runs/{seeded.run}", True),
            (f"/projects/{p}/evaluations", True),
            (f"/evaluations/{seeded.evaluation}", True),
            (f"/dataset-jobs/{seeded.dataset_job}/row", False),
            (f"/snapshots/{seeded.snapshot}/preview", False),
            (f"/runs/{seeded.run}/live", False),
            (f"/queues/{seeded.queue}/progress", False),
            (f"/projects/{p}/rounds", True),
            (f"/projects/{p}/generate", True),
            (f"/projects/{p}/principles", True),
            (f"/projects/{p}/models/{seeded.reward_model}/audit", True),
            (f"/responses/{seeded.model_response}/lineage", True),
            (f"/responses/{seeded.human_response}/lineage", True),
            ("/admin/users", True),
            ("/admin/demographics", False),
            ("/account/tokens", False),
            ("/account/profile", False),
        ):
            check_inert(page, base, path, watched, shown)

        # The stored username reads as text where users are listed.
        page.goto(f"{base}/admin/users")
        assert HOSTILE_USERNAME in page.inner_text("body")

        # The labeler's side: home, then the workbench with the hostile prompt and responses.
        labeler_context = browser.new_context()
        labeler_page = labeler_context.new_page()
        labeler_page.set_default_timeout(10_000)
        labeler_watched = watch(labeler_page)
        login(labeler_page, base, "lab")
        check_inert(labeler_page, base, "/", labeler_watched, True)
        check_inert(
            labeler_page, base, f"/work/assignments/{seeded.drafted}", labeler_watched, True
        )
        # The hostile draft comes back into the form exactly, without breaking out of it.
        expect(labeler_page.locator("#comment")).to_have_value(HOSTILE)
        expect(labeler_page.locator("#note_A")).to_have_value(HOSTILE)
        labeler_context.close()

        for found in (watched, labeler_watched):
            assert found.dialogs == []
            paths = [url.removeprefix(base) for url in found.requests if url.startswith(base)]
            assert [path for path in paths if path.startswith(("/logout", "/x"))] == []
            assert [url for url in found.requests if not url.startswith(base)] == []
    finally:
        context.close()
