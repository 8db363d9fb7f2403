"""The "Generate samples" page: the form offers the project's models and queues, a good post
queues one generate run with exactly the settings posted, every refusal comes back next to its
field with nothing stored or queued; and the links to the loop's pages."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Model, ModelRole, Project, Prompt, Queue, QueueKind, Run, RunKind, User
from app.settings import Settings
from tests.conftest import web_login
from tests.factories import make_project, make_prompt, make_queue, make_task
from tests.training_factories import make_model, queued_messages
from tests.web.helpers import snapshot as db_snapshot
from tests.web.test_evaluations_pages import one


@dataclass
class World:
    project: Project
    policy: Model
    previous: Model
    reward: Model
    ranking: Queue  # comparison
    writing: Queue  # demonstration, whose tasks hold the prompts
    prompts: list[Prompt]


@pytest.fixture
def world(db: Session, settings: Settings) -> World:
    project = make_project(db, "Support bot")
    other = make_project(db, "Elsewhere")
    previous = make_model(db, settings, "policy-0", project=project)
    policy = make_model(db, settings, "policy-1", base=previous, project=project)
    reward = make_model(db, settings, "rm-1", ModelRole.reward, base=previous, project=project)
    make_model(db, settings, "not-ours", project=other)
    make_queue(db, other, name="Their ranking")
    ranking = make_queue(db, project, name="Ranking")
    writing = make_queue(db, project, QueueKind.demonstration, name="Writing")
    prompts = [make_prompt(db, project, text) for text in ("Say hi.", "Say bye.")]
    for prompt in prompts:
        make_task(db, writing, prompt)
    db.commit()
    return World(project, policy, previous, reward, ranking, writing, prompts)


def options(page: str, select_id: str) -> list[tuple[str, str]]:
    """(value, text) of each option of a select, in page order."""
    found = re.search(rf'<select id="{select_id}" name="{select_id}">(.*?)</select>', page, re.S)
    assert found is not None, select_id
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', found.group(1))


def hrefs(testid: str, page: str) -> list[str]:
    return re.findall(rf'<a href="([^"]*)" data-testid="{testid}"[ >]', page)


def good_form(world: World, csrf: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "base_model_id": str(world.policy.id),
        "reward_model_id": str(world.reward.id),
        "prompt_queue_id": str(world.writing.id),
        "snapshot_id": "",
        "split": "all",
        "prompt_ids": "",
        "prompt_limit": "",
        "selection": "random",
        "samples_per_prompt": "3",
        "repeats": "2",
        "temperature": "0.7",
        "top_p": "0.9",
        "max_new_tokens": "48",
        "seed": "7",
        "target_queue_id": str(world.ranking.id),
        "compare_model_id": str(world.previous.id),
        "include_demonstration": "on",
    }


def test_the_form_offers_the_projects_models_and_queues(
    client: TestClient, world: World, researcher: User
) -> None:
    web_login(client, researcher.username)

    page = client.get(f"/projects/{world.project.id}/generate")

    assert page.status_code == 200
    policies = [("", "— choose —"), (str(world.previous.id), "policy-0"),
                (str(world.policy.id), "policy-1")]  # fmt: skip
    assert options(page.text, "base_model_id") == policies
    assert options(page.text, "reward_model_id") == [
        ("", "— none —"),
        (str(world.reward.id), "rm-1"),
    ]
    assert options(page.text, "compare_model_id") == [("", "— no other model —"), *policies[1:]]
    # Prompts from any queue of the project; samples only to a comparison queue.
    assert options(page.text, "prompt_queue_id") == [
        ("", "— none —"),
        (str(world.ranking.id), "Ranking (comparison)"),
        (str(world.writing.id), "Writing (demonstration)"),
    ]
    assert options(page.text, "target_queue_id") == [
        ("", "— none —"),
        (str(world.ranking.id), "Ranking"),
    ]
    # A fresh form shows the schema's defaults.
    assert '<input id="samples_per_prompt" name="samples_per_prompt" type="text" value="4">' in (
        page.text
    )
    assert '<input id="temperature" name="temperature" type="text" value="1.0">' in page.text
    assert 'name="best_of_n" value="on" >' in page.text


def test_a_good_post_queues_one_generate_run_with_the_settings_posted(
    client: TestClient, db: Session, settings: Settings, world: World, researcher: User
) -> None:
    csrf = web_login(client, researcher.username)

    response = client.post(f"/projects/{world.project.id}/generate", data=good_form(world, csrf))

    assert response.status_code == 303, response.text
    run = db.scalars(select(Run)).one()
    assert response.headers["location"] == f"/runs/{run.id}"
    assert (run.kind, run.project_id, run.base_model_id, run.reward_model_id, run.snapshot_id) == (
        RunKind.generate, world.project.id, world.policy.id, world.reward.id, None
    )  # fmt: skip
    assert run.created_by_id == researcher.id
    assert run.hyperparameters == {
        "samples_per_prompt": 3,
        "repeats": 2,
        "max_new_tokens": 48,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 7,
        "best_of_n": False,
        "prompt_queue_id": world.writing.id,
        "prompt_ids": None,
        "split": "all",
        "prompt_limit": None,
        "selection": "random",
        "target_queue_id": world.ranking.id,
        "include_demonstration": True,
        "compare_model_id": world.previous.id,
        "use_vllm": None,
        "compare_best_of": 1,
    }
    assert queued_messages(settings) == 1
    written = settings.data_dir / "runs" / str(run.id) / "input" / "prompts.jsonl"
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert [row["prompt_id"] for row in rows] == [prompt.id for prompt in world.prompts]
    # The run's page says so, and links to the queue that gets the tasks.
    page = client.get(response.headers["location"]).text
    assert one("notice", page) == f"Queued run {run.id}: the samples are being generated."
    assert hrefs("run-target-queue", page) == [f"/queues/{world.ranking.id}"]
    assert one("run-target-queue", page) == f"queue {world.ranking.id}"


def test_best_of_n_from_a_list_of_prompts(
    client: TestClient, db: Session, settings: Settings, world: World, admin: User
) -> None:
    csrf = web_login(client, admin.username)
    form = good_form(world, csrf) | {
        "prompt_queue_id": "",
        "prompt_ids": f"{world.prompts[1].id}, {world.prompts[0].id}",
        "best_of_n": "on",
        "samples_per_prompt": "8",
        "compare_model_id": "",
        "include_demonstration": "",
    }

    response = client.post(f"/projects/{world.project.id}/generate", data=form)

    assert response.status_code == 303, response.text
    run = db.scalars(select(Run)).one()
    params = run.hyperparameters
    assert (params["best_of_n"], params["samples_per_prompt"], params["prompt_queue_id"]) == (
        True, 8, None
    )  # fmt: skip
    assert params["prompt_ids"] == [world.prompts[1].id, world.prompts[0].id]
    assert (params["compare_model_id"], params["include_demonstration"]) == (None, False)
    assert queued_messages(settings) == 1


@pytest.mark.parametrize(
    ("change", "field", "message", "status"),
    [
        ({"samples_per_prompt": "1", "compare_model_id": "", "include_demonstration": ""}, "form",
         "hyperparameters: a comparison task needs two answers to compare: samples_per_prompt "
         "must be at least 2 (or set compare_model_id)", 422),
        ({"reward_model_id": "{previous}"}, "reward_model_id",
         "model {previous} is a policy model, not a reward model", 422),
        ({"compare_model_id": "{policy}"}, "compare_model_id",
         "compare_model_id names the model that is generating: compare two different models",
         422),
        ({"prompt_queue_id": ""}, "snapshot_id",
         "take the prompts from exactly one of: a snapshot (snapshot_id), a queue "
         "(hyperparameters.prompt_queue_id) or a list (hyperparameters.prompt_ids)", 422),
        ({"base_model_id": ""}, "base_model_id", "choose the policy that writes the samples", 422),
        ({"prompt_queue_id": "", "prompt_ids": "3, x"}, "prompt_ids",
         "prompt ids are whole numbers, separated by commas", 422),
        ({"split": "test"}, "split", "split chooses part of a snapshot: give a snapshot_id", 422),
        ({"top_p": "1.5"}, "top_p",
         "hyperparameters.top_p: Input should be less than or equal to 1", 422),
        ({"target_queue_id": "987654"}, "form", "no queue with id 987654", 404),
    ],
)  # fmt: skip
def test_a_refused_post_comes_back_filled_in_and_queues_nothing(
    client: TestClient, db: Session, settings: Settings, world: World, researcher: User,
    change: dict[str, str], field: str, message: str, status: int,
) -> None:  # fmt: skip
    csrf = web_login(client, researcher.username)
    ids = {"policy": world.policy.id, "previous": world.previous.id}
    form = good_form(world, csrf) | {key: value.format(**ids) for key, value in change.items()}
    before = db_snapshot(db)

    response = client.post(f"/projects/{world.project.id}/generate", data=form)

    assert response.status_code == status
    testid = "generate-error" if field == "form" else f"error-{field}"
    assert one(testid, response.text) == message.format(**ids)
    assert response.text.count('class="field-error"') + response.text.count('class="error"') == 1
    assert '<input id="seed" name="seed" type="text" value="7">' in response.text
    assert db_snapshot(db) == before
    assert queued_messages(settings) == 0


def test_labelers_get_403_and_nothing_is_queued(
    client: TestClient, db: Session, settings: Settings, world: World, labeler: User
) -> None:
    csrf = web_login(client, labeler.username)
    before = db_snapshot(db)

    page = client.get(f"/projects/{world.project.id}/generate")
    posted = client.post(f"/projects/{world.project.id}/generate", data=good_form(world, csrf))

    assert (page.status_code, posted.status_code) == (403, 403)
    assert one("error-message", page.text) == "this needs the admin or researcher role"
    assert db_snapshot(db) == before
    assert queued_messages(settings) == 0


def test_the_project_and_runs_pages_link_to_the_loops_pages(
    client: TestClient, world: World, researcher: User
) -> None:
    web_login(client, researcher.username)
    project_id = world.project.id

    project_page = client.get(f"/projects/{project_id}").text
    runs_page = client.get(f"/projects/{project_id}/runs").text

    assert hrefs("project-runs-link", project_page) == [f"/projects/{project_id}/runs"]
    assert hrefs("project-generate-link", project_page) == [f"/projects/{project_id}/generate"]
    assert hrefs("project-evaluations-link", project_page) == [
        f"/projects/{project_id}/evaluations"
    ]
    assert hrefs("project-rounds-link", project_page) == [f"/projects/{project_id}/rounds"]
    assert hrefs("runs-generate-link", runs_page) == [f"/projects/{project_id}/generate"]
    # Only the reward model has an audit.
    assert hrefs("model-audit-link", runs_page) == [
        f"/projects/{project_id}/models/{world.reward.id}/audit"
    ]
    assert one("model-audit-link", runs_page) == "rm-1"
    for path in ("generate", "evaluations", "rounds", f"models/{world.reward.id}/audit"):
        assert client.get(f"/projects/{project_id}/{path}").status_code == 200, path


def test_a_generate_run_without_a_target_queue_links_to_none(
    client: TestClient, db: Session, world: World, researcher: User
) -> None:
    run = Run(
        project_id=world.project.id,
        kind=RunKind.generate,
        base_model_id=world.policy.id,
        hyperparameters={"prompt_queue_id": world.writing.id, "target_queue_id": None},
        metrics={"eval": {"responses": 12, "tasks": 0, "tasks_skipped": 0}},
    )
    db.add(run)
    db.commit()
    web_login(client, researcher.username)

    page = client.get(f"/runs/{run.id}").text

    assert 'data-testid="run-target-queue"' not in page
    counts = re.findall(r"<tr><th scope=\"row\"><code>(\w+)</code></th><td>(\d+)</td></tr>",
                        page.split('data-testid="run-eval"')[1].split("</table>")[0])  # fmt: skip
    assert counts == [("responses", "12"), ("tasks", "0"), ("tasks_skipped", "0")]
