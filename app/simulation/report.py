"""What `smiley demo loop` reports, per round and seed and as the mean over seeds.

Two sets of held-out prompts about distinct topics: the arms of a round are chosen on the
selection split (by people, as a real project would choose), and every figure in the table is
measured on the final split, with fresh samples, three ways, never mixed up:

- hidden: the simulated labelers' hidden preference itself, without noise (the truth the loop
  is measured by; a real project never has it), on `hidden_repeats` samples per prompt, with
  its 95% interval and, beside it, the ceiling: the win rate of an oracle that always gives the
  hidden preference's best answer against the same baseline samples (what no policy can beat);
- reward model: the round's reward model judging the same pairs (what a researcher without
  labelers would see; it can rise while the truth falls);
- human: a side-by-side evaluation the (noisy) simulated labelers judged, with its interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from app.schemas.evaluations import EvaluationResult
from app.schemas.judging import JudgeFigures

if TYPE_CHECKING:
    from app.simulation.steps import LoopConfig

Z95 = 1.959964
# What a comparison costs when people make it (the figure the project plans with; a judge's
# label costs compute instead, reported in seconds of this machine's worker).
DOLLARS_PER_COMPARISON = 3.50


@dataclass(frozen=True)
class PairedRate:
    """A's win rate over B on matched pairs (a win 1, a tie 0.5, a loss 0) and its 95%
    interval (normal, from the outcomes' own spread: ties narrow it)."""

    win_rate: float
    ci_low: float
    ci_high: float
    pairs: int

    @classmethod
    def of(cls, outcomes: Sequence[float]) -> PairedRate:
        if not outcomes:
            raise ValueError("no pairs to count")
        count = len(outcomes)
        mean = sum(outcomes) / count
        variance = sum((o - mean) ** 2 for o in outcomes) / max(count - 1, 1)
        half = Z95 * math.sqrt(variance / count)
        return cls(mean, max(0.0, mean - half), min(1.0, mean + half), count)

    @property
    def half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def outcome(a: float, b: float) -> float:
    return 1.0 if a > b else 0.5 if a == b else 0.0


@dataclass(frozen=True)
class HiddenJudgement:
    """The hidden preference on a comparison's final-split pairs."""

    rate: PairedRate
    # Mean true utility of the new policy's answers, and of the baseline's.
    mean_utility: float
    baseline_mean_utility: float
    # The oracle's win rate over the same baseline answers (ties half).
    ceiling: float
    # The share of the new policy's answers not in the world's answer shape.
    malformed: float

    @property
    def win_rate(self) -> float:
        return self.rate.win_rate


@dataclass
class Comparison:
    """One row: `policy` against `baseline` on the final split."""

    policy: str
    baseline: str
    model_id: int
    baseline_model_id: int
    # Above 1: the baseline answered best-of-N, reranked by the round's reward model.
    baseline_best_of: int
    hidden: HiddenJudgement
    # The round's reward model on the same pairs (None where its scores are missing).
    reward_model: PairedRate | None
    # A human evaluation on the final split (fresh samples of its own), where one was run.
    human: EvaluationResult | None = None
    evaluation_id: int | None = None


@dataclass
class ArmResult:
    name: str
    run_id: int
    model_id: int
    # The human evaluation against the round's start on the selection split: what the arm
    # is chosen by, never reported as its figure.
    selection: EvaluationResult
    selection_evaluation_id: int
    final: Comparison
    # The run's own automatic evaluation by its reward model on training prompts (RLOO and
    # PPO), kept for the record: not a final-split figure.
    run_reward_model_win_rate: float | None = None


@dataclass
class AiFeedbackResult:
    """The round's AI-feedback arm (app/simulation/ai_feedback.py) and what it cost."""

    seed_queue_id: int
    # The judge (a reward model), the run that trained it and the judge run that labeled.
    judge_model_id: int
    judge_reward_run_id: int
    judge_run_id: int
    # Tasks of the round's comparison queue the judge labeled, and its agreement there with
    # people's consensus (the agreement page's figure, with its interval).
    judge_tasks: int
    judge_agreement: JudgeFigures | None
    ai_reward_model_id: int
    ai_reward_run_id: int
    # The hidden preference's accuracy on every pair the judges labeled so far, and on every
    # pair people labeled on the same queues (ties half): how right each source's labels are.
    ai_label_accuracy: float | None
    human_label_accuracy: float | None
    # People's comparisons each arm's reward model learned from, this round and earlier ones:
    # the seeds' for the AI arm, the comparison queues' for the human arms.
    seed_comparisons: int
    human_comparisons: int
    # The worker's seconds for the judge's reward model, its labels and the AI reward model.
    judge_seconds: float
    arm: ArmResult | None = None


@dataclass
class RoundResult:
    number: int
    start_model_id: int
    reward_model_id: int
    reward_run_id: int
    # The reward model's accuracy on its snapshot's test split, the hidden preference's own
    # accuracy on the same pairs (the best any reward model could do with those labels), and
    # the split's size.
    reward_accuracy: float | None
    hidden_accuracy: float | None
    reward_test_pairs: int
    # Labeler pairwise agreement on this round's comparisons (labeler pairs counted).
    labeler_agreement: float | None
    labeler_pairs: int
    labeler_noise: float
    comparisons_queue_id: int
    arms: list[ArmResult] = field(default_factory=list)
    # The arm the round keeps, or None when people preferred none to the start (the round then
    # keeps its start), and why.
    kept: str | None = None
    keep_reason: str = ""
    # From round 2: the kept policy against SFT. Every round: against best-of-N of its start.
    versus_sft: Comparison | None = None
    versus_best_of: Comparison | None = None
    # The kept arm's human evaluation against the start on the final split.
    kept_human: EvaluationResult | None = None
    # The AI-feedback arm, measured beside the human arms and never kept (None: off).
    ai: AiFeedbackResult | None = None

    @property
    def kept_model_id(self) -> int:
        return self.kept_arm().model_id if self.kept is not None else self.start_model_id

    def kept_arm(self) -> ArmResult:
        if self.kept is None:
            raise ValueError(f"round {self.number} kept its start")
        return next(arm for arm in self.arms if arm.name == self.kept)


@dataclass
class LoopReport:
    config: LoopConfig
    sft_model_id: int
    rounds: list[RoundResult] = field(default_factory=list)
    # SFT's final-split answers against a second, independent set of them: the null a
    # win rate is read against (0.5 up to sampling noise).
    null: HiddenJudgement | None = None
    project_id: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = _plain(self)
        for round_data, result in zip(data["rounds"], self.rounds, strict=True):
            round_data["kept_model_id"] = result.kept_model_id
        return data

    def rows(self) -> list[Row]:
        """The table's rows: each arm against its start, then the kept policy against SFT
        (round 1: its own row) and against best-of-N of the start."""
        found = []
        for result in self.rounds:
            start = "SFT" if result.number == 1 else f"round {result.number - 1}"
            for arm in result.arms:
                kept = arm.name == result.kept
                found.append(
                    Row(result.number, arm.name, kept, start, arm.name, arm.final,
                        result.kept_human if kept else None, arm.selection)
                )  # fmt: skip
            if result.ai is not None and result.ai.arm is not None:
                arm = result.ai.arm
                found.append(
                    Row(result.number, arm.name, False, start, arm.name, arm.final, None,
                        arm.selection)
                )  # fmt: skip
            kept_name = result.kept or "start"
            if result.number == 1 and result.kept is not None:
                found.append(
                    Row(1, kept_name, True, "SFT", "kept", result.kept_arm().final,
                        result.kept_human, None, shown=False)
                )  # fmt: skip
            elif result.number == 1 and self.null is not None:
                null = Comparison("SFT", "SFT", self.sft_model_id, self.sft_model_id, 1,
                                  self.null, None)  # fmt: skip
                found.append(Row(1, "start", True, "SFT", "kept", null, None, None, shown=False))
            if result.versus_sft is not None:
                found.append(
                    Row(result.number, kept_name, True, "SFT", "kept", result.versus_sft,
                        result.versus_sft.human, None)
                )  # fmt: skip
            if result.versus_best_of is not None:
                best_of = f"best of {result.versus_best_of.baseline_best_of} of {start}"
                found.append(
                    Row(result.number, kept_name, True, best_of, "kept", result.versus_best_of,
                        result.versus_best_of.human, None, key_baseline="best of N")
                )  # fmt: skip
        return found

    def markdown(self) -> str:
        lines = [*HEADER]
        for row in self.rows():
            if row.shown:
                lines.append(row.markdown())
        lines += ["", *self.footer()]
        return "\n".join(lines)

    def footer(self) -> list[str]:
        config = self.config
        lines = []
        if self.null is not None:
            null = self.null.rate
            lines.append(
                f"Null (SFT against fresh SFT samples): hidden {_rate(null)} on {null.pairs} "
                f"pairs; ceiling over SFT {self.null.ceiling:.2f}."
            )
        for result in self.rounds:
            kept = f"kept {result.kept}" if result.kept is not None else "kept its start"
            lines.append(
                f"Round {result.number}: {kept} ({result.keep_reason}). Labeler pairwise "
                f"agreement on its comparisons {_maybe(result.labeler_agreement)} "
                f"({result.labeler_pairs} labeler pairs; noise {result.labeler_noise:.2f}, "
                f"fixed from round 1). On the reward model's test split "
                f"({result.reward_test_pairs} labeled pairs): reward model accuracy "
                f"{_maybe(result.reward_accuracy)}, the hidden preference's own "
                f"{_maybe(result.hidden_accuracy)} (the most a reward model can reach on "
                f"these labels)."
            )
            if result.ai is not None:
                lines.append(_ai_line(result.number, result.ai))
        lines.append(
            f"Splits: {config.selection_topics} selection and {config.final_topics} final "
            f"topics ({config.held_out_templates} prompt each); hidden preference on "
            f"{config.final_topics * config.held_out_templates} x {config.hidden_repeats} "
            f"final pairs per row, people on "
            f"{config.final_topics * config.held_out_templates} x {config.human_repeats} "
            f"final and {config.selection_topics * config.held_out_templates} x "
            f"{config.selection_repeats} selection tasks. Seed {config.seed}; "
            f"whole loop {self.seconds:.0f} s."
        )
        return lines


HEADER = (
    "| round | policy | vs | hidden win rate (95% CI) | ceiling | share of ceiling "
    "| true utility (new / vs) | malformed | reward model's win rate "
    "| human, final (95% CI) | human, selection (95% CI) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
)


@dataclass
class Row:
    round: int
    policy: str
    kept: bool
    baseline: str
    key_policy: str
    comparison: Comparison
    human: EvaluationResult | None
    selection: EvaluationResult | None
    shown: bool = True
    key_baseline: str = ""

    @property
    def key(self) -> tuple[int, str, str]:
        """Rows of different seeds with the same key are averaged together."""
        return (self.round, self.key_policy, self.key_baseline or self.baseline)

    def markdown(self) -> str:
        comparison, hidden = self.comparison, self.comparison.hidden
        name = f"{self.policy} (kept)" if self.kept else self.policy
        return (
            f"| {self.round} | {name} | {self.baseline} | {_rate(hidden.rate)} | "
            f"{hidden.ceiling:.2f} | {hidden.win_rate / hidden.ceiling:.2f} | "
            f"{hidden.mean_utility:.2f} / {hidden.baseline_mean_utility:.2f} | "
            f"{hidden.malformed:.0%} | "
            f"{_rate(comparison.reward_model) if comparison.reward_model else '-'} | "
            f"{_human(self.human)} | {_human(self.selection)} |"
        )


def summary(reports: Sequence[LoopReport]) -> str:
    """The mean over seeds of every row the reports share (rows are matched by round, arm or
    "kept", and baseline), with the pooled 95% interval of the mean hidden win rate (the
    seeds' sampling noise; the spread between seeds is printed beside it)."""
    if not reports:
        raise ValueError("no reports to summarise")
    seeds = ", ".join(str(report.config.seed) for report in reports)
    keyed: dict[tuple[int, str, str], list[Row]] = {}
    for report in reports:
        for row in report.rows():
            keyed.setdefault(row.key, []).append(row)
    lines = [
        f"Mean over seeds {seeds}:",
        "",
        "| round | policy | vs | hidden win rate (95% CI) | seeds' range | ceiling "
        "| share of ceiling | malformed | reward model's win rate | human, final |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, rows in keyed.items():
        if len(rows) != len(reports):
            continue
        number, policy, _ = key
        baseline = rows[0].baseline
        rates = [row.comparison.hidden.rate for row in rows]
        mean = sum(rate.win_rate for rate in rates) / len(rates)
        half = math.sqrt(sum(rate.half_width**2 for rate in rates)) / len(rates)
        ceiling = sum(row.comparison.hidden.ceiling for row in rows) / len(rows)
        malformed = sum(row.comparison.hidden.malformed for row in rows) / len(rows)
        automatic = [row.comparison.reward_model for row in rows]
        humans = [
            row.human.win_rate for row in rows if row.human and row.human.win_rate is not None
        ]
        label = policy if policy != "kept" else "kept (" + "/".join(r.policy for r in rows) + ")"
        lines.append(
            f"| {number} | {label} | {baseline} | {mean:.3f} ({mean - half:.3f}-"
            f"{mean + half:.3f}) | {min(r.win_rate for r in rates):.2f}-"
            f"{max(r.win_rate for r in rates):.2f} | {ceiling:.3f} | {mean / ceiling:.3f} | "
            f"{malformed:.0%} | "
            + (
                f"{sum(a.win_rate for a in automatic if a) / len(automatic):.2f}"
                if all(automatic)
                else "-"
            )
            + " | "
            + (f"{sum(humans) / len(humans):.2f}" if len(humans) == len(rows) else "-")
            + " |"
        )
    nulls = [report.null.win_rate for report in reports if report.null is not None]
    if nulls:
        lines += ["", f"Null (SFT vs SFT), mean: {sum(nulls) / len(nulls):.3f}."]
    return "\n".join(lines)


def _ai_line(number: int, ai: AiFeedbackResult) -> str:
    agreement = ai.judge_agreement
    agreed = (
        f"{agreement.agreement:.2f} ({agreement.ci_low:.2f}-{agreement.ci_high:.2f}) on "
        f"{agreement.pairs} consensus pairs"
        if agreement is not None
        and agreement.agreement is not None
        and agreement.ci_low is not None
        and agreement.ci_high is not None
        else "n/a"
    )
    return (
        f"Round {number} AI feedback: the judge, a reward model trained on "
        f"{ai.seed_comparisons} comparisons people made of a seed "
        f"(${ai.seed_comparisons * DOLLARS_PER_COMPARISON:,.2f} at "
        f"${DOLLARS_PER_COMPARISON:.2f} each), labeled {ai.judge_tasks} tasks of the round's "
        f"queue, agreeing with people's consensus {agreed}; the human arms' reward model "
        f"learned from {ai.human_comparisons} comparisons "
        f"(${ai.human_comparisons * DOLLARS_PER_COMPARISON:,.2f}). Hidden preference's "
        f"accuracy on the judges' labels {_maybe(ai.ai_label_accuracy)}, on people's "
        f"{_maybe(ai.human_label_accuracy)}; the judge's compute {ai.judge_seconds:.0f} s."
    )


def _plain(value: Any) -> Any:
    """Dataclasses and pydantic models (the config, evaluation results) as JSON's types."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _rate(rate: PairedRate) -> str:
    return f"{rate.win_rate:.2f} ({rate.ci_low:.2f}-{rate.ci_high:.2f})"


def _maybe(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def _human(result: EvaluationResult | None) -> str:
    if result is None:
        return "-"
    if result.win_rate is None or result.ci_low is None or result.ci_high is None:
        return "not judged"
    return (
        f"{result.win_rate:.2f} ({result.ci_low:.2f}-{result.ci_high:.2f}), "
        f"{result.judgements} judgements"
    )
