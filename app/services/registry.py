"""The model registry: base models people register, and every run's output with its lineage
(base -> SFT -> reward / DPO / PPO / RLOO), shown as a tree."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from sqlalchemy import exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Model, ModelRole, Run, User
from app.schemas.training import HUB_NAME, ModelNode, ModelOut, ModelRegister
from app.services.prompts import get_project_checked, storable_id
from app.settings import Settings

# A LoRA run's output folder (worker/training/arguments.py save_model): peft's file names.
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# An adapter's base may be an adapter in turn; a longer chain is a loop or a mistake.
MAX_ADAPTER_CHAIN = 16


def adapter_base(folder: Path) -> Path | str:
    """The base model folder a LoRA adapter folder names (peft's base_model_name_or_path,
    relative to the adapter's folder, as worker/training/loading.py resolves it), or why it
    names none."""
    try:
        stored = json.loads((folder / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return f"{folder} has an unreadable {ADAPTER_CONFIG}"
    if not isinstance(stored, str) or not stored:
        return f"the adapter in {folder} names no base model"
    path = Path(stored)
    return (path if path.is_absolute() else folder / path).resolve()


def model_folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be loaded as a model, or None. A model folder holds config.json and
    safetensors weights, or is a LoRA adapter (adapter_config.json, adapter_model.safetensors)
    naming its base folder. Only safetensors weights count: a
    pickled checkpoint from a user could run code when loaded. Ask only about a folder inside
    the model folders (checked_model_folder): elsewhere the answer would tell a researcher what
    exists on the server."""
    if not folder.is_dir():
        return f"no model folder at {folder}"
    if (folder / ADAPTER_CONFIG).is_file():
        if not (folder / ADAPTER_WEIGHTS).is_file():
            return f"{folder} has {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS}"
        if isinstance(adapter_base(folder), str):
            return adapter_base(folder)
        return None
    if not (folder / "config.json").is_file():
        return f"{folder} has no config.json"
    if not any(folder.glob("*.safetensors")):
        return f"{folder} has no safetensors weights (pickled .bin checkpoints are not loaded)"
    return None


def model_folder(settings: Settings, stored: str) -> Path:
    """A stored path, '..' and symlinks resolved: absolute as given, relative ones under the
    data folder. Nothing is expanded: '~' is a folder of that name, so a path cannot ask about
    the server's home."""
    path = Path(stored)
    return (path if path.is_absolute() else settings.data_dir / path).resolve()


def in_model_folders(settings: Settings, stored: str) -> bool:
    """Whether `stored` names a place inside one of the model folders (SMILEY_MODEL_ROOTS),
    after resolving '..' and symlinks, of the path and of the roots alike."""
    try:
        folder = model_folder(settings, stored)
        roots = [root.resolve() for root in settings.model_folders]
    except (OSError, ValueError, RuntimeError):
        # A path that cannot even be resolved (a symlink loop, a NUL byte) is nowhere allowed.
        return False
    return any(folder.is_relative_to(root) for root in roots)


def checked_model_folder(
    settings: Settings, stored: str, *, field: str, what: str = "", depth: int = 0
) -> Path:
    """The loadable model folder `stored` names. Every model path from a person goes through
    here: a registration, a run's base model by folder, and a registered model a run is to
    load. Outside the model folders the answer is one sentence, the same whether the path
    exists or not; only inside them does it say what is missing."""
    if not in_model_folders(settings, stored):
        roots = ", ".join(str(root) for root in settings.model_folders)
        raise InvalidInput(
            f"{what or 'the model path'} must be inside one of the model folders ({roots}); "
            "SMILEY_MODEL_ROOTS sets them",
            field=field,
        )
    folder = model_folder(settings, stored)
    problem = model_folder_problem(folder)
    if problem is not None:
        raise InvalidInput(problem, field=field)
    base = adapter_base(folder) if (folder / ADAPTER_CONFIG).is_file() else None
    if isinstance(base, Path):
        # The base an adapter names is loaded too: inside the model folders, loadable, and
        # not a loop of adapters naming each other.
        if depth >= MAX_ADAPTER_CHAIN:
            raise InvalidInput(f"the adapter in {folder} names its bases in a loop", field=field)
        checked_model_folder(
            settings,
            str(base),
            field=field,
            what=f"the base model of the adapter in {folder}",
            depth=depth + 1,
        )
    return folder


def names_hub_model(settings: Settings, ref: str) -> bool:
    """Whether a run's base model reference is a hub name: one that reads owner/name is a
    folder only where such a folder is inside the model folders; otherwise it is a hub name,
    whether or not something of that name exists elsewhere. The web app checks with it before
    a run is queued, the worker again before it loads (worker/runner.py)."""
    if not HUB_NAME.match(ref):
        return False
    return not (in_model_folders(settings, ref) and model_folder(settings, ref).exists())


def check_base_ref(settings: Settings, ref: str) -> None:
    """A base model named by folder or hub name, checked before anything is queued."""
    if names_hub_model(settings, ref):
        if not settings.allow_hub_models:
            raise InvalidInput(
                f"{ref!r} is not a model folder inside the model folders, and hub downloads "
                "are off on this server (SMILEY_ALLOW_HUB_MODELS); register a local folder "
                "instead",
                field="base_model_ref",
            )
        return
    checked_model_folder(settings, ref, field="base_model_ref")


def check_registered_folder(settings: Settings, model: Model, *, field: str) -> None:
    """A registered model a run is to load: its folder checked again now, since it may have
    been registered before the model folders were (or the folder changed since)."""
    if model.path is not None:
        checked_model_folder(settings, model.path, field=field, what=f"model {model.id}'s folder")


def get_model(db: Session, model_id: int) -> Model:
    model = db.get(Model, model_id) if storable_id(model_id) else None
    if model is None:
        raise NotFound(f"no model with id {model_id}")
    return model


def model_out(db: Session, model: Model) -> ModelOut:
    run_id = db.scalar(select(Run.id).where(Run.output_model_id == model.id))
    return ModelOut.model_validate(model).model_copy(update={"run_id": run_id})


def list_models(db: Session, project_id: int | None = None) -> list[Model]:
    """Every model, or a project's own together with those registered for all projects."""
    query = select(Model).order_by(Model.id)
    if project_id is not None:
        get_project_checked(db, project_id)
        query = query.where(or_(Model.project_id == project_id, Model.project_id.is_(None)))
    return list(db.scalars(query))


def register_model(
    db: Session,
    settings: Settings,
    data: ModelRegister,
    *,
    acting: User,
    project_id: int | None = None,
) -> Model:
    if project_id is not None:
        get_project_checked(db, project_id)
    if data.path is not None:
        checked_model_folder(settings, data.path, field="path")
    elif not settings.allow_hub_models:
        raise InvalidInput(
            "hub downloads are off on this server (SMILEY_ALLOW_HUB_MODELS); register a folder",
            field="hub_name",
        )
    if data.base_model_id is not None:
        get_model(db, data.base_model_id)
    model = Model(
        name=data.name,
        role=data.role,
        path=data.path,
        hub_name=data.hub_name,
        base_model_id=data.base_model_id,
        project_id=project_id,
        created_by_id=acting.id,
    )
    db.add(model)
    _commit_unique_name(db, data.name)
    return model


def register_run_output(db: Session, run: Run, path: str, role: ModelRole) -> Model:
    """The model a succeeded run made; flushed in the caller's transaction."""
    model = Model(
        name=f"run-{run.id}-{run.kind.value}",
        role=role,
        path=path,
        base_model_id=run.base_model_id,
        project_id=run.project_id,
        created_by_id=run.created_by_id,
    )
    db.add(model)
    db.flush()
    return model


def lineage(db: Session, project_id: int | None = None) -> list[ModelNode]:
    """The registry as a forest: each model under the model it was trained from."""
    models = list_models(db, project_id)
    runs = {
        model_id: run_id
        for model_id, run_id in db.execute(
            select(Run.output_model_id, Run.id).where(Run.output_model_id.is_not(None))
        )
    }
    known = {model.id for model in models}
    children: dict[int | None, list[Model]] = defaultdict(list)
    for model in models:
        parent = model.base_model_id if model.base_model_id in known else None
        children[parent].append(model)

    def node(model: Model) -> ModelNode:
        out = ModelOut.model_validate(model).model_copy(update={"run_id": runs.get(model.id)})
        return ModelNode(model=out, children=[node(child) for child in children[model.id]])

    return [node(model) for model in children[None]]


def _commit_unique_name(db: Session, name: str) -> None:
    try:
        db.commit()
    except IntegrityError as error:
        db.rollback()
        if db.scalar(select(exists().where(Model.name == name))):
            raise Conflict(f"a model named {name!r} already exists", field="name") from error
        raise
