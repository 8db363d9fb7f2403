"""What `smiley demo loop` reports: per round, each new policy's win rate over the policy it
started from, three ways, never mixed up:

- hidden: judged by the simulated labelers' hidden preference itself, without noise (the truth
  the loop is measured by; a real project never has it);
- human: the side-by-side evaluation as the (noisy) simulated labelers judged it, with its 95%
  interval;
- reward model: the run's own automatic evaluation by the reward model it was trained against
  (what a researcher without labelers would see; it can rise while the truth falls).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from app.schemas.evaluations import EvaluationResult

if TYPE_CHECKING:
    from app.simulation.loop import LoopConfig


@dataclass(frozen=True)
class HiddenJudgement:
    win_rate: float
    # Mean true utility of the new policy's answers, and of the baseline's, on the same tasks.
    mean_utility: float
    baseline_mean_utility: float


@dataclass
class ArmResult:
    name: str
    run_id: int
    model_id: int
    baseline_model_id: int
    # Above 1: the baseline answered best-of-N, reranked by the round's reward model.
    baseline_best_of: int
    evaluation_id: int
    human: EvaluationResult
    hidden: HiddenJudgement
    reward_model_win_rate: float | None


@dataclass
class RoundResult:
    number: int
    start_model_id: int
    reward_model_id: int
    reward_run_id: int
    reward_accuracy: float | None
    labeler_noise: float
    comparisons_queue_id: int
    arms: list[ArmResult] = field(default_factory=list)
    # From round 2: the kept policy evaluated against the SFT policy too.
    versus_sft: ArmResult | None = None
    # The kept policy against best-of-N sampling of the round's start policy.
    versus_best_of: ArmResult | None = None

    def best(self) -> ArmResult:
        """The arm the loop continues from: the best human win rate (what a real project
        would go by), the run id breaking ties."""
        return max(self.arms, key=lambda arm: (arm.human.win_rate or 0.0, -arm.run_id))


@dataclass
class LoopReport:
    config: LoopConfig
    sft_model_id: int
    rounds: list[RoundResult] = field(default_factory=list)
    labeler_agreement: float | None = None
    project_id: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for round_data, result in zip(data["rounds"], self.rounds, strict=True):
            round_data["best"] = result.best().name
            for arm_data, arm in zip(round_data["arms"], result.arms, strict=True):
                arm_data["human"] = arm.human.model_dump()
            for extra in ("versus_sft", "versus_best_of"):
                arm = getattr(result, extra)
                if arm is not None:
                    round_data[extra]["human"] = arm.human.model_dump()
        return data

    def markdown(self) -> str:
        lines = [
            "| round | policy | vs | hidden preference win rate | mean true utility (new / vs) "
            "| human win rate (95% CI) | W / T / L | reward-model win rate |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for result in self.rounds:
            previous = "SFT" if result.number == 1 else f"round {result.number - 1}"
            rows = [(arm, previous) for arm in result.arms]
            if result.versus_sft is not None:
                rows.append((result.versus_sft, "SFT"))
            if result.versus_best_of is not None:
                rows.append(
                    (result.versus_best_of, f"best of {result.versus_best_of.baseline_best_of} "
                     f"of {previous}")
                )  # fmt: skip
            for arm, baseline in rows:
                human = arm.human
                shown = (
                    f"{human.win_rate:.2f} ({human.ci_low:.2f}-{human.ci_high:.2f})"
                    if human.win_rate is not None
                    and human.ci_low is not None
                    and human.ci_high is not None
                    else "not judged"
                )
                automatic = (
                    f"{arm.reward_model_win_rate:.2f}"
                    if arm.reward_model_win_rate is not None
                    else "-"
                )
                kept = arm is result.best() or arm in (result.versus_sft, result.versus_best_of)
                best = " (kept)" if kept else ""
                lines.append(
                    f"| {result.number} | {arm.name}{best} | {baseline} | "
                    f"{arm.hidden.win_rate:.2f} | "
                    f"{arm.hidden.mean_utility:.2f} / {arm.hidden.baseline_mean_utility:.2f} | "
                    f"{shown} | "
                    f"{human.wins} / {human.ties} / {human.losses} | {automatic} |"
                )
        agreement = f"{self.labeler_agreement:.1%}" if self.labeler_agreement is not None else "n/a"
        accuracies = ", ".join(
            f"round {r.number} {r.reward_accuracy:.2f}"
            for r in self.rounds
            if r.reward_accuracy is not None
        )
        lines += [
            "",
            f"Labeler pairwise agreement: {agreement}. Reward model held-out accuracy: "
            f"{accuracies}. Whole loop: {self.seconds:.0f} s.",
        ]
        return "\n".join(lines)
