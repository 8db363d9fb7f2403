"""The evaluation pages: a project's evaluations with their win rates and the start form, one
evaluation's result, and the rounds of the loop. Figures come from the hand-worked judgements
of tests/services/test_evaluations.py (3 wins, 1 tie, 1 loss: 70.0%, interval 21.0 to 95.4%)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Evaluation, Run, RunKind, RunStatus, User
from app.settings import Settings
from tests.conftest import web_login
from tests.services.test_evaluations import Registry, build_registry, counts, hand_worked
from tests.services.test_rounds import build_loop
from tests.training_factories import queued_messages
from tests.web.helpers import snapshot as db_snapshot


@pytest.fixture
def world(db: Session, settings: Settings) -> Registry:
    return build_registry(db, settings)


class ByTestId(HTMLParser):
    """The whole text of every element carrying a given data-testid, children included."""

    VOID = frozenset({"input", "br", "img", "meta", "link", "hr", "rect", "line", "circle"})

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.found: list[list[str]] = []
        self.depths: list[int] = []  # open matching elements, by nesting depth
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        self.depth += 1
        if dict(attrs).get("data-testid") == self.name:
            self.depths.append(self.depth)
            self.found.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if self.depths and self.depths[-1] == self.depth:
            self.depths.pop()
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        for index in range(len(self.depths)):
            self.found[len(self.found) - len(self.depths) + index].append(data)


def texts(name: str, page: str) -> list[str]:
    parser = ByTestId(name)
    parser.feed(page)
    return [" ".join("".join(parts).split()) for parts in parser.found]


def one(name: str, page: str) -> str:
    found = texts(name, page)
    assert len(found) == 1, (name, found)
    return found[0]


def test_the_list_shows_each_evaluations_record_and_win_rate(
    client: TestClient,
    db: Session,
    world: Registry,
    researcher: User,
) -> None:
    evaluation = hand_worked(db, world)
    web_login(client, researcher.username)

    page = client.get(f"/projects/{world.project.id}/evaluations")

    assert page.status_code == 200
    assert one("evaluation-record", page.text) == "3 · 1 · 1"
    assert one("evaluation-rate", page.text) == "70.0% (95% CI 21.0% to 95.4%)"
    assert f'href="/evaluations/{evaluation.id}"' in page.text
    # The interval as a band from 20.96% to 95.36%, the rate at 70%.
    assert 'x="20.96" y="3" width="74.40"' in page.text
    assert 'x1="70.00" x2="70.00"' in page.text
    # Both policies are offered for A and B, and the held-out snapshot for the prompts.
    assert page.text.count(f'<option value="{world.sft.id}" >sft-1</option>') == 2
    assert f"#{world.held_out.id} prompts rows (2 held out)" in page.text


def test_an_evaluations_page_shows_its_result_queue_and_run(
    client: TestClient,
    db: Session,
    world: Registry,
    researcher: User,
) -> None:
    evaluation = hand_worked(db, world)
    run = Run(
        project_id=world.project.id,
        kind=RunKind.generate,
        status=RunStatus.running,
        base_model_id=world.sft.id,
        hyperparameters={},
        progress=0.25,
    )
    db.add(run)
    db.flush()
    evaluation.run_id = run.id
    db.commit()
    web_login(client, researcher.username)

    page = client.get(f"/evaluations/{evaluation.id}")

    assert page.status_code == 200
    assert one("evaluation-title", page.text) == f"Evaluation {evaluation.id}: sft-1 vs base"
    assert one("evaluation-rate", page.text) == "70.0% (95% CI 21.0% to 95.4%)"
    assert [one(name, page.text) for name in (
        "evaluation-wins", "evaluation-ties", "evaluation-losses", "evaluation-judgements",
        "evaluation-tasks", "evaluation-effective",
    )] == ["3", "1", "1", "5", "3 of 4", "2.6"]  # fmt: skip
    assert one("evaluation-queue", page.text) == "Evaluation 1"
    assert f'href="/queues/{evaluation.queue_id}"' in page.text
    assert one("evaluation-run", page.text) == f"run {run.id}"
    assert one("run-status", page.text) == "running"
    assert client.get("/evaluations/987654").status_code == 404


def test_starting_an_evaluation_from_the_form(
    client: TestClient,
    db: Session,
    settings: Settings,
    world: Registry,
    researcher: User,
) -> None:
    csrf = web_login(client, researcher.username)
    form = {
        "csrf_token": csrf,
        "model_a_id": str(world.sft.id),
        "model_b_id": str(world.base.id),
        "snapshot_id": str(world.held_out.id),
        "prompt_ids": "",
        "name": "",
        "overlap": "3",
        "repeats": "1",
        "max_new_tokens": "16",
        "temperature": "0.7",
        "seed": "",
    }

    response = client.post(f"/projects/{world.project.id}/evaluations", data=form)

    assert response.status_code == 303, response.text
    (evaluation,) = db.query(Evaluation).all()
    assert response.headers["location"] == f"/evaluations/{evaluation.id}"
    run = db.get(Run, evaluation.run_id)
    assert run is not None
    assert (run.hyperparameters["max_new_tokens"], run.hyperparameters["temperature"]) == (16, 0.7)
    assert run.hyperparameters["seed"] == 0
    assert queued_messages(settings) == 1
    page = client.get(response.headers["location"])
    assert one("notice", page.text) == (
        f"Started evaluation {evaluation.id}: its answers are being generated."
    )
    assert one("evaluation-rate", page.text) == "not judged yet"


def test_a_best_of_n_baseline_from_the_form(
    client: TestClient, db: Session, world: Registry, researcher: User
) -> None:
    csrf = web_login(client, researcher.username)
    page = client.get(f"/projects/{world.project.id}/evaluations").text
    assert f'<option value="{world.reward.id}" >rm-1</option>' in page
    form = {
        "csrf_token": csrf,
        "model_a_id": str(world.sft.id),
        "model_b_id": str(world.base.id),
        "snapshot_id": str(world.held_out.id),
        "baseline_best_of": "4",
        "reward_model_id": str(world.reward.id),
    }
    response = client.post(f"/projects/{world.project.id}/evaluations", data=form)

    assert response.status_code == 303, response.text
    (evaluation,) = db.query(Evaluation).all()
    assert evaluation.name == "sft-1 vs best of 4 of base"
    run = db.get(Run, evaluation.run_id)
    assert run is not None and run.reward_model_id == world.reward.id
    assert run.hyperparameters["compare_best_of"] == 4


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"model_b_id": "{sft}"}, "model_b_id",
         "an evaluation compares two different models; both are sft-1"),
        ({"snapshot_id": "", "prompt_ids": "3, x"}, "prompt_ids",
         "prompt ids are whole numbers, separated by commas"),
        ({"overlap": "0"}, "overlap", "Input should be greater than or equal to 1"),
        ({"snapshot_id": ""}, "form",
         "take the prompts from a snapshot's test split or a list of ids"),
        ({"baseline_best_of": "4", "reward_model_id": "{sft}"}, "reward_model_id",
         "model {sft} is a policy model, not a reward model"),
        ({"baseline_best_of": "4"}, "form",
         "a best-of-N baseline needs a reward model to pick B's best answer"),
    ],
)  # fmt: skip
def test_a_refused_form_comes_back_filled_in_and_nothing_is_stored(
    client: TestClient, db: Session, settings: Settings, world: Registry, researcher: User,
    change: dict[str, str], field: str, message: str,
) -> None:  # fmt: skip
    csrf = web_login(client, researcher.username)
    form = {
        "csrf_token": csrf,
        "model_a_id": str(world.sft.id),
        "model_b_id": str(world.base.id),
        "snapshot_id": str(world.held_out.id),
        "overlap": "2",
    }
    form.update({key: value.format(sft=world.sft.id) for key, value in change.items()})
    message = message.format(sft=world.sft.id)
    before = counts(db)

    response = client.post(f"/projects/{world.project.id}/evaluations", data=form)

    assert response.status_code == 422
    testid = "evaluation-error" if field == "form" else f"error-{field}"
    assert one(testid, response.text) == message
    assert f'name="overlap" type="text" value="{form["overlap"]}"' in response.text
    assert counts(db) == before
    assert queued_messages(settings) == 0


def test_the_rounds_page(
    client: TestClient,
    db: Session,
    world: Registry,
    researcher: User,
) -> None:
    sft_run = Run(
        project_id=world.project.id,
        kind=RunKind.sft,
        status=RunStatus.succeeded,
        base_model_id=world.base.id,
        output_model_id=world.sft.id,
        hyperparameters={},
        metrics={"eval": {"win_rate": 0.625}},
    )
    db.add(sft_run)
    evaluation = hand_worked(db, world)
    web_login(client, researcher.username)

    page = client.get(f"/projects/{world.project.id}/rounds")

    assert page.status_code == 200
    assert one("round-run", page.text) == f"run {sft_run.id} sft succeeded"
    assert one("round-model", page.text) == "sft-1 policy"
    assert one("round-policy", page.text) == "sft-1 vs base"
    # The human figure links to its evaluation; the reward model's is labelled as such.
    assert one("round-human", page.text) == "70.0% (21.0% to 95.4%, 5 judgements)"
    assert f'href="/evaluations/{evaluation.id}"' in page.text
    assert one("round-reward", page.text) == "62.5% by its reward model"
    # Before the SFT run: the judgement in the "chat" queue counts, the evaluation's are held out.
    assert one("round-data", page.text).startswith("0 demonstrations · 1 comparison · 0 pairs to ")


def test_the_rounds_page_counts_ai_labels_apart(
    client: TestClient, db: Session, settings: Settings, researcher: User
) -> None:
    # tests/services/test_rounds.py's registry: round 1 holds a judge's comparison and a
    # demonstration sft-1 wrote beside people's labels; rounds 0 and 2 hold people's only.
    project = build_loop(db, settings)["project"]
    web_login(client, researcher.username)

    page = client.get(f"/projects/{project.id}/rounds")  # type: ignore[attr-defined]

    assert page.status_code == 200
    # Each round's data: people's labels, then (round 1 only) the AI labels apart.
    assert texts("round-data", page.text) == [
        "3 demonstrations · 1 comparison · 1 pair to 2026-05-04 10:00:00 UTC",
        "1 demonstration · 2 comparisons · 4 pairs and by a model (AI labels): 1 demonstration"
        " · 1 comparison from 2026-05-04 11:00:00 UTC to 2026-05-04 20:00:00 UTC",
        "0 demonstrations · 1 comparison · 1 pair from 2026-05-05 06:00:00 UTC to 2026-05-05 "
        "16:00:00 UTC",
    ]
    assert texts("round-ai-data", page.text) == [
        "and by a model (AI labels): 1 demonstration · 1 comparison"
    ]


def test_a_project_without_rounds_says_so(
    client: TestClient,
    db: Session,
    world: Registry,
    researcher: User,
) -> None:
    web_login(client, researcher.username)
    page = client.get(f"/projects/{world.project.id}/rounds")
    assert one("no-rounds", page.text) == "No rounds yet: the first one starts with an SFT run."
    empty = client.get(f"/projects/{world.project.id}/evaluations")
    assert one("no-evaluations", empty.text) == "No evaluations yet."


def test_labelers_get_403_on_every_evaluation_page_and_form(
    client: TestClient,
    db: Session,
    settings: Settings,
    world: Registry,
    labeler: User,
) -> None:
    evaluation = hand_worked(db, world)
    csrf = web_login(client, labeler.username)
    before = db_snapshot(db)
    for path in (
        f"/projects/{world.project.id}/evaluations",
        f"/evaluations/{evaluation.id}",
        f"/projects/{world.project.id}/rounds",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert one("error-message", response.text) == "this needs the admin or researcher role"
    posted = client.post(
        f"/projects/{world.project.id}/evaluations",
        data={
            "csrf_token": csrf,
            "model_a_id": str(world.sft.id),
            "model_b_id": str(world.base.id),
            "snapshot_id": str(world.held_out.id),
        },
    )
    assert posted.status_code == 403
    assert db_snapshot(db) == before
    assert queued_messages(settings) == 0
