"""Principles and critique runs on the web side: versions that never change once stored, what a
critique run's launch checks and writes for the worker, how its revisions are stored with their
"revision ≻ original" pairs, and how snapshots take them only when asked."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, DomainError, InvalidInput
from app.models import (
    Comparison,
    ComparisonItem,
    LabelSource,
    Model,
    Pair,
    Principle,
    Project,
    QueueKind,
    Response,
    ResponseRevision,
    ResponseSource,
    Role,
    Run,
    RunKind,
    RunStatus,
    SnapshotKind,
    User,
)
from app.schemas.critique import PrincipleCreate
from app.schemas.snapshots import SnapshotCreate, SnapshotFilters
from app.schemas.training import RunCreate
from app.services import critique, principles, runs
from app.services.snapshots import create_snapshot
from app.settings import Settings
from tests.conftest import make_user
from tests.factories import make_project, make_prompt, make_queue, make_responses, make_task
from tests.training_factories import make_model, queued_messages

WORKER = "critic@test"
HARMLESS = PrincipleCreate(
    name="harmless",
    critique_request="Identify ways the response is harmful.",
    revision_request="Rewrite the response to remove anything harmful.",
)
HONEST = PrincipleCreate(
    name="honest", critique_request="Is it true?", revision_request="Make it true."
)


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


@pytest.fixture
def rhea(db: Session) -> User:
    return make_user(db, "rhea", Role.researcher)


@pytest.fixture
def critic(db: Session, settings: Settings, project: Project) -> Model:
    return make_model(db, settings, "critic", project=project)


def launch(db: Session, settings: Settings, project: Project, user: User, **given: Any) -> Run:
    data = RunCreate(kind="critique", hyperparameters=given.pop("hyperparameters", {}), **given)
    return runs.create_run(db, settings, project.id, data, acting=user)


def input_rows(settings: Settings, run: Run) -> list[dict[str, Any]]:
    path = settings.data_dir / "runs" / str(run.id) / "input" / critique.INPUT_FILE
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- principles ------------------------------------------------------------------------------


def test_an_edit_is_a_new_version_and_the_used_text_stays(
    db: Session, project: Project, rhea: User
) -> None:
    first = principles.create_principle(db, project.id, HARMLESS, rhea)
    edited = principles.revise_principle(
        db, first.id, HARMLESS.model_copy(update={"revision_request": "Remove the harm."}), rhea
    )
    db.refresh(first)

    assert (first.version, first.retired_at is not None) == (1, True)
    assert (edited.version, edited.previous_id, edited.retired_at) == (2, first.id, None)
    assert first.revision_request == "Rewrite the response to remove anything harmful."
    assert [p.id for p in principles.list_principles(db, project.id)] == [edited.id]
    assert [p.id for p in principles.list_principles(db, project.id, history=True)] == [
        edited.id,
        first.id,
    ]
    with pytest.raises(Conflict, match=f"principle {first.id} is retired: version {edited.id}"):
        principles.revise_principle(db, first.id, HARMLESS, rhea)
    with pytest.raises(InvalidInput, match="changes nothing"):
        principles.revise_principle(
            db, edited.id, HARMLESS.model_copy(update={"revision_request": "Remove the harm."}),
            rhea,
        )  # fmt: skip
    with pytest.raises(Conflict, match="a principle named 'harmless' exists"):
        principles.create_principle(db, project.id, HARMLESS, rhea)
    # A retired name is free again.
    principles.retire_principle(db, edited.id)
    again = principles.create_principle(db, project.id, HARMLESS, rhea)
    assert (again.version, again.previous_id) == (1, None)
    assert db.scalar(select(func.count()).select_from(Principle)) == 3


# --- launching ------------------------------------------------------------------------------


def test_a_critique_run_writes_each_response_under_each_principle_and_records_the_versions(
    db: Session, settings: Settings, project: Project, rhea: User, critic: Model
) -> None:
    harmless = principles.create_principle(db, project.id, HARMLESS, rhea)
    honest = principles.create_principle(db, project.id, HONEST, rhea)
    queue = make_queue(db, project)
    prompt = make_prompt(db, project, "Tell me about knives.")
    first, second = make_responses(db, prompt, 2)
    make_task(db, queue, prompt, [second, first])
    db.commit()

    run = launch(db, settings, project, rhea, base_model_id=critic.id,
                 hyperparameters={"queue_id": queue.id})  # fmt: skip

    assert (run.kind, run.status) == (RunKind.critique, RunStatus.queued)
    assert run.hyperparameters["principle_ids"] == [harmless.id, honest.id]
    messages = [{"role": "user", "content": "Tell me about knives."}]
    assert input_rows(settings, run) == [
        {"response_id": rid, "prompt": messages, "content": content, "principle_id": p.id,
         "critique_request": p.critique_request, "revision_request": p.revision_request}
        for rid, content in ((second.id, "answer 1"), (first.id, "answer 0"))
        for p in (harmless, honest)
    ]  # fmt: skip
    assert queued_messages(settings) == 1

    chosen = launch(db, settings, project, rhea, base_model_id=critic.id,
                    hyperparameters={"response_ids": [first.id, second.id],
                                     "principle_choice": "random", "seed": 5})  # fmt: skip
    rng = random.Random(5)
    expected = [rng.choice([harmless.id, honest.id]) for _ in range(2)]
    assert [row["principle_id"] for row in input_rows(settings, chosen)] == expected


def test_bad_critique_runs_are_refused_before_anything_is_queued(
    db: Session, settings: Settings, project: Project, rhea: User, critic: Model
) -> None:
    other = make_project(db, "Other")
    foreign = principles.create_principle(db, other.id, HONEST, rhea)
    demo_queue = make_queue(db, project, QueueKind.demonstration)
    prompt = make_prompt(db, project)
    (response,) = make_responses(db, prompt, 1)
    elsewhere = make_responses(db, make_prompt(db, other, "elsewhere"), 1)[0]
    db.commit()
    ids = {"response_ids": [response.id]}

    def refused(**given: Any) -> str:
        with pytest.raises(DomainError) as caught:
            launch(db, settings, project, rhea, **given)
        return caught.value.message

    assert refused(base_model_id=critic.id, hyperparameters=ids) == (
        f"project {project.id} has no principles yet: add one on its Principles page"
    )
    harmless = principles.create_principle(db, project.id, HARMLESS, rhea)
    only = {**ids, "principle_ids": [foreign.id]}
    assert refused(base_model_id=critic.id, hyperparameters=only) == (
        f"no principle with id {foreign.id} in project {project.id}"
    )
    principles.retire_principle(db, harmless.id)
    only = {**ids, "principle_ids": [harmless.id]}
    assert refused(base_model_id=critic.id, hyperparameters=only) == (
        f"principle {harmless.id} (harmless) is retired: use its current version"
    )
    principles.create_principle(db, project.id, HARMLESS, rhea)
    assert refused(base_model_id=critic.id, hyperparameters={}) == (
        "take the responses from exactly one of: a comparison queue (hyperparameters.queue_id), "
        "a preference snapshot (snapshot_id) or a list (hyperparameters.response_ids)"
    )
    assert refused(base_model_id=critic.id, hyperparameters={"queue_id": demo_queue.id}) == (
        f"queue {demo_queue.id} is a demonstration queue: its tasks show no responses"
    )
    assert refused(base_model_id=critic.id, hyperparameters={"response_ids": [elsewhere.id]}) == (
        f"1 response(s) are not responses of project {project.id}: {elsewhere.id}"
    )
    assert refused(base_model_ref="tiny", hyperparameters=ids) == (
        "a critique run needs a registered model: every revision records the model that wrote it"
    )
    assert refused(base_model_id=critic.id, hyperparameters={**ids, "temperature": 0}) == (
        "hyperparameters.temperature: Input should be greater than 0"
    )
    assert db.scalar(select(func.count()).select_from(Run)) == 0
    assert queued_messages(settings) == 0


# --- recording ------------------------------------------------------------------------------


def finish(db: Session, settings: Settings, run: Run, rows: list[dict[str, Any]]) -> Run:
    """What the worker does: claim, write revisions.jsonl, complete."""
    assert runs.claim_run(db, run.id, WORKER) is not None
    output = settings.data_dir / "runs" / str(run.id) / "model"
    output.mkdir(parents=True)
    (output / critique.OUTPUT_FILE).write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = runs.complete_run(
        db, settings, run.id, WORKER, metrics={"critiques": float(len(rows))}, model_dir=output,
        role=None, settings_used={}, stopped=False,
    )  # fmt: skip
    assert done is not None
    return done


@pytest.fixture
def revised(
    db: Session, settings: Settings, project: Project, rhea: User, critic: Model
) -> tuple[Run, list[Response], Principle]:
    """A finished critique run over three responses: one revised, one left empty, one
    repeated unchanged (up to white space)."""
    harmless = principles.create_principle(db, project.id, HARMLESS, rhea)
    prompt = make_prompt(db, project, "How do I sharpen a knife?")
    responses = make_responses(db, prompt, 3)
    db.commit()
    run = launch(db, settings, project, rhea, base_model_id=critic.id,
                 hyperparameters={"response_ids": [r.id for r in responses]})  # fmt: skip
    row = {"principle_id": harmless.id, "critique": "It is curt."}
    done = finish(db, settings, run, [
        {**row, "response_id": responses[0].id, "revision": "Hold the blade at 20 degrees."},
        {**row, "response_id": responses[1].id, "revision": "  "},
        {**row, "response_id": responses[2].id, "revision": " answer 2\n"},
    ])  # fmt: skip
    return done, responses, harmless


def test_a_revision_becomes_a_model_response_and_a_revision_over_original_pair(
    db: Session, critic: Model, revised: tuple[Run, list[Response], Principle]
) -> None:
    run, responses, harmless = revised
    assert run.status == RunStatus.succeeded
    assert run.metrics["eval"] == {
        "critiques": 3, "revisions": 1, "revisions_empty": 1, "revisions_unchanged": 1,
    }  # fmt: skip
    (made,) = db.scalars(select(Response).where(Response.run_id == run.id))
    assert (made.content, made.source, made.model_id, made.parent_id, made.source_name) == (
        "Hold the blade at 20 degrees.", ResponseSource.model, critic.id, responses[0].id,
        "critique-revision",
    )  # fmt: skip
    revision = db.get(ResponseRevision, made.id)
    assert revision is not None
    assert (revision.original_response_id, revision.principle_id, revision.critique) == (
        responses[0].id, harmless.id, "It is curt.",
    )  # fmt: skip
    judged = db.get(Comparison, revision.comparison_id)
    assert judged is not None
    assert (judged.source, judged.model_id, judged.run_id, judged.task_id, judged.labeler_id) == (
        LabelSource.ai, critic.id, run.id, None, None,
    )  # fmt: skip
    items = db.execute(
        select(ComparisonItem.response_id, ComparisonItem.rank)
        .where(ComparisonItem.comparison_id == judged.id)
        .order_by(ComparisonItem.rank)
    ).all()
    assert items == [(made.id, 1), (responses[0].id, 2)]
    pairs = db.execute(
        select(Pair.winner_response_id, Pair.loser_response_id).where(
            Pair.comparison_id == judged.id
        )
    ).all()
    assert pairs == [(made.id, responses[0].id)]
    shown = critique.list_revisions(db, run.project_id, run_id=run.id)
    assert [(r.principle_name, r.principle_version, r.original, r.revision) for r in shown] == [
        ("harmless", 1, "answer 0", "Hold the blade at 20 degrees.")
    ]
    assert principles.revision_counts(db, [harmless.id]) == {harmless.id: 1}


def test_snapshots_take_revisions_only_when_asked(
    db: Session, settings: Settings, project: Project, rhea: User,
    revised: tuple[Run, list[Response], Principle],
) -> None:  # fmt: skip
    _, responses, _ = revised

    def rows(kind: SnapshotKind, include: bool) -> list[dict[str, Any]]:
        filters = SnapshotFilters(test_fraction=0, include_ai_revisions=include)
        data = SnapshotCreate(name=f"{kind.value} {include}", kind=kind, filters=filters)
        snapshot = create_snapshot(db, settings, project.id, data, rhea)
        path = settings.data_dir / snapshot.path / "train.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    with pytest.raises(DomainError, match="the snapshot would have no rows"):
        rows(SnapshotKind.preference, False)
    (pair,) = rows(SnapshotKind.preference, True)
    assert (pair["chosen"], pair["rejected"], pair["labeler_id"], pair["task_id"]) == (
        [{"role": "assistant", "content": "Hold the blade at 20 degrees."}],
        [{"role": "assistant", "content": "answer 0"}],
        None,
        None,
    )
    with pytest.raises(DomainError, match="the snapshot would have no rows"):
        rows(SnapshotKind.sft, False)
    (sft,) = rows(SnapshotKind.sft, True)
    assert sft == {
        "messages": [
            {"role": "user", "content": "How do I sharpen a knife?"},
            {"role": "assistant", "content": "Hold the blade at 20 degrees."},
        ],
        "prompt_id": responses[0].prompt_id,
        "demonstration_id": None,
        "task_id": None,
        "labeler_id": None,
        "guideline_version_id": None,
    }
    consensus = SnapshotCreate(
        name="c", kind="preference", source="consensus",
        filters=SnapshotFilters(include_ai_revisions=True),
    )  # fmt: skip
    with pytest.raises(DomainError, match="include_ai_revisions does not apply here"):
        create_snapshot(db, settings, project.id, consensus, rhea)


def test_a_revision_of_something_the_run_did_not_ask_stores_nothing(
    db: Session, settings: Settings, project: Project, rhea: User, critic: Model
) -> None:
    harmless = principles.create_principle(db, project.id, HARMLESS, rhea)
    prompt = make_prompt(db, project)
    asked, other = make_responses(db, prompt, 2)
    db.commit()
    run = launch(db, settings, project, rhea, base_model_id=critic.id,
                 hyperparameters={"response_ids": [asked.id]})  # fmt: skip
    row = {"principle_id": harmless.id, "critique": "c", "revision": "Better."}
    with pytest.raises(ValueError, match=f"names response {other.id} and principle"):
        finish(db, settings, run, [{**row, "response_id": asked.id},
                                   {**row, "response_id": other.id}])  # fmt: skip
    db.rollback()
    assert db.scalar(select(func.count()).select_from(ResponseRevision)) == 0
    assert (
        db.scalar(select(func.count()).select_from(Response).where(Response.run_id == run.id)) == 0
    )
