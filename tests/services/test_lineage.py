"""A response's lineage: base -> SFT (on an SFT snapshot) -> reward model (on a preference
snapshot) and policy (PPO from the SFT model against that reward model) -> a sampled response.

The snapshot files hold (labeler, guideline version) per row:
  SFT         train: ann v1, ann v2, bob v1 (demonstrations 11, 12, 13); test: an import
              (no labeler, no version, demonstration 14)
  preference  train: ann v2 (comparison 21, two pairs), bob v2 (comparison 22); test: none
  prompts     (the PPO run's) folder deleted.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import (
    GuidelineVersion,
    Model,
    ModelRole,
    Project,
    Prompt,
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
from app.schemas.audit import ModelLineage
from app.services.lineage import response_lineage
from app.services.snapshots import formats
from app.settings import Settings
from tests.training_factories import make_model, make_snapshot


@dataclass
class LineageWorld:
    project: Project
    ann: User
    bob: User
    v1: GuidelineVersion
    v2: GuidelineVersion
    base: Model
    sft: Model
    reward: Model
    policy: Model
    sft_snapshot: Snapshot
    preference_snapshot: Snapshot
    prompts_snapshot: Snapshot
    generate: Run
    sampled: Response
    written: Response


def write_split(
    settings: Settings, snapshot: Snapshot, split: str, schema: pa.Schema, rows: list[dict]
) -> None:
    """A split file with the snapshot schema; only the id columns matter, the rest are empty."""
    full = [{name: row.get(name) for name in schema.names} for row in rows]
    pq.write_table(
        pa.Table.from_pylist(full, schema=schema),
        settings.data_dir / snapshot.path / f"{split}.parquet",
    )


def trained(
    db: Session,
    project: Project,
    kind: RunKind,
    base: Model,
    output: Model,
    snapshot: Snapshot,
    reward: Model | None = None,
) -> Run:
    run = Run(
        project_id=project.id,
        kind=kind,
        status=RunStatus.succeeded,
        base_model_id=base.id,
        reward_model_id=reward.id if reward else None,
        snapshot_id=snapshot.id,
        output_model_id=output.id,
        hyperparameters={"learning_rate": 1e-5},
        metrics={"train": {"loss": 0.5}, "eval": {"eval_loss": 0.75}, "note": "left out"},
    )
    db.add(run)
    db.flush()
    return run


def build_lineage_world(db: Session, settings: Settings) -> LineageWorld:
    project = Project(name="Lineage", label_schema={"flags": []})
    db.add(project)
    db.flush()
    ann, bob = (
        User(username=name, role=Role.labeler, password_hash="not-a-hash")
        for name in ("ann", "bob")
    )
    v1 = GuidelineVersion(project_id=project.id, version=1, body="Be helpful.")
    v2 = GuidelineVersion(project_id=project.id, version=2, body="Be brief.")
    db.add_all([ann, bob, v1, v2])
    db.flush()

    base = make_model(db, settings, "base")
    sft = make_model(db, settings, "sft", base=base, project=project)
    reward = make_model(db, settings, "rm", ModelRole.reward, base=sft, project=project)
    policy = make_model(db, settings, "policy", base=sft, project=project)

    sft_snapshot = make_snapshot(db, settings, project, SnapshotKind.sft, train=3, test=1)
    write_split(
        settings,
        sft_snapshot,
        "train",
        formats.SFT,
        [
            {"demonstration_id": 11, "labeler_id": ann.id, "guideline_version_id": v1.id},
            {"demonstration_id": 12, "labeler_id": ann.id, "guideline_version_id": v2.id},
            {"demonstration_id": 13, "labeler_id": bob.id, "guideline_version_id": v1.id},
        ],
    )
    write_split(settings, sft_snapshot, "test", formats.SFT, [{"demonstration_id": 14}])
    preference = make_snapshot(db, settings, project, SnapshotKind.preference, train=3, test=0)
    write_split(
        settings,
        preference,
        "train",
        formats.PREFERENCE,
        [
            {
                "comparison_id": 21,
                "pair_id": 1,
                "labeler_id": ann.id,
                "guideline_version_id": v2.id,
            },
            {
                "comparison_id": 21,
                "pair_id": 2,
                "labeler_id": ann.id,
                "guideline_version_id": v2.id,
            },
            {
                "comparison_id": 22,
                "pair_id": 3,
                "labeler_id": bob.id,
                "guideline_version_id": v2.id,
            },
        ],
    )
    write_split(settings, preference, "test", formats.PREFERENCE, [])
    prompts = make_snapshot(db, settings, project, SnapshotKind.prompts)
    shutil.rmtree(settings.data_dir / prompts.path)

    trained(db, project, RunKind.sft, base, sft, sft_snapshot)
    trained(db, project, RunKind.reward, sft, reward, preference)
    trained(db, project, RunKind.ppo, sft, policy, prompts, reward=reward)
    generate = Run(
        project_id=project.id,
        kind=RunKind.generate,
        status=RunStatus.succeeded,
        base_model_id=policy.id,
        hyperparameters={"samples_per_prompt": 2},
    )
    prompt = Prompt(
        project_id=project.id,
        messages=[{"role": "user", "content": "Hi?"}],
        source="test",
        content_hash="1" * 64,
    )
    db.add_all([generate, prompt])
    db.flush()
    sampled = Response(
        prompt_id=prompt.id,
        content="Hello!",
        source=ResponseSource.model,
        model_id=policy.id,
        run_id=generate.id,
        sampling={"temperature": 0.7, "top_p": 0.9, "seed": 3, "sample": 1},
    )
    written = Response(
        prompt_id=prompt.id, content="Hi there.", source=ResponseSource.human, author_id=bob.id
    )
    db.add_all([sampled, written])
    db.commit()
    return LineageWorld(
        project,
        ann,
        bob,
        v1,
        v2,
        base,
        sft,
        reward,
        policy,
        sft_snapshot,
        preference,
        prompts,
        generate,
        sampled,
        written,
    )


@pytest.fixture
def world(db: Session, settings: Settings) -> LineageWorld:
    return build_lineage_world(db, settings)


def assert_sft_model(found: ModelLineage | None, world: LineageWorld) -> None:
    """The SFT model, its run and snapshot, and the base model with no run."""
    assert found is not None and (found.id, found.name, found.role) == (
        world.sft.id,
        "sft",
        "policy",
    )
    assert found.run is not None
    assert (found.run.kind, found.run.status) == (RunKind.sft, RunStatus.succeeded)
    assert found.run.metrics == {"train": {"loss": 0.5}, "eval": {"eval_loss": 0.75}}
    assert found.run.hyperparameters == {"learning_rate": 1e-5}
    snapshot = found.run.snapshot
    assert snapshot is not None and snapshot.id == world.sft_snapshot.id
    assert (snapshot.kind, snapshot.row_counts, snapshot.missing) == (
        SnapshotKind.sft,
        {"train": 3, "test": 1},
        None,
    )
    contents = snapshot.contents
    assert contents is not None
    assert contents.rows == {"train": 3, "test": 1}
    assert (contents.demonstrations, contents.comparisons, contents.pairs) == (4, 0, 0)
    assert [(row.labeler_id, row.username, row.rows) for row in contents.labelers] == [
        (world.ann.id, "ann", 2),
        (world.bob.id, "bob", 1),
    ]
    assert contents.rows_without_labeler == 1
    assert [
        (row.guideline_version_id, row.version, row.rows) for row in contents.guideline_versions
    ] == [(world.v1.id, 1, 2), (world.v2.id, 2, 1), (None, None, 1)]
    base = found.run.base_model
    assert base is not None and (base.id, base.name, base.run) == (world.base.id, "base", None)
    assert found.run.reward_model is None


def test_a_sampled_response_walks_back_to_the_base_model(
    db: Session, settings: Settings, world: LineageWorld
) -> None:
    found = response_lineage(db, settings, world.sampled.id)
    assert (found.source, found.content, found.author_username) == (
        ResponseSource.model,
        "Hello!",
        None,
    )
    assert found.sampling == {"temperature": 0.7, "top_p": 0.9, "seed": 3, "sample": 1}
    assert found.generation_run is not None
    assert (found.generation_run.id, found.generation_run.kind) == (
        world.generate.id,
        RunKind.generate,
    )
    assert found.generation_run.hyperparameters == {"samples_per_prompt": 2}

    policy = found.model
    assert policy is not None and (policy.id, policy.name) == (world.policy.id, "policy")
    assert policy.run is not None and policy.run.kind == RunKind.ppo
    prompts = policy.run.snapshot
    assert prompts is not None and prompts.contents is None
    assert prompts.missing == (
        f"the snapshot's folder {world.prompts_snapshot.path} is missing from the data folder"
    )
    assert_sft_model(policy.run.base_model, world)

    reward = policy.run.reward_model
    assert reward is not None and (reward.name, reward.role) == ("rm", "reward")
    assert reward.run is not None and reward.run.kind == RunKind.reward
    preference = reward.run.snapshot
    assert preference is not None and preference.contents is not None
    contents = preference.contents
    assert contents.rows == {"train": 3, "test": 0}
    assert (contents.demonstrations, contents.comparisons, contents.pairs) == (0, 2, 3)
    assert [(row.username, row.rows) for row in contents.labelers] == [("ann", 2), ("bob", 1)]
    assert [(row.version, row.rows) for row in contents.guideline_versions] == [(2, 3)]
    assert_sft_model(reward.run.base_model, world)


def test_a_persons_response_names_its_author(
    db: Session, settings: Settings, world: LineageWorld
) -> None:
    found = response_lineage(db, settings, world.written.id)
    assert (found.source, found.author_id, found.author_username) == (
        ResponseSource.human,
        world.bob.id,
        "bob",
    )
    assert (found.model, found.generation_run, found.sampling) == (None, None, None)


def test_an_import_names_its_source(db: Session, settings: Settings, world: LineageWorld) -> None:
    imported = Response(
        prompt_id=world.sampled.prompt_id,
        content="Imported.",
        source=ResponseSource.imported,
        source_name="gpt-3.5 via UltraFeedback",
    )
    db.add(imported)
    db.commit()
    found = response_lineage(db, settings, imported.id)
    assert (found.source, found.source_name, found.model) == (
        ResponseSource.imported,
        "gpt-3.5 via UltraFeedback",
        None,
    )


def test_a_snapshot_folder_without_its_files_says_so(
    db: Session, settings: Settings, world: LineageWorld
) -> None:
    (settings.data_dir / world.sft_snapshot.path / "test.parquet").unlink()
    found = response_lineage(db, settings, world.sampled.id)
    assert found.model is not None and found.model.run is not None
    sft = found.model.run.base_model
    assert sft is not None and sft.run is not None and sft.run.snapshot is not None
    assert sft.run.snapshot.contents is None
    assert sft.run.snapshot.missing == (
        f"the snapshot's folder {world.sft_snapshot.path} lacks its Parquet files"
    )


def test_an_unknown_response_is_not_found(db: Session, settings: Settings) -> None:
    with pytest.raises(NotFound, match="no response with id 999999"):
        response_lineage(db, settings, 999999)
    with pytest.raises(NotFound):
        response_lineage(db, settings, 2**40)
