"""The training pages: a project's runs, the launch form generated from the kind's schema, the
model registry's lineage tree, and a run's page whose live part polls itself until the run is
finished. Runs are built by hand and moved through the same service calls a worker makes."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.deps import get_db
from app.models import Model, ModelRole, Project, Run, RunKind, RunStatus, SnapshotKind, User
from app.services import runs
from app.services.resending import resend_lost_messages
from app.settings import Settings
from app.web.charts import line_chart
from app.web.rendering import templates
from app.web.runs import duration
from tests.conftest import web_login
from tests.factories import make_project
from tests.training_factories import (
    make_model,
    make_run,
    make_snapshot,
    model_folder,
    queued_messages,
)
from tests.web.helpers import snapshot as db_snapshot

WORKER = "gpu-1@host"


@pytest.fixture
def client(app: FastAPI, db: Session) -> Iterator[TestClient]:
    """The pages read through the test's session, and the worker's calls write with UPDATE
    statements that pass its identity map by; each request starts from the rows as stored,
    as it would with a session of its own."""

    def fresh_db() -> Iterator[Session]:
        db.expire_all()
        yield db

    app.dependency_overrides[get_db] = fresh_db
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db, "Support bot")


@pytest.fixture
def base(db: Session, settings: Settings) -> Model:
    return make_model(db, settings, "tiny-base")


# --- reading pages --------------------------------------------------------------------------


def texts(pattern: str, page: str) -> list[str]:
    return [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found)).split())
        for found in re.findall(pattern, page, re.S)
    ]


def by_testid(name: str, page: str) -> str:
    found = texts(rf'data-testid="{re.escape(name)}"[^>]*>(.*?)</', page)
    assert len(found) == 1, (name, found)
    return found[0]


def count_of(name: str, page: str) -> int:
    return len(re.findall(rf'data-testid="{re.escape(name)}"', page))


def run_rows(page: str) -> list[list[str]]:
    rows = re.findall(r'<tr data-testid="run-row"[^>]*>(.*?)</tr>', page, re.S)
    return [texts(r"<td[^>]*>(.*?)</td>", row) for row in rows]


def attribute(testid: str, name: str, page: str) -> list[str]:
    """The `name` attribute of every element with data-testid=testid, in page order."""
    tags = re.findall(rf'<[^>]*\sdata-testid="{re.escape(testid)}"[^>]*>', page)
    return [found.group(1) for tag in tags if (found := re.search(rf'\s{name}="([^"]*)"', tag))]


def notice(page: str) -> str:
    return by_testid("notice", page)


class TreeReader(HTMLParser):
    """(depth, model id) for each node of the registry tree, in page order."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.nodes: list[tuple[int, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "ul":
            self.depth += 1
        found = dict(attrs)
        if tag == "li" and found.get("data-testid") == "model-node":
            self.nodes.append((self.depth, int(found["data-model-id"] or 0)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "ul":
            self.depth -= 1


def tree(page: str) -> list[tuple[int, int]]:
    section = re.search(r'data-testid="model-tree">(.*?)</section>', page, re.S)
    assert section is not None
    reader = TreeReader()
    reader.feed(section.group(1))
    return reader.nodes


# --- runs in each state ---------------------------------------------------------------------


def succeed(db: Session, settings: Settings, run: Run) -> Run:
    runs.claim_run(db, run.id, WORKER)
    done = runs.complete_run(
        db,
        settings,
        run.id,
        WORKER,
        metrics={"eval_loss": 1.25},
        model_dir=settings.data_dir / "runs" / str(run.id) / "model",
        role=ModelRole.policy,
        settings_used={"bf16": False, "reasons": {"bf16": "cpu with a 0.1M parameters model"}},
        stopped=False,
    )
    assert done is not None
    return done


def test_the_list_shows_each_run_with_its_status_and_models(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    data = make_snapshot(db, settings, project, SnapshotKind.sft)
    queued = make_run(db, project, base, data)
    running = make_run(db, project, base, data)
    runs.claim_run(db, running.id, WORKER)
    runs.record_metrics(db, running.id, WORKER, 5, {"loss": 2.0}, 0.25)
    failed = make_run(db, project, base, data)
    runs.claim_run(db, failed.id, WORKER)
    runs.fail_run(db, failed.id, WORKER, error="CUDA out of memory", traceback=None)
    done = succeed(db, settings, make_run(db, project, base, data))
    web_login(client, researcher.username)

    page = client.get(f"/projects/{project.id}/runs").text

    snapshot_cell = f"sft rows (#{data.id})"
    assert [row[:7] for row in run_rows(page)] == [
        [str(done.id), "sft", "succeeded", "100.0%", "tiny-base", snapshot_cell,
         f"run-{done.id}-sft"],
        [str(failed.id), "sft", "failed", "0.0%", "tiny-base", snapshot_cell, "—"],
        [str(running.id), "sft", "running", "25.0%", "tiny-base", snapshot_cell, "—"],
        [str(queued.id), "sft", "queued", "0.0%", "tiny-base", snapshot_cell, "—"],
    ]  # fmt: skip
    finished = [row[8] for row in run_rows(page)]
    assert finished[2:] == ["—", "—"]
    assert all(cell.endswith(" UTC") for cell in finished[:2])
    assert attribute("run-progress", "aria-label", page) == [
        "100.0% done", "0.0% done", "25.0% done", "0.0% done"
    ]  # fmt: skip


def test_a_project_without_runs_says_so_and_the_project_page_links_here(
    client: TestClient, project: Project, admin: User
) -> None:
    web_login(client, admin.username)

    assert by_testid("no-runs", client.get(f"/projects/{project.id}/runs").text) == "No runs yet."
    assert attribute("project-runs-link", "href", client.get(f"/projects/{project.id}").text) == [
        f"/projects/{project.id}/runs"
    ]


@pytest.mark.parametrize(
    "path",
    ["/projects/{project}/runs", "/projects/{project}/runs/launch-form?kind=dpo",
     "/runs/{run}", "/runs/{run}/live"],
)  # fmt: skip
def test_labelers_may_not_see_training_pages(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    labeler: User, path: str,
) -> None:  # fmt: skip
    run = make_run(db, project, base, make_snapshot(db, settings, project))
    web_login(client, labeler.username)

    response = client.get(path.format(project=project.id, run=run.id))

    assert response.status_code == 403
    assert by_testid("error-message", response.text) == "this needs the admin or researcher role"


def test_labelers_may_not_post_training_forms(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    labeler: User,
) -> None:  # fmt: skip
    data = make_snapshot(db, settings, project)
    run = make_run(db, project, base, data)
    csrf = web_login(client, labeler.username)
    before = db_snapshot(db)

    for path, form in (
        (f"/projects/{project.id}/runs", {"kind": "sft", "base_model_id": str(base.id),
                                          "snapshot_id": str(data.id)}),
        (f"/projects/{project.id}/models", {"name": "mine", "path": "models/tiny-base"}),
        (f"/runs/{run.id}/cancel", {}),
        (f"/runs/{run.id}/resume", {}),
    ):  # fmt: skip
        response = client.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code == 403, path

    assert db_snapshot(db) == before
    assert queued_messages(settings) == 0


# --- the launch form ------------------------------------------------------------------------


def test_the_form_has_a_field_per_hyperparameter_of_the_kind(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    sft = make_snapshot(db, settings, project, SnapshotKind.sft)
    make_snapshot(db, settings, project, SnapshotKind.preference)
    web_login(client, researcher.username)

    page = client.get(f"/projects/{project.id}/runs").text

    # The steps lead, after kind, base model and snapshot; every other one waits under a
    # closed "Advanced" (issue 16).
    lead, advanced = page.split('<details class="advanced" data-testid="advanced">')
    assert re.findall(r'name="(hp\.[\w.]+)"', lead) == ["hp.max_steps"]
    assert re.findall(r'name="(hp\.[\w.]+)"', advanced) == [
        "hp.learning_rate", "hp.batch_size", "hp.gradient_accumulation_steps",
        "hp.epochs", "hp.max_length", "hp.bf16", "hp.gradient_checkpointing", "hp.lora",
        "hp.lora.r", "hp.lora.alpha", "hp.lora.dropout", "hp.lora.target_modules",
        "hp.lora.merge_adapter", "hp.save_steps", "hp.logging_steps", "hp.seed", "hp.processes",
        "hp.distributed", "hp.torch_dtype", "hp.attn_implementation", "hp.load_in_4bit",
        "hp.chat_template", "hp.packing",
    ]  # fmt: skip
    assert re.search(r'name="max_attempts"', advanced)
    # Labelled in words from the schema's titles, not snake_case names.
    assert texts(r'<label for="hp-[\w-]+" data-testid="label-hp-[\w-]+">(.*?)</label>', page) == [
        "Training steps", "Learning rate", "Batch size per device",
        "Gradient accumulation steps", "Epochs", "Longest sequence, in tokens",
        "bf16 mixed precision", "Gradient checkpointing", "LoRA adapters", "Adapter rank",
        "Adapter scale (alpha)", "Adapter dropout", "Modules to adapt",
        "Save merged full weights", "Checkpoint every so many steps",
        "Log metrics every so many steps", "Seed",
        "Processes", "Multi-process strategy", "Weights' dtype", "Attention implementation",
        "Load the base in 4 bits (QLoRA)",
        "Chat template, for a model without one",
        "Pack examples together",
    ]  # fmt: skip
    assert "<code>" not in page.split('data-testid="launch-form"')[1].split("</form>")[0]
    # Descriptions are the hints, ending in the default: what an empty field leaves.
    assert by_testid("hp-learning_rate-hint", page.replace('id="', 'data-testid="')) == (
        "Peak learning rate; None picks one by model size (5e-4 for tiny models, TRL's default "
        "otherwise). Default: the job picks."
    )
    assert by_testid("hp-seed-hint", page.replace('id="', 'data-testid="')) == (
        "Seed for weights and data. Default: 0."
    )
    assert attribute("launch-kind", "hx-get", page) == [f"/projects/{project.id}/runs/launch-form"]
    # Only sft snapshots are offered for an sft run, and no reward model is asked for.
    snapshots = re.search(r'<select id="snapshot_id"[^>]*>(.*?)</select>', page, re.S)
    assert snapshots is not None
    assert texts(r"<option[^>]*>(.*?)</option>", snapshots.group(1)) == [
        "— choose —", f"#{sft.id} sft rows (8 training rows)"
    ]  # fmt: skip
    assert 'name="reward_model_id"' not in page
    ppo = client.get(f"/projects/{project.id}/runs/launch-form?kind=ppo").text
    assert by_testid("no-snapshots", ppo) == "This project has no current prompts snapshot yet."
    assert by_testid("no-reward-models", ppo) == (
        "No reward model is registered yet: train one with a reward run, or register its folder "
        "below."
    )
    assert f'<option value="{base.id}" >tiny-base</option>' in page


def test_switching_kind_swaps_in_that_kinds_form_keeping_the_base_model(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    make_snapshot(db, settings, project, SnapshotKind.sft)
    prompts = make_snapshot(db, settings, project, SnapshotKind.prompts)
    reward = make_model(db, settings, "rm", ModelRole.reward)
    web_login(client, researcher.username)

    response = client.get(
        f"/projects/{project.id}/runs/launch-form",
        params={"kind": "rloo", "base_model_id": str(base.id), "max_attempts": "2"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    fragment = response.text
    assert fragment.strip().startswith('<form method="post" action="/projects/')
    assert "<html" not in fragment
    assert re.findall(r'name="(hp\.[\w.]+)"', fragment)[-5:] == [
        "hp.max_completion_length", "hp.temperature", "hp.num_generations", "hp.use_vllm",
        "hp.beta",
    ]  # fmt: skip
    assert f'<option value="{base.id}" selected>tiny-base</option>' in fragment
    assert f'<option value="{reward.id}" >rm</option>' in fragment
    assert count_of("no-reward-models", fragment) == 0
    assert f'<option value="{prompts.id}" >#{prompts.id} prompts rows' in fragment
    assert 'id="max_attempts" name="max_attempts" type="text" inputmode="numeric" value="2"' in (
        fragment
    )


def test_an_unknown_kind_is_refused(client: TestClient, project: Project, admin: User) -> None:
    web_login(client, admin.username)

    response = client.get(f"/projects/{project.id}/runs?kind=generate")

    assert response.status_code == 422
    assert by_testid("error-message", response.text) == (
        "'generate' is not a training run kind; choose one of sft, reward, dpo, ppo, rloo, grpo"
    )


def test_launching_from_the_form_queues_a_run_with_the_given_hyperparameters(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    data = make_snapshot(db, settings, project, SnapshotKind.sft)
    csrf = web_login(client, researcher.username)

    response = client.post(
        f"/projects/{project.id}/runs",
        data={
            "csrf_token": csrf, "kind": "sft", "base_model_id": str(base.id),
            "base_model_ref": "", "snapshot_id": str(data.id), "max_attempts": "2",
            "hp.learning_rate": "3e-4", "hp.batch_size": " 4 ", "hp.max_steps": "",
            "hp.bf16": "false", "hp.gradient_checkpointing": "", "hp.lora": "on",
            "hp.lora.r": "8", "hp.lora.target_modules": "q_proj, v_proj,", "hp.packing": "true",
            "hp.processes": "2", "hp.distributed": "ddp", "hp.lora.merge_adapter": "true",
            "hp.torch_dtype": "bfloat16", "hp.attn_implementation": "",
        },
    )  # fmt: skip

    assert response.status_code == 303
    run = db.scalars(select(Run)).one()
    assert response.headers["location"] == f"/runs/{run.id}"
    assert (run.status, run.kind, run.base_model_id, run.snapshot_id, run.max_attempts) == (
        RunStatus.queued, RunKind.sft, base.id, data.id, 2
    )  # fmt: skip
    assert run.created_by_id == researcher.id
    assert run.hyperparameters == {
        "learning_rate": 3e-4, "batch_size": 4, "gradient_accumulation_steps": None,
        "max_steps": None, "epochs": None, "max_length": None, "bf16": False,
        "gradient_checkpointing": None,
        "lora": {
            "r": 8, "alpha": 32.0, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
            "merge_adapter": True,
        },
        "save_steps": None, "logging_steps": None, "seed": 0, "processes": 2,
        "distributed": "ddp", "torch_dtype": "bfloat16", "attn_implementation": None,
        "load_in_4bit": False,
        "chat_template": "chatml", "packing": True,
    }  # fmt: skip
    assert queued_messages(settings) == 1
    assert notice(client.get(f"/runs/{run.id}").text) == f"Queued run {run.id} (sft)."


def test_a_folder_path_may_name_the_base_model(
    client: TestClient, db: Session, settings: Settings, project: Project, admin: User
) -> None:
    data = make_snapshot(db, settings, project, SnapshotKind.sft)
    model_folder(settings.data_dir / "models", "loose")
    csrf = web_login(client, admin.username)

    response = client.post(
        f"/projects/{project.id}/runs",
        data={"csrf_token": csrf, "kind": "sft", "base_model_ref": "models/loose",
              "snapshot_id": str(data.id)},
    )  # fmt: skip

    assert response.status_code == 303
    run = db.scalars(select(Run)).one()
    assert (run.base_model_id, run.base_model_ref, run.max_attempts) == (None, "models/loose", 3)


BAD_LAUNCHES = [
    pytest.param(
        {"hp.learning_rate": "-0.1"},
        "error-hyperparameters.learning_rate",
        "hyperparameters.learning_rate: Input should be greater than 0",
        422,
        id="negative learning rate",
    ),
    pytest.param(
        {"snapshot": "preference"},
        "error-snapshot_id",
        "snapshot {snapshot} is a preference snapshot; a sft run needs a sft snapshot",
        422,
        id="preference snapshot for sft",
    ),
    pytest.param(
        {"hp.warp_speed": "9"},
        "launch-error",
        "hyperparameters.warp_speed: Extra inputs are not permitted",
        422,
        id="unknown hyperparameter",
    ),
    pytest.param(
        {"hp.lora.r": "8"},
        "error-hyperparameters.lora",
        "hyperparameters.lora: turn lora on to give its settings",
        422,
        id="lora settings without lora",
    ),
    pytest.param(
        {"hp.max_steps": "10", "hp.epochs": "1"},
        "launch-error",
        "hyperparameters: give max_steps or epochs, not both",
        422,
        id="steps and epochs",
    ),
    pytest.param(
        {"base_model_ref": "models/tiny-base"},
        "launch-error",
        "name the base model: a registered model id or a folder/hub name",
        422,
        id="two base models",
    ),
    pytest.param(
        {"max_attempts": "11"},
        "error-max_attempts",
        "Input should be less than or equal to 10",
        422,
        id="too many attempts",
    ),
    pytest.param(
        {"kind": "generate"},
        "error-kind",
        "'generate' is not a training run kind; choose one of sft, reward, dpo, ppo, rloo, grpo",
        422,
        id="generation kind",
    ),
    pytest.param(
        {"base_model_id": "999999"},
        "launch-error",
        "no model with id 999999",
        404,
        id="unknown base model",
    ),
]


@pytest.mark.parametrize(("change", "testid", "message", "status"), BAD_LAUNCHES)
def test_a_bad_config_is_shown_inline_and_queues_nothing(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User, change: dict[str, str], testid: str, message: str, status: int,
) -> None:  # fmt: skip
    change = dict(change)
    data = make_snapshot(db, settings, project, SnapshotKind(change.pop("snapshot", "sft")))
    csrf = web_login(client, researcher.username)
    before = db_snapshot(db)
    form = {"csrf_token": csrf, "kind": "sft", "base_model_id": str(base.id),
            "snapshot_id": str(data.id), **change}  # fmt: skip

    response = client.post(f"/projects/{project.id}/runs", data=form)

    assert response.status_code == status
    assert by_testid(testid, response.text) == message.format(snapshot=data.id)
    assert db_snapshot(db) == before
    assert queued_messages(settings) == 0
    # The form comes back as it was filled in.
    for name, value in change.items():
        if name.startswith("hp.") and name != "hp.warp_speed":
            assert f'name="{name}" type="text" value="{value}"' in response.text, name
    # "Advanced" comes back open when one of its settings was given, so nothing refused or
    # filled in is hidden; closed when only the leading fields were touched.
    advanced = {"hp.learning_rate", "hp.lora.r", "hp.epochs", "max_attempts"}
    opened = '<details class="advanced" data-testid="advanced" open>' in response.text
    assert opened == bool(advanced & change.keys()), change


# --- the registry -------------------------------------------------------------------------


def test_the_registry_nests_a_runs_model_under_its_base(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    done = succeed(db, settings, make_run(db, project, base, make_snapshot(db, settings, project)))
    reward = make_model(db, settings, "rm", ModelRole.reward, project=project)
    web_login(client, researcher.username)

    page = client.get(f"/projects/{project.id}/runs").text

    assert tree(page) == [(1, base.id), (2, done.output_model_id), (1, reward.id)]
    output = re.search(rf'<li id="model-{done.output_model_id}".*?</li>', page, re.S)
    assert output is not None
    assert texts(r"(.*)", output.group(0))[0] == (
        f"run-{done.id}-sft policy run {done.id} runs/{done.id}/model"
    )
    assert f'<a href="/runs/{done.id}">run {done.id}</a>' in output.group(0)
    assert texts(r'data-testid="model-tree">(.*?)</section>', page) == [
        f"tiny-base policy models/tiny-base · every project "
        f"run-{done.id}-sft policy run {done.id} runs/{done.id}/model rm reward models/rm"
    ]


def test_registering_a_model_folder_adds_it_to_the_tree(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    admin: User,
) -> None:  # fmt: skip
    model_folder(settings.data_dir / "models", "tuned")
    csrf = web_login(client, admin.username)

    response = client.post(
        f"/projects/{project.id}/models",
        data={"csrf_token": csrf, "name": " tuned ", "role": "reward", "path": "models/tuned",
              "base_model_id": str(base.id)},
    )  # fmt: skip

    assert response.status_code == 303
    assert response.headers["location"] == f"/projects/{project.id}/runs#registry"
    model = db.scalars(select(Model).where(Model.name == "tuned")).one()
    assert (model.role, model.path, model.base_model_id, model.project_id) == (
        ModelRole.reward, "models/tuned", base.id, project.id
    )  # fmt: skip
    page = client.get(f"/projects/{project.id}/runs").text
    assert notice(page) == "Registered tuned."
    assert tree(page) == [(1, base.id), (2, model.id)]
    data = settings.data_dir
    assert by_testid("model-folders", page) == (
        f"— config.json and safetensors weights, inside {data}/models, {data}/runs; absolute, "
        "or relative to the data folder"
    )


@pytest.mark.parametrize(
    ("form", "testid", "message", "status"),
    [
        ({"name": "x", "path": ""}, "error-path",
         "give the model's folder: absolute, or relative to the data folder", 422),
        ({"name": "x", "path": "models/none"}, "error-path",
         "no model folder at {data}/models/none", 422),
        # Outside the model folders one answer, whether the path exists or not.
        *[
            ({"name": "x", "path": path}, "error-path",
             "the model path must be inside one of the model folders ({data}/models, "
             "{data}/runs); SMILEY_MODEL_ROOTS sets them", 422)
            for path in ("/etc", "/no/such/folder", "models/../snapshots", "~", "~/models")
        ],
        ({"name": "tiny-base", "path": "models/tiny-base"}, "error-name",
         "a model named 'tiny-base' already exists", 409),
        ({"name": "  ", "path": "models/tiny-base"}, "error-name", "give the model a name", 422),
        ({"name": "x", "role": "critic", "path": "models/tiny-base"}, "error-role",
         "Input should be 'policy' or 'reward'", 422),
    ],
)  # fmt: skip
def test_a_bad_model_folder_is_shown_inline_and_stores_nothing(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    admin: User, form: dict[str, str], testid: str, message: str, status: int,
) -> None:  # fmt: skip
    csrf = web_login(client, admin.username)
    before = db_snapshot(db)

    response = client.post(f"/projects/{project.id}/models", data={"csrf_token": csrf, **form})

    assert response.status_code == status
    assert by_testid(testid, response.text) == message.format(data=settings.data_dir)
    assert db_snapshot(db) == before


# --- a run's page -------------------------------------------------------------------------


LIVE_OPEN = '<div id="run-live" data-testid="run-live"'
POLLING = ' hx-get="/runs/{run}/live" hx-trigger="every 2s" hx-swap="outerHTML">'


def test_the_live_part_polls_while_running_and_stops_when_finished(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    run = make_run(db, project, base, make_snapshot(db, settings, project))
    web_login(client, researcher.username)
    polling = LIVE_OPEN + POLLING.format(run=run.id)

    assert polling in client.get(f"/runs/{run.id}").text
    runs.claim_run(db, run.id, WORKER)
    live = client.get(f"/runs/{run.id}/live", headers={"HX-Request": "true"})
    assert live.status_code == 200
    assert live.text.strip().startswith(polling)
    assert "<html" not in live.text
    assert by_testid("run-worker", live.text) == WORKER
    assert by_testid("run-attempts", live.text) == "1 of 3"

    succeed(db, settings, run)
    finished = client.get(f"/runs/{run.id}/live", headers={"HX-Request": "true"}).text
    assert finished.strip().startswith(LIVE_OPEN + ">")
    assert "hx-trigger" not in finished
    assert by_testid("run-status", finished) == "succeeded"
    assert by_testid("run-output", finished) == f"run-{run.id}-sft"
    assert texts(r"<tr>(.*?)</tr>", finished.split('data-testid="run-eval"')[1])[0] == (
        "eval_loss 1.25"
    )
    settings_table = finished.split('data-testid="run-settings"')[1].split("</table>")[0]
    assert texts(r"<tr>(.*?)</tr>", settings_table) == ["bf16 off cpu with a 0.1M parameters model"]


def test_a_hub_models_download_shows_on_the_live_part_as_it_goes(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    run = make_run(db, project, base, make_snapshot(db, settings, project))
    web_login(client, researcher.username)
    assert count_of("run-download", client.get(f"/runs/{run.id}").text) == 0
    runs.claim_run(db, run.id, WORKER)

    def shown(**progress: object) -> str:
        item = {"model": "owner/name", "files_done": 2, "files_total": 5, "commit": None}
        assert runs.record_downloads(db, run.id, WORKER, {"owner/name": {**item, **progress}})
        live = client.get(f"/runs/{run.id}/live", headers={"HX-Request": "true"}).text
        return by_testid("run-download", live)

    assert shown(bytes_done=1_234_567, bytes_total=4_000_000_000, state="downloading") == (
        "owner/name: downloading: 1.2 MB of 4.0 GB, 2 of 5 files"
    )
    assert shown(bytes_done=4_000_000_000, bytes_total=4_000_000_000, state="done") == (
        "owner/name: downloaded, 4.0 GB (2 of 5 files)"
    )
    assert shown(bytes_done=0, bytes_total=0, state="cached") == (
        "owner/name: in the model cache (2 of 5 files), nothing downloaded"
    )
    # Another worker's run is not written to.
    assert not runs.record_downloads(db, run.id, "someone-else", {})
    assert db.get(Run, run.id).artifacts["downloads"]["owner/name"]["state"] == "cached"


def test_a_run_sent_again_says_so_and_why(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    run = make_run(db, project, base, make_snapshot(db, settings, project))
    web_login(client, researcher.username)
    assert count_of("run-resent", client.get(f"/runs/{run.id}").text) == 0

    # Its message never reached the broker (make_run sends none): it is sent now.
    now = run.created_at + timedelta(minutes=10)
    sent = resend_lost_messages(db, settings, older_than=timedelta(minutes=5), now=now)
    assert sent.runs == [run.id]
    assert queued_messages(settings) == 1

    assert by_testid("run-resent", client.get(f"/runs/{run.id}").text) == (
        f"{now:%Y-%m-%d %H:%M:%S} UTC the job queue had lost its message, so it was sent to "
        "the workers again"
    )


def test_metric_rows_become_chart_points(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    run = make_run(db, project, base, make_snapshot(db, settings, project))
    runs.claim_run(db, run.id, WORKER)
    web_login(client, researcher.username)
    empty = client.get(f"/runs/{run.id}/live").text
    assert [by_testid(f"{slug}-chart-empty", empty) for slug in ("loss", "learning-rate")] == [
        "Nothing logged yet.", "Nothing logged yet."
    ]  # fmt: skip

    for step, loss in ((1, 2.0), (2, 1.5), (3, 1.0)):
        runs.record_metrics(db, run.id, WORKER, step, {"loss": loss, "learning_rate": 5e-4}, 0.1)
    live = client.get(f"/runs/{run.id}/live").text

    # Steps 1..3 over x 64..704; losses 1..2 over y 208..12; a flat rate sits in the middle.
    assert attribute("loss-chart-point", "cx", live) == ["64.0", "384.0", "704.0"]
    assert attribute("loss-chart-point", "cy", live) == ["12.0", "110.0", "208.0"]
    assert attribute("learning-rate-chart-point", "cy", live) == ["110.0", "110.0", "110.0"]
    assert re.findall(r'<polyline points="([^"]*)"', live)[0] == (
        "64.0,12.0 384.0,110.0 704.0,208.0"
    )
    assert texts(r"<circle[^>]*><title>(.*?)</title>", live)[:3] == [
        "loss at step 1: 2", "loss at step 2: 1.5", "loss at step 3: 1"
    ]  # fmt: skip
    assert by_testid("reward-chart-empty", live) == "Nothing logged yet."
    assert texts(r"<tr>(.*?)</tr>", live.split('data-testid="run-latest"')[1])[:3] == [
        "learning_rate 0.0005", "loss 1", "step 3"
    ]  # fmt: skip


def test_reward_metrics_share_one_chart_with_a_key() -> None:
    chart = line_chart(
        [("rewards/chosen", [(1, 1.0), (2, 2.0)]), ("rewards/rejected", [(1, -1.0), (2, -2.0)])]
    )
    assert [(series.name, series.colour) for series in chart.series] == [
        ("rewards/chosen", "#2f6f4f"), ("rewards/rejected", "#3d6fb6")
    ]  # fmt: skip
    assert [series.polyline for series in chart.series] == [
        "64.0,61.0 704.0,12.0", "64.0,159.0 704.0,208.0"
    ]  # fmt: skip
    assert [text for _, text in chart.y_ticks] == ["-2", "-1", "0", "1", "2"]
    assert [text for _, text in chart.x_ticks] == ["1", "2"]


def test_the_key_is_an_html_list_under_the_chart_that_can_wrap() -> None:
    # In SVG the key ran off the right edge with long names; as a list it wraps (issue 16).
    names = ["rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins"]
    chart = line_chart([(name, [(1, 1.0), (2, 2.0)]) for name in names])
    macros = templates.env.get_template("runs/macros.html").module
    drawn = str(macros.line_chart(chart, "reward-chart", "Rewards by step"))  # type: ignore[attr-defined]
    svg, legend = (part.strip() for part in drawn.split("</svg>\n", 1))
    assert '<text class="chart-label" x="64.0" y="16">' not in svg
    assert legend.startswith('<ul class="chart-legend" data-testid="reward-chart-legend">')
    assert re.findall(r'data-testid="reward-chart-key">.*?</svg>([^<]+)</li>', legend) == names
    assert re.findall(r'stroke="(#\w+)"', legend) == ["#2f6f4f", "#3d6fb6", "#b8642b", "#7a4fa3"]
    # One series needs no key: the heading above the chart names it.
    single = str(macros.line_chart(line_chart([("loss", [(1, 1.0)])]), "loss-chart", "Loss"))  # type: ignore[attr-defined]
    assert "chart-legend" not in single


def test_a_long_series_is_thinned_keeping_its_ends() -> None:
    chart = line_chart([("loss", [(step, float(step)) for step in range(1000)])], max_points=300)
    points = chart.series[0].points
    assert len(points) == 300
    assert (points[0][2], points[-1][2]) == ("loss at step 0: 0", "loss at step 999: 999")


def test_the_page_shows_error_traceback_escaped_and_worker_loss(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    data = make_snapshot(db, settings, project)
    failed = make_run(db, project, base, data)
    runs.claim_run(db, failed.id, WORKER)
    runs.fail_run(db, failed.id, WORKER, error="bad <b>row</b>",
                  traceback='Traceback:\n  <script>alert("x")</script>\nValueError')  # fmt: skip
    web_login(client, researcher.username)

    page = client.get(f"/runs/{failed.id}").text

    assert by_testid("run-error", page) == "bad <b>row</b>"
    assert (
        '<pre data-testid="run-traceback">Traceback:\n  &lt;script&gt;alert(&#34;x&#34;)'
        "&lt;/script&gt;\nValueError</pre>"
    ) in page
    assert count_of("resume-run", page) == 1
    assert count_of("cancel-run", page) == 0
    assert count_of("worker-lost", page) == 0

    lost = make_run(db, project, base, data)
    runs.claim_run(db, lost.id, WORKER)
    assert runs.reap_stale_runs(db, stale_after=timedelta(seconds=-1)) == [lost.id]
    page = client.get(f"/runs/{lost.id}").text
    assert by_testid("worker-lost", page) == "worker lost"
    assert by_testid("run-error", page).startswith(f"worker lost: {WORKER} sent no heartbeat")
    assert count_of("resume-run", page) == 1


def test_the_inputs_and_hyperparameters_are_listed(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    data = make_snapshot(db, settings, project)
    run = make_run(db, project, base, data)
    run.hyperparameters = {"learning_rate": 0.001, "bf16": None, "lora": {"r": 4}}
    db.commit()
    web_login(client, researcher.username)

    page = client.get(f"/runs/{run.id}").text

    assert texts(r"<tr>(.*?)</tr>", page.split('data-testid="run-inputs"')[1])[:2] == [
        "Base model tiny-base", f"Snapshot #{data.id} sft rows (sft, 8 training rows)"
    ]  # fmt: skip
    assert texts(r"<tr>(.*?)</tr>", page.split('data-testid="run-hyperparameters"')[1]) == [
        "bf16 — (the job picks)", "learning_rate 0.001", 'lora {"r": 4}'
    ]  # fmt: skip


def test_an_unknown_run_is_not_found(client: TestClient, researcher: User) -> None:
    web_login(client, researcher.username)
    response = client.get("/runs/999999")
    assert response.status_code == 404
    assert by_testid("error-message", response.text) == "no run with id 999999"


# --- cancel and resume --------------------------------------------------------------------


def test_cancelling_a_queued_run_ends_it_and_a_running_one_asks_its_worker(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    data = make_snapshot(db, settings, project)
    queued = make_run(db, project, base, data)
    running = make_run(db, project, base, data)
    runs.claim_run(db, running.id, WORKER)
    csrf = web_login(client, researcher.username)

    response = client.post(f"/runs/{queued.id}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == f"/runs/{queued.id}"
    page = client.get(f"/runs/{queued.id}").text
    assert notice(page) == f"Cancelled run {queued.id} before it started."
    assert by_testid("run-status", page) == "cancelled"

    client.post(f"/runs/{running.id}/cancel", data={"csrf_token": csrf})
    page = client.get(f"/runs/{running.id}").text
    assert notice(page) == f"Cancel requested: run {running.id} stops at its worker's next step."
    assert by_testid("cancel-requested", page) == "cancel requested"
    assert count_of("cancel-run", page) == 0
    db.expire_all()
    assert (running.status, running.cancel_requested) == (RunStatus.running, True)
    # Still polling: the worker has yet to stop.
    assert LIVE_OPEN + POLLING.format(run=running.id) in page


def test_cancelling_a_finished_run_is_a_notice_and_changes_nothing(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    done = succeed(db, settings, make_run(db, project, base, make_snapshot(db, settings, project)))
    csrf = web_login(client, researcher.username)
    before = db_snapshot(db)

    response = client.post(f"/runs/{done.id}/cancel", data={"csrf_token": csrf})

    assert response.status_code == 409
    assert notice(response.text) == f"run {done.id} already succeeded"
    assert by_testid("run-status", response.text) == "succeeded"
    assert db_snapshot(db) == before


def test_resuming_a_failed_run_queues_it_again(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    run = make_run(db, project, base, make_snapshot(db, settings, project))
    runs.claim_run(db, run.id, WORKER)
    runs.fail_run(db, run.id, WORKER, error="boom", traceback=None)
    csrf = web_login(client, researcher.username)

    response = client.post(f"/runs/{run.id}/resume", data={"csrf_token": csrf})

    assert response.status_code == 303
    page = client.get(f"/runs/{run.id}").text
    assert notice(page) == f"Run {run.id} is queued again (attempt 2 of 3)."
    assert by_testid("run-status", page) == "queued"
    assert count_of("run-error", page) == 0
    assert queued_messages(settings) == 1


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("running", "run {run} is running; only failed or cancelled runs resume"),
        ("spent", "run {run} used all its 1 attempts"),
    ],
)
def test_a_resume_that_cannot_happen_is_a_notice_and_changes_nothing(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User, state: str, message: str,
) -> None:  # fmt: skip
    run = make_run(db, project, base, make_snapshot(db, settings, project), max_attempts=1)
    runs.claim_run(db, run.id, WORKER)
    if state == "spent":
        runs.fail_run(db, run.id, WORKER, error="boom", traceback=None)
    csrf = web_login(client, researcher.username)
    before = db_snapshot(db)

    response = client.post(f"/runs/{run.id}/resume", data={"csrf_token": csrf})

    assert response.status_code == 409
    assert notice(response.text) == message.format(run=run.id)
    # A failed run without attempts left offers no resume.
    assert count_of("resume-run", response.text) == 0
    assert db_snapshot(db) == before
    assert queued_messages(settings) == 0


def test_a_runs_duration_reads_in_hours_minutes_and_seconds() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    run = Run(status=RunStatus.succeeded, started_at=start, finished_at=start)
    assert duration(run) == "0 min 0 s"
    run.finished_at = start + timedelta(hours=1, minutes=2, seconds=3)
    assert duration(run) == "1 h 2 min 3 s"
    run.finished_at = start + timedelta(minutes=59, seconds=59)
    assert duration(run) == "59 min 59 s"
    # Queued again after a resume: it is not running, so no time is counted.
    run.status, run.finished_at = RunStatus.queued, None
    assert duration(run) is None


def test_an_rloo_run_is_launched_against_the_chosen_reward_model(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    prompts = make_snapshot(db, settings, project, SnapshotKind.prompts)
    reward = make_model(db, settings, "rm", ModelRole.reward)
    csrf = web_login(client, researcher.username)

    response = client.post(
        f"/projects/{project.id}/runs",
        data={"csrf_token": csrf, "kind": "rloo", "base_model_id": str(base.id),
              "snapshot_id": str(prompts.id), "reward_model_id": str(reward.id),
              "hp.num_generations": "2", "hp.batch_size": "4"},
    )  # fmt: skip

    assert response.status_code == 303, response.text
    run = db.scalars(select(Run)).one()
    assert (run.kind, run.reward_model_id, run.snapshot_id) == (RunKind.rloo, reward.id, prompts.id)
    assert (run.hyperparameters["num_generations"], run.hyperparameters["batch_size"]) == (2, 4)
    page = client.get(f"/runs/{run.id}").text
    assert texts(r"<tr>(.*?)</tr>", page.split('data-testid="run-inputs"')[1])[2] == (
        "Reward model rm"
    )


def test_a_grpo_run_takes_python_reward_functions_by_name_from_the_form(
    client: TestClient, db: Session, settings: Settings, project: Project, base: Model,
    researcher: User,
) -> None:  # fmt: skip
    prompts = make_snapshot(db, settings, project, SnapshotKind.prompts)
    reward = make_model(db, settings, "rm", ModelRole.reward)
    csrf = web_login(client, researcher.username)
    form = client.get(f"/projects/{project.id}/runs/launch-form?kind=grpo").text
    assert by_testid("hp-reward_functions-hint", form.replace('id="', 'data-testid="')) == (
        "Reward functions added to the reward model's score, by name: length_penalty (minus "
        "the share of the longest completion used: favours short answers); think_format (1 "
        "when the completion reasons inside <think>...</think> and then answers, else 0 "
        "(TRL's think_format_reward)). Default: none. Separate names with commas."
    )
    launch = {"csrf_token": csrf, "kind": "grpo", "base_model_id": str(base.id),
              "snapshot_id": str(prompts.id), "reward_model_id": str(reward.id)}  # fmt: skip
    before = db_snapshot(db)

    refused = client.post(
        f"/projects/{project.id}/runs",
        data={**launch, "hp.reward_functions": "length_penalty, brevity"},
    )

    assert refused.status_code == 422
    assert by_testid("error-hyperparameters.reward_functions", refused.text) == (
        "hyperparameters.reward_functions: unknown reward function 'brevity'; choose from "
        "length_penalty, think_format"
    )
    assert db_snapshot(db) == before
    assert queued_messages(settings) == 0

    response = client.post(
        f"/projects/{project.id}/runs",
        data={**launch, "hp.reward_functions": "think_format, length_penalty",
              "hp.reward_weights": "1, 0.5, 0.25"},
    )  # fmt: skip

    assert response.status_code == 303, response.text
    run = db.scalars(select(Run)).one()
    assert (run.kind, run.reward_model_id) == (RunKind.grpo, reward.id)
    assert run.hyperparameters["reward_functions"] == ["think_format", "length_penalty"]
    assert run.hyperparameters["reward_weights"] == [1.0, 0.5, 0.25]
