"""All models, imported here so Base.metadata is complete for Alembic and create_all."""

from app.models.agreement import TaskAgreement
from app.models.base import Base
from app.models.content import Prompt, PromptCategory, Response, ResponseSource
from app.models.critique import Principle, ResponseRevision
from app.models.datasets import DatasetJob, DatasetJobKind, DatasetJobStatus
from app.models.judging import JudgeTemplate
from app.models.labels import (
    Comparison,
    ComparisonItem,
    Demonstration,
    DemonstrationOrigin,
    LabelSource,
    Pair,
)
from app.models.loop import Evaluation, ResponseScore
from app.models.observability import TaskEvent
from app.models.projects import GuidelineVersion, Project
from app.models.queues import (
    Assignment,
    AssignmentStatus,
    Queue,
    QueueKind,
    QueueLabeler,
    SuggestionMode,
    Task,
    TaskResponse,
)
from app.models.reviews import LabelReview, ReviewVerdict
from app.models.system import WorkerHeartbeat
from app.models.training import (
    Model,
    ModelRole,
    Run,
    RunKind,
    RunMetric,
    RunStatus,
    Snapshot,
    SnapshotKind,
)
from app.models.users import ApiToken, LabelerProfile, LoginAttempt, Role, User, UserSession
from app.models.workbench import Draft, GuidelineRead

__all__ = [
    "ApiToken",
    "Assignment",
    "AssignmentStatus",
    "Base",
    "Comparison",
    "ComparisonItem",
    "DatasetJob",
    "DatasetJobKind",
    "DatasetJobStatus",
    "Demonstration",
    "DemonstrationOrigin",
    "Draft",
    "Evaluation",
    "GuidelineRead",
    "GuidelineVersion",
    "JudgeTemplate",
    "LabelReview",
    "LabelSource",
    "LabelerProfile",
    "LoginAttempt",
    "Model",
    "ModelRole",
    "Pair",
    "Principle",
    "Project",
    "Prompt",
    "PromptCategory",
    "Queue",
    "QueueKind",
    "QueueLabeler",
    "Response",
    "ResponseRevision",
    "ResponseScore",
    "ResponseSource",
    "ReviewVerdict",
    "Role",
    "Run",
    "RunKind",
    "RunMetric",
    "RunStatus",
    "Snapshot",
    "SnapshotKind",
    "SuggestionMode",
    "Task",
    "TaskAgreement",
    "TaskEvent",
    "TaskResponse",
    "User",
    "UserSession",
    "WorkerHeartbeat",
]
