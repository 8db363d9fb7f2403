"""Agreement figures as the API and the pages show them (definitions: app/services/agreement)."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel


class AgreementFigures(BaseModel):
    """Agreement among the counting comparisons of one slice of a project."""

    comparisons: int
    labelers: int
    # Agreeing labeler pairs / labeler pairs, over response pairs ordered by 2+ labelers.
    pairwise_agreement: float | None
    agreeing_pairs: int
    labeler_pairs: int
    response_pairs: int
    # Ordinal, on the 1-7 scores; units (task, response), coders labelers.
    krippendorff_alpha: float | None
    # Mean Kendall's tau-b over every two labelers' rankings of the same task.
    mean_kendall_tau: float | None
    tau_pairs: int


class QueueAgreement(AgreementFigures):
    queue_id: int
    queue_name: str


class GuidelineVersionAgreement(AgreementFigures):
    """Between comparisons made under the same guideline version (None: made under none)."""

    guideline_version_id: int | None
    version: int | None


class LabelerAgreementOut(BaseModel):
    labeler_id: int
    username: str
    comparisons: int
    # Response pairs this labeler ordered that another labeler ordered too.
    response_pairs: int
    # (this labeler, other labeler) comparisons on those pairs, and how many agree.
    labeler_pairs: int
    agreeing_pairs: int
    pairwise_agreement: float | None
    # Agreement smoothed toward the overall rate (consensus.py), over this report's
    # comparisons; task consensus weighs labelers by it over the whole project.
    reliability: float
    gold_pairs: int
    gold_correct: int
    gold_accuracy: float | None


class AgreementReport(BaseModel):
    project_id: int
    queue_id: int | None
    guideline_version_id: int | None
    overall: AgreementFigures
    queues: list[QueueAgreement]
    guideline_versions: list[GuidelineVersionAgreement]
    labelers: list[LabelerAgreementOut]


class ConsensusPair(BaseModel):
    winner_response_id: int
    loser_response_id: int
    # Labelers who ordered this pair (ties left out).
    labelers: int
    # Reliability-weighted share of them putting the winner first; None when nobody did.
    support: float | None
    # For exports: 2 * support - 1, clipped to [0, 1].
    weight: float


class TaskConsensus(BaseModel):
    task_id: int
    comparisons: int
    # [[response ids tied best], [next], ...], like a gold answer.
    ranking: list[list[int]]
    # Weighted votes agreeing with the consensus over all weighted votes on its pairs.
    support: float | None
    pairs: list[ConsensusPair]


class AgreementPoint(BaseModel):
    """Pairwise agreement of the labeler pairs completed in one bucket (day or week, UTC)."""

    start: date
    pairwise_agreement: float | None
    agreeing_pairs: int
    labeler_pairs: int
