"""/api/v1 runs and models: launch (checked before queueing), follow metrics, cancel, resume,
and the registry with its lineage tree. Staff only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Model, ModelRole, Project, Run, RunKind, SnapshotKind, User
from app.services import runs
from app.settings import Settings
from tests.api.helpers import API, error
from tests.conftest import bearer, make_token
from tests.factories import make_project
from tests.training_factories import (
    make_model,
    make_run,
    make_snapshot,
    model_folder,
    queued_messages,
)

WORKER = "gpu@host"


@pytest.fixture
def project(db: Session) -> Project:
    return make_project(db)


@pytest.fixture
def as_researcher(db: Session, researcher: User) -> dict[str, str]:
    return bearer(make_token(db, researcher))


def run_count(db: Session) -> int:
    return db.scalar(select(func.count()).select_from(Run)) or 0


def test_launching_a_run_queues_it_with_its_hyperparameters(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    base = make_model(db, settings, "base")
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    response = client.post(
        f"{API}/projects/{project.id}/runs",
        json={
            "kind": "dpo",
            "base_model_id": base.id,
            "snapshot_id": snapshot.id,
            "hyperparameters": {"beta": 0.2, "max_steps": 50},
        },
        headers=as_researcher,
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["kind"], body["status"], body["attempts"], body["progress"]) == (
        "dpo",
        "queued",
        0,
        0.0,
    )
    assert body["hyperparameters"]["beta"] == 0.2
    assert body["hyperparameters"]["max_steps"] == 50
    assert body["hyperparameters"]["loss_type"] == "sigmoid"
    assert queued_messages(settings) == 1
    listed = client.get(f"{API}/projects/{project.id}/runs", headers=as_researcher).json()
    assert [run["id"] for run in listed] == [body["id"]]


def test_a_bad_config_is_refused_with_its_field_and_nothing_is_queued(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    base = make_model(db, settings, "base")
    preference = make_snapshot(db, settings, project, SnapshotKind.preference)
    response = client.post(
        f"{API}/projects/{project.id}/runs",
        json={"kind": "sft", "base_model_id": base.id, "snapshot_id": preference.id},
        headers=as_researcher,
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        f"snapshot {preference.id} is a preference snapshot; a sft run needs a sft snapshot",
        "snapshot_id",
    )
    sft = make_snapshot(db, settings, project, SnapshotKind.sft)
    response = client.post(
        f"{API}/projects/{project.id}/runs",
        json={
            "kind": "sft",
            "base_model_id": base.id,
            "snapshot_id": sft.id,
            "hyperparameters": {"learning_rate": -1},
        },
        headers=as_researcher,
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        "hyperparameters.learning_rate: Input should be greater than 0",
        "hyperparameters.learning_rate",
    )
    for processes, message in (
        (0, "Input should be greater than or equal to 1"),
        (17, "Input should be less than or equal to 16"),
    ):
        response = client.post(
            f"{API}/projects/{project.id}/runs",
            json={
                "kind": "sft",
                "base_model_id": base.id,
                "snapshot_id": sft.id,
                "hyperparameters": {"processes": processes},
            },
            headers=as_researcher,
        )
        assert (response.status_code, response.json()) == (
            422,
            error(
                "invalid_input",
                f"hyperparameters.processes: {message}",
                "hyperparameters.processes",
            ),
        )
    # Generation and scoring run in one process: a process group is refused with the reason.
    reward_model = make_model(db, settings, "rm", ModelRole.reward)
    for body, kind, items in (
        ({"kind": "generate", "base_model_id": base.id}, "generation", "prompts"),
        ({"kind": "score", "reward_model_id": reward_model.id}, "score", "responses"),
    ):
        response = client.post(
            f"{API}/projects/{project.id}/runs",
            json={**body, "hyperparameters": {"processes": 2}},
            headers=as_researcher,
        )
        assert (response.status_code, response.json()) == (
            422,
            error(
                "invalid_input",
                f"hyperparameters: processes: a {kind} run works in one process on one "
                "device; process groups (processes above 1) are for training runs. To use "
                f"more GPUs, split the {items} over several {kind} runs",
                "hyperparameters",
            ),
        ), body
    assert (run_count(db), queued_messages(settings)) == (0, 0)


def test_a_grpo_run_names_its_python_rewards_and_an_unknown_one_is_refused(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    base = make_model(db, settings, "base")
    reward_model = make_model(db, settings, "rm", ModelRole.reward)
    prompts = make_snapshot(db, settings, project, SnapshotKind.prompts)
    url = f"{API}/projects/{project.id}/runs"
    launch = {
        "kind": "grpo",
        "base_model_id": base.id,
        "reward_model_id": reward_model.id,
        "snapshot_id": prompts.id,
    }
    refusals = [
        (
            {"reward_functions": ["length_penalty", "brevity"]},
            "reward_functions",
            "unknown reward function 'brevity'; choose from length_penalty, think_format",
        ),
        (
            {"reward_functions": ["think_format"], "reward_weights": [1.0, 2.0, 3.0]},
            "reward_weights",
            "needs 2 weights (the reward model's, then one per reward function), not 3",
        ),
    ]
    for hyperparameters, field, message in refusals:
        answer = client.post(
            url, json={**launch, "hyperparameters": hyperparameters}, headers=as_researcher
        )
        assert (answer.status_code, answer.json()) == (
            422,
            error(
                "invalid_input",
                f"hyperparameters.{field}: {message}",
                f"hyperparameters.{field}",
            ),
        )
    answer = client.post(url, json={**launch, "reward_model_id": None}, headers=as_researcher)
    assert (answer.status_code, answer.json()) == (
        422,
        error("invalid_input", "a grpo run needs a reward model", "reward_model_id"),
    )
    assert (run_count(db), queued_messages(settings)) == (0, 0)

    answer = client.post(
        url,
        json={
            **launch,
            "hyperparameters": {
                "reward_functions": ["think_format", "length_penalty"],
                "reward_weights": [1.0, 0.5, 0.1],
                "max_steps": 20,
            },
        },
        headers=as_researcher,
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["kind"], body["reward_model_id"], body["snapshot_id"]) == (
        "grpo",
        reward_model.id,
        prompts.id,
    )
    assert body["hyperparameters"]["reward_functions"] == ["think_format", "length_penalty"]
    assert body["hyperparameters"]["reward_weights"] == [1.0, 0.5, 0.1]
    assert (body["hyperparameters"]["beta"], body["hyperparameters"]["loss_type"]) == (0.0, "dapo")
    assert queued_messages(settings) == 1


def test_metrics_follow_by_step_and_cancel_then_resume(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    researcher: User,
    as_researcher: dict[str, str],
) -> None:
    run = make_run(
        db,
        project,
        make_model(db, settings, "base"),
        make_snapshot(db, settings, project),
    )
    runs.claim_run(db, run.id, WORKER)
    for step, loss in ((10, 2.0), (20, 1.0)):
        runs.record_metrics(db, run.id, WORKER, step, {"loss": loss}, step / 40)
    rows = client.get(
        f"{API}/runs/{run.id}/metrics", params={"after_step": 10}, headers=as_researcher
    ).json()
    assert [(row["step"], row["values"]) for row in rows] == [(20, {"loss": 1.0})]
    shown = client.get(f"{API}/runs/{run.id}", headers=as_researcher).json()
    assert (shown["status"], shown["progress"], shown["metrics"]) == (
        "running",
        0.5,
        {"train": {"loss": 1.0, "step": 20}},
    )

    cancelled = client.post(f"{API}/runs/{run.id}/cancel", headers=as_researcher)
    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["cancel_requested"]) == (
        "running",
        True,
    )
    early = client.post(f"{API}/runs/{run.id}/resume", headers=as_researcher)
    assert early.status_code == 409
    assert early.json() == error(
        "conflict", f"run {run.id} is running; only failed or cancelled runs resume"
    )
    runs.fail_run(db, run.id, WORKER, error="worker lost", traceback=None)
    resumed = client.post(f"{API}/runs/{run.id}/resume", headers=as_researcher)
    assert resumed.status_code == 202
    assert (resumed.json()["status"], resumed.json()["error"]) == ("queued", None)
    assert queued_messages(settings) == 1


def test_models_register_refuse_pickles_and_nest_in_a_tree(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    folder = model_folder(settings.data_dir / "models", "mine")
    registered = client.post(
        f"{API}/projects/{project.id}/models",
        json={"name": "mine", "path": str(folder)},
        headers=as_researcher,
    )
    assert registered.status_code == 201, registered.text
    mine = registered.json()
    assert (mine["name"], mine["role"], mine["path"], mine["run_id"]) == (
        "mine",
        "policy",
        str(folder),
        None,
    )
    again = client.post(
        f"{API}/projects/{project.id}/models",
        json={"name": "mine", "path": str(folder)},
        headers=as_researcher,
    )
    assert again.status_code == 409
    assert again.json() == error("conflict", "a model named 'mine' already exists", "name")

    pickled = settings.data_dir / "models" / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    refused = client.post(
        f"{API}/projects/{project.id}/models",
        json={"name": "pickled", "path": str(pickled)},
        headers=as_researcher,
    )
    assert refused.status_code == 422
    assert refused.json() == error(
        "invalid_input",
        f"{pickled} has no safetensors weights (pickled .bin checkpoints are not loaded)",
        "path",
    )

    base = db.get(Model, mine["id"])
    assert base is not None
    run = make_run(db, project, base, make_snapshot(db, settings, project), RunKind.sft)
    runs.claim_run(db, run.id, WORKER)
    runs.complete_run(
        db,
        settings,
        run.id,
        WORKER,
        metrics={},
        model_dir=settings.data_dir / f"runs/{run.id}/model",
        role=ModelRole.policy,
        settings_used={},
        stopped=False,
    )
    tree = client.get(f"{API}/projects/{project.id}/models/tree", headers=as_researcher).json()
    assert [node["model"]["name"] for node in tree] == ["mine"]
    (child,) = tree[0]["children"]
    assert (child["model"]["name"], child["model"]["run_id"], child["children"]) == (
        f"run-{run.id}-sft",
        run.id,
        [],
    )


def test_labelers_cannot_launch_or_read_runs(
    client: TestClient, db: Session, project: Project, labeler: User
) -> None:
    as_labeler = bearer(make_token(db, labeler))
    needs_staff = error("permission_denied", "this needs the admin or researcher role")
    for method, path in (
        ("GET", f"{API}/projects/{project.id}/runs"),
        ("POST", f"{API}/projects/{project.id}/runs"),
        ("GET", f"{API}/projects/{project.id}/models"),
    ):
        response = client.request(method, path, headers=as_labeler, json={})
        assert (response.status_code, response.json()) == (403, needs_staff)


def outside_message(settings: Settings, what: str = "the model path") -> str:
    data = settings.data_dir
    return (
        f"{what} must be inside one of the model folders ({data / 'models'}, {data / 'runs'}); "
        "SMILEY_MODEL_ROOTS sets them"
    )


def test_model_paths_outside_the_model_folders_get_one_answer_whether_they_exist_or_not(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
    tmp_path: Path,
) -> None:
    data = settings.data_dir
    elsewhere = model_folder(tmp_path / "elsewhere", "real")  # loadable, but not ours to load
    model_folder(data, "beside")  # in the data folder, not in its models folder
    (data / "models").mkdir(exist_ok=True)
    (data / "models" / "link").symlink_to(elsewhere, target_is_directory=True)
    (data / "models" / "dangling").symlink_to(tmp_path / "nothing", target_is_directory=True)
    db.commit()
    url = f"{API}/projects/{project.id}/models"
    refused = error("invalid_input", outside_message(settings), "path")
    for path in (
        "/etc",
        "/etc/passwd",
        "/no/such/folder",
        str(elsewhere),
        str(elsewhere.parent / "missing"),
        "data/../x",
        f"{data}/../x",
        "../x",
        "beside",
        "models/../beside",
        "models/link",
        "models/dangling",
        "~",
        "~/models",
        "~root",
    ):
        answer = client.post(url, json={"name": "evil", "path": path}, headers=as_researcher)
        assert (answer.status_code, answer.json()) == (422, refused), path
    assert db.scalar(select(func.count()).select_from(Model)) == 0

    # Inside, the answer may say what is missing there.
    (data / "models" / "empty").mkdir()
    for path, message in (
        ("models/none", f"no model folder at {data / 'models' / 'none'}"),
        ("models/empty", f"{data / 'models' / 'empty'} has no config.json"),
    ):
        answer = client.post(url, json={"name": "x", "path": path}, headers=as_researcher)
        assert (answer.status_code, answer.json()) == (422, error("invalid_input", message, "path"))

    # A symlink that stays inside is fine, and so is a run's output folder.
    model_folder(data / "models", "tuned")
    (data / "models" / "alias").symlink_to(data / "models" / "tuned", target_is_directory=True)
    model_folder(data / "runs" / "7", "model")
    for name, path in (("alias", "models/alias"), ("run-7", "runs/7/model")):
        answer = client.post(url, json={"name": name, "path": path}, headers=as_researcher)
        assert answer.status_code == 201, answer.text

    # The setting widens the rule.
    settings.model_roots = [tmp_path / "elsewhere"]
    answer = client.post(url, json={"name": "real", "path": str(elsewhere)}, headers=as_researcher)
    assert answer.status_code == 201, answer.text


def test_a_run_from_a_model_outside_the_model_folders_is_refused_and_nothing_queued(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
    tmp_path: Path,
) -> None:
    data = settings.data_dir
    elsewhere = model_folder(tmp_path / "elsewhere", "real")
    model_folder(data, "snapshots")  # data/snapshots/base reads like a hub name
    snapshot = make_snapshot(db, settings, project, SnapshotKind.preference)
    prompts = make_snapshot(db, settings, project, SnapshotKind.prompts)
    # Rows registered before the model folders were checked, pointing outside them.
    old = Model(name="old", role=ModelRole.policy, path=str(elsewhere))
    old_rm = Model(name="old-rm", role=ModelRole.reward, path=str(elsewhere))
    rm = make_model(db, settings, "rm", ModelRole.reward)
    base = make_model(db, settings, "base")
    db.add_all([old, old_rm])
    db.commit()
    url = f"{API}/projects/{project.id}/runs"
    hub_off = (
        "is not a model folder inside the model folders, and hub downloads are off on this "
        "server (SMILEY_ALLOW_HUB_MODELS); register a local folder instead"
    )
    cases = [
        (
            {"kind": "dpo", "base_model_ref": str(elsewhere), "snapshot_id": snapshot.id},
            error("invalid_input", outside_message(settings), "base_model_ref"),
        ),
        (
            {"kind": "dpo", "base_model_ref": "/no/such/folder", "snapshot_id": snapshot.id},
            error("invalid_input", outside_message(settings), "base_model_ref"),
        ),
        (
            {"kind": "dpo", "base_model_ref": "~", "snapshot_id": snapshot.id},
            error("invalid_input", outside_message(settings), "base_model_ref"),
        ),
        # An owner/name that exists outside reads as a hub name, as one that does not.
        (
            {"kind": "dpo", "base_model_ref": "snapshots/base", "snapshot_id": snapshot.id},
            error("invalid_input", f"'snapshots/base' {hub_off}", "base_model_ref"),
        ),
        (
            {"kind": "dpo", "base_model_ref": "snapshots/none", "snapshot_id": snapshot.id},
            error("invalid_input", f"'snapshots/none' {hub_off}", "base_model_ref"),
        ),
        (
            {"kind": "dpo", "base_model_id": old.id, "snapshot_id": snapshot.id},
            error(
                "invalid_input",
                outside_message(settings, f"model {old.id}'s folder"),
                "base_model_id",
            ),
        ),
        (
            {
                "kind": "rloo",
                "base_model_id": base.id,
                "reward_model_id": old_rm.id,
                "snapshot_id": prompts.id,
            },
            error(
                "invalid_input",
                outside_message(settings, f"model {old_rm.id}'s folder"),
                "reward_model_id",
            ),
        ),
        (
            {"kind": "generate", "base_model_id": old.id},
            error(
                "invalid_input",
                outside_message(settings, f"model {old.id}'s folder"),
                "base_model_id",
            ),
        ),
        (
            {"kind": "score", "reward_model_id": old_rm.id},
            error(
                "invalid_input",
                outside_message(settings, f"model {old_rm.id}'s folder"),
                "reward_model_id",
            ),
        ),
    ]
    for body, refused in cases:
        answer = client.post(url, json=body, headers=as_researcher)
        assert (answer.status_code, answer.json()) == (422, refused), body
    assert run_count(db) == 0
    assert queued_messages(settings) == 0
    assert not (data / "runs").exists()

    # The same launches from folders inside are queued: a model folder, and the output of a
    # run of Smiley's own (data/runs, whatever the setting says).
    settings.model_roots = [tmp_path / "elsewhere", data / "models"]
    trained = Model(name="run-7-sft", role=ModelRole.policy, path="runs/7/model")
    model_folder(data / "runs" / "7", "model")
    db.add(trained)
    db.commit()
    for base_model in ({"base_model_ref": str(elsewhere)}, {"base_model_id": trained.id}):
        answer = client.post(
            url,
            json={"kind": "rloo", **base_model, "reward_model_id": rm.id,
                  "snapshot_id": prompts.id},
            headers=as_researcher,
        )  # fmt: skip
        assert answer.status_code == 202, answer.text
    assert queued_messages(settings) == 2


def adapter_folder(root: Path, base: str) -> Path:
    """A LoRA run's output as the registry sees it: peft's two files naming `base`."""
    folder = root / "adapter"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 8)
    return folder


def test_an_adapter_folder_registers_when_its_base_is_a_model_inside_the_model_folders(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
    tmp_path: Path,
) -> None:
    data = settings.data_dir
    url = f"{API}/projects/{project.id}/models"
    model_folder(data / "models", "base")
    adapter = adapter_folder(data / "runs" / "3", "../../../models/base")
    answer = client.post(
        url, json={"name": "lora", "path": "runs/3/adapter"}, headers=as_researcher
    )
    assert answer.status_code == 201, answer.text

    # Its base an adapter too (DPO with LoRA on an SFT adapter).
    adapter_folder(data / "runs" / "4", "../../3/adapter")
    answer = client.post(url, json={"name": "dpo", "path": "runs/4/adapter"}, headers=as_researcher)
    assert answer.status_code == 201, answer.text

    model_folder(tmp_path / "elsewhere", "real")
    cases = (
        (
            str(tmp_path / "elsewhere" / "real"),
            outside_message(settings, "the base model of the adapter in {adapter}"),
        ),
        ("../../../models/none", f"no model folder at {data / 'models' / 'none'}"),
        (".", "the adapter in {adapter} names its bases in a loop"),
        ("", "the adapter in {adapter} names no base model"),
    )
    for number, (base, message) in enumerate(cases, start=10):
        adapter = adapter_folder(data / "runs" / str(number), base)
        path = f"runs/{number}/adapter"
        answer = client.post(
            url, json={"name": f"bad-{number}", "path": path}, headers=as_researcher
        )
        expected = error("invalid_input", message.format(adapter=adapter), "path")
        assert (answer.status_code, answer.json()) == (422, expected), base
    (data / "runs" / "10" / "adapter" / "adapter_model.safetensors").unlink()
    answer = client.post(url, json={"name": "x", "path": "runs/10/adapter"}, headers=as_researcher)
    adapter = data / "runs" / "10" / "adapter"
    message = f"{adapter} has adapter_config.json but no adapter_model.safetensors"
    assert (answer.status_code, answer.json()) == (422, error("invalid_input", message, "path"))
    assert [model.name for model in db.scalars(select(Model))] == ["lora", "dpo"]


def test_load_in_4bit_is_refused_without_bitsandbytes_and_nothing_is_queued(
    client: TestClient,
    db: Session,
    settings: Settings,
    project: Project,
    as_researcher: dict[str, str],
) -> None:
    base = make_model(db, settings, "base")
    data = make_snapshot(db, settings, project, SnapshotKind.sft)
    url = f"{API}/projects/{project.id}/runs"
    launch = {"kind": "sft", "base_model_id": base.id, "snapshot_id": data.id}
    quantized = {"load_in_4bit": True, "lora": {"r": 8}}
    response = client.post(
        url, json={**launch, "hyperparameters": quantized}, headers=as_researcher
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        "hyperparameters.load_in_4bit: 4-bit loading needs the bitsandbytes package and a CUDA "
        "worker, and bitsandbytes is not installed here: install it on a CUDA installation, or "
        "turn load_in_4bit off",
        "hyperparameters.load_in_4bit",
    )
    without_lora = {"load_in_4bit": True}
    response = client.post(
        url, json={**launch, "hyperparameters": without_lora}, headers=as_researcher
    )
    assert response.status_code == 422
    assert response.json() == error(
        "invalid_input",
        "hyperparameters: load_in_4bit trains LoRA adapters on a frozen 4-bit base: turn lora on",
        "hyperparameters",
    )
    assert run_count(db) == 0
    assert queued_messages(settings) == 0
