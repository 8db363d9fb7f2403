"""Runs and registered models as the API and pages see them. The per-kind hyperparameter
schemas live in app/schemas/runs.py."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.models import ModelRole, RunKind, RunStatus
from app.schemas.common import Text

# A hub name is "owner/name" (letters, digits, '-', '_', '.'); anything else is a folder path.
HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RunKind
    # Exactly one of: a registered model, or a local folder / hub name.
    base_model_id: int | None = None
    base_model_ref: Text | None = Field(default=None, max_length=500)
    snapshot_id: int | None = None
    reward_model_id: int | None = None
    hyperparameters: dict[Text, Any] = Field(default_factory=dict)
    max_attempts: int = Field(default=3, ge=1, le=10)

    @field_validator("base_model_ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return value or None

    @model_validator(mode="after")
    def _one_base(self) -> RunCreate:
        if (
            self.kind == RunKind.score
            and self.base_model_id is None
            and self.base_model_ref is None
        ):
            # A score run's only model is its reward model.
            self.base_model_id = self.reward_model_id
        if (self.base_model_id is None) == (self.base_model_ref is None):
            raise ValueError("name the base model: a registered model id or a folder/hub name")
        return self


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    kind: RunKind
    status: RunStatus
    base_model_id: int | None
    base_model_ref: str | None
    reward_model_id: int | None
    snapshot_id: int | None
    output_model_id: int | None
    hyperparameters: dict[str, Any]
    progress: float
    metrics: dict[str, Any]
    artifacts: dict[str, Any]
    worker_name: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    claimed_at: datetime | None
    heartbeat_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    traceback: str | None
    created_by_id: int | None
    created_at: datetime
    # When its id was sent to the workers again because the broker had lost its message.
    resent_at: datetime | None


class RunMetricOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    step: int
    values: dict[str, Any]
    created_at: datetime


class ModelRegister(BaseModel):
    """A local folder made known to the registry: a model (config, safetensors weights,
    tokenizer) or a LoRA adapter (adapter_config.json naming its base, adapter_model.safetensors,
    tokenizer)."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    role: ModelRole = ModelRole.policy
    path: Text | None = Field(default=None, max_length=500)
    hub_name: Text | None = Field(default=None, max_length=200)
    base_model_id: int | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("give the model a name")
        return value

    @model_validator(mode="after")
    def _one_location(self) -> ModelRegister:
        if (self.path is None) == (self.hub_name is None):
            raise ValueError("give exactly one of path (a local folder) or hub_name")
        if self.hub_name is not None and not HUB_NAME.match(self.hub_name):
            raise ValueError("a hub name reads owner/name")
        return self


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: ModelRole
    path: str | None
    hub_name: str | None
    base_model_id: int | None
    project_id: int | None
    created_by_id: int | None
    created_at: datetime
    # The run that produced it, when one did.
    run_id: int | None = None


class ModelNode(BaseModel):
    """A model and the models trained from it: the registry's lineage tree."""

    model: ModelOut
    children: list[ModelNode] = []
