"""The loop demo's parts that need no worker (issue 19): the held-out splits, the rule that
keeps a round's start, the simulated labelers' seeded judging order, the final-split counts,
and the settings file. Cheap: no model, no database."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli import cli
from app.schemas.evaluations import EvaluationResult
from app.simulation.judge import Judge
from app.simulation.labeler import SimulatedLabeler, seeded_order
from app.simulation.loop import compare_samples, hidden_preference, keep
from app.simulation.report import (
    ArmResult,
    Comparison,
    HiddenJudgement,
    LoopReport,
    PairedRate,
    RoundResult,
    summary,
)
from app.simulation.steps import LoopConfig, Sample, config_with, hidden_accuracy, load_config
from app.simulation.world import TEMPLATES, TOPICS, split_prompts, topic_of


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_held_out_splits_share_no_topic_and_no_prompt_with_training(seed: int) -> None:
    training, selection, final = split_prompts(random.Random(seed), 8, 8)
    assert (len(training), len(selection), len(final)) == (44, 8, 8)
    every = {template.format(topic=topic) for template in TEMPLATES for topic in TOPICS}
    assert set(training) | set(selection) | set(final) == every
    assert len({*training, *selection, *final}) == 60
    selection_topics = {topic_of(prompt) for prompt in selection}
    final_topics = {topic_of(prompt) for prompt in final}
    assert len(selection_topics) == 8 and len(final_topics) == 8
    assert not selection_topics & final_topics
    # One prompt per held-out topic: training still has each topic in its other templates.
    assert {topic_of(prompt) for prompt in training} == set(TOPICS)


def test_three_held_out_templates_keep_the_topics_out_of_training() -> None:
    training, selection, final = split_prompts(random.Random(0), 4, 5, held_out_templates=3)
    assert (len(training), len(selection), len(final)) == (33, 12, 15)
    held = {topic_of(prompt) for prompt in selection + final}
    assert len(held) == 9 and not held & {topic_of(prompt) for prompt in training}


def test_the_splits_are_the_seeds() -> None:
    assert split_prompts(random.Random(5), 8, 8) == split_prompts(random.Random(5), 8, 8)
    assert split_prompts(random.Random(5), 8, 8) != split_prompts(random.Random(6), 8, 8)


@pytest.mark.parametrize(
    ("selection", "final", "templates", "message"),
    [(0, 8, 1, "at least one topic"), (10, 11, 1, "the world has 20"), (8, 8, 4, "1 to 3")],
)
def test_impossible_splits_are_refused(
    selection: int, final: int, templates: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        split_prompts(random.Random(0), selection, final, templates)


def result(
    wins: int, ties: int, losses: int, low: float | None, high: float | None
) -> EvaluationResult:
    judgements = wins + ties + losses
    return EvaluationResult(
        wins=wins, ties=ties, losses=losses, judgements=judgements, tasks_judged=judgements,
        tasks_total=judgements, win_rate=(wins + ties / 2) / judgements if judgements else None,
        ci_low=low, ci_high=high, effective_judgements=judgements or None,
    )  # fmt: skip


def test_a_round_keeps_its_start_unless_people_preferred_the_arm() -> None:
    above = result(55, 0, 41, 0.47, 0.67)  # 0.57, interval across 0.5
    even = result(48, 0, 48, 0.40, 0.60)
    below = result(45, 0, 51, 0.37, 0.57)
    clear = result(67, 0, 29, 0.60, 0.78)
    assert keep("win_rate", above) == (
        True, "people preferred it to the start: 0.57 (0.47-0.67) on the selection split"
    )  # fmt: skip
    assert keep("win_rate", even) == (
        False,
        "people did not prefer the best arm to the start: 0.50 (0.40-0.60) on the selection split",
    )
    assert keep("win_rate", below)[0] is False
    assert keep("interval", above) == (
        False,
        "people did not prefer the best arm beyond their noise: 0.57 (0.47-0.67) on the "
        "selection split",
    )
    assert keep("interval", clear)[0] is True
    assert keep("win_rate", result(0, 0, 0, None, None)) == (
        False, "people judged none of its selection tasks"
    )  # fmt: skip


RESPONSES = [
    {"id": 11, "content": "The sea is calm and warm."},
    {"id": 12, "content": "The sea is dull and grim."},
    {"id": 13, "content": "The sea is kind and cold."},
    {"id": 14, "content": "The sea is calm and warm."},
]


def test_the_seeded_order_ignores_the_display_order() -> None:
    orders = {
        tuple(response["id"] for response in seeded_order(list(shown), seed=3))
        for shown in itertools.permutations(RESPONSES)
    }
    assert len(orders) == 1
    (order,) = orders
    # Equal texts keep their ids' order (a model's answer before its compare model's).
    assert order.index(11) < order.index(14)
    assert {tuple(r["id"] for r in seeded_order(RESPONSES, seed=s)) for s in range(8)} != {order}


def test_a_seeded_labeler_gives_the_same_verdict_whatever_the_lease_showed() -> None:
    labeler = SimulatedLabeler(httpx_unused(), "token", Judge(2.0, seed=7), seed=7, order_seed=7)
    verdicts = set()
    for shown in itertools.permutations(RESPONSES):
        body = labeler._label({"kind": "comparison", "responses": list(shown)})
        assert body is not None
        verdicts.add(
            tuple(sorted((i["response_id"], i["rank"], i["score"]) for i in body["items"]))
        )
    assert len(verdicts) == 1
    # Without the hook the verdict follows the display order (the judge's noise is drawn per
    # position), which is why the simulation needs it.
    plain = SimulatedLabeler(httpx_unused(), "token", Judge(2.0, seed=7), seed=7)
    shown_verdicts = {
        tuple(
            sorted(
                (i["response_id"], i["rank"])
                for i in plain._label({"kind": "comparison", "responses": list(shown)})["items"]  # type: ignore[index]
            )
        )
        for shown in itertools.permutations(RESPONSES)
    }
    assert len(shown_verdicts) > 1


def httpx_unused() -> object:
    # _label never sends anything.
    return object()


def answers(*texts: str, rewards: list[float] | None = None) -> dict[tuple[int, int], Sample]:
    return {
        (1, index): Sample(1, index, text, None if rewards is None else rewards[index])
        for index, text in enumerate(texts)
    }


def test_the_hidden_preference_counts_matched_answers_with_ties_half() -> None:
    new = answers("A is calm and warm.", "A is calm and grim.", "A is dull and grim.", "garbled")
    old = answers(
        "A is calm and grim.", "A is calm and grim.", "A is calm and warm.", "A is x and y."
    )
    judged = hidden_preference(new, old)
    assert judged.rate.pairs == 4
    assert judged.win_rate == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert judged.mean_utility == pytest.approx((2 + 0 - 2 - 5) / 4)
    assert judged.baseline_mean_utility == pytest.approx((0 + 0 + 2 + 0) / 4)
    # The oracle (utility 2) beats 0, 0 and 0 and ties 2.
    assert judged.ceiling == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    assert judged.malformed == pytest.approx(0.25)


def test_the_reward_model_column_counts_the_same_pairs_by_its_scores() -> None:
    new = answers("A is calm and warm.", "A is dull and grim.", rewards=[1.0, 0.5])
    old = answers("A is calm and grim.", "A is calm and warm.", rewards=[0.0, 0.5])
    row = compare_samples("RLOO", "SFT", 5, 4, new, old)
    assert row.reward_model is not None
    assert (row.reward_model.win_rate, row.reward_model.pairs) == (0.75, 2)
    assert row.hidden.win_rate == 0.5
    unscored = compare_samples("RLOO", "SFT", 5, 4, new, answers("A is calm and grim.", "x"))
    assert unscored.reward_model is None


def test_paired_rate_interval() -> None:
    rate = PairedRate.of([1.0] * 300 + [0.0] * 100 + [0.5] * 100)
    assert rate.win_rate == pytest.approx(0.7)
    # sd of the outcomes 0.4 (n - 1 in the variance), so 1.96 * 0.4 / sqrt(500) = 0.0351.
    assert rate.half_width == pytest.approx(1.959964 * (0.16 * 500 / 499) ** 0.5 / 500**0.5)
    assert rate.half_width < 0.05
    assert PairedRate.of([1.0, 1.0]).ci_high == 1.0
    with pytest.raises(ValueError, match="no pairs"):
        PairedRate.of([])


def test_the_hidden_preference_scores_the_reward_models_test_pairs() -> None:
    rows = [
        {"chosen": [{"role": "assistant", "content": "A is calm and warm."}],
         "rejected": [{"role": "assistant", "content": "A is dull and warm."}]},
        {"chosen": "A is dull and grim.", "rejected": "A is calm and grim."},
        {"chosen": "A is calm and grim.", "rejected": "A is kind and cold."},
    ]  # fmt: skip
    assert hidden_accuracy(rows) == pytest.approx((1 + 0 + 0.5) / 3)
    assert hidden_accuracy([]) is None


def test_settings_come_from_a_file_then_the_options(tmp_path: Path) -> None:
    toml = tmp_path / "loop.toml"
    toml.write_text('rloo_steps = 240\ndpo_pairs = "consensus"\ndpo_min_agreement = 1.0\n')
    config = load_config(toml, rloo_steps=None, seed=2)
    assert (config.rloo_steps, config.dpo_pairs, config.dpo_min_agreement, config.seed) == (
        240, "consensus", 1.0, 2
    )  # fmt: skip
    assert load_config(toml, rloo_steps=40).rloo_steps == 40
    as_json = tmp_path / "loop.json"
    as_json.write_text(json.dumps({"ppo_steps": 0, "dpo_beta": 0.5}))
    assert (load_config(as_json).ppo_steps, load_config(as_json).dpo_beta) == (0, 0.5)
    assert config_with(LoopConfig(), ppo_steps=None) == LoopConfig()
    # Without the AI-feedback arm, RLOO may be off and the seed is not checked.
    toml.write_text("ai_arm = false\nrloo_steps = 0\nai_seed_prompts = 60\n")
    assert (load_config(toml).ai_arm, load_config(toml).rloo_steps) == (False, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rloo_step = 3\n", "Extra inputs are not permitted"),
        ("rloo_steps = -1\n", "greater than or equal to 0"),
        ("selection_topics = 12\nfinal_topics = 12\n", "at most 20"),
        ("dpo_min_agreement = 0.9\n", "set dpo_pairs consensus"),
        ('dpo_pairs = "pairs"\ndpo_samples = 4\n', "set dpo_pairs reward_model"),
        ('dpo_pairs = "reward_model"\ndpo_samples = 10\n', "less than or equal to 9"),
        ("rloo_steps = 0\nppo_steps = 0\ndpo_steps = 0\n", "every arm is off"),
        ("rloo_steps = [\n", "not valid TOML"),
        # 60 prompts, 16 held out: 44 to train on, so a seed of 45 cannot be.
        ("ai_seed_prompts = 45\n", "at most the 44 training prompts"),
        ("rloo_steps = 0\n", "the AI-feedback arm trains RLOO"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "loop.toml"
    path.write_text(text)
    with pytest.raises((ValueError, ValidationError), match=message):
        load_config(path)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--seeds", "0,x"], "--seeds takes whole numbers separated by commas"),
        (["--seeds", "1,1"], "--seeds takes distinct whole numbers"),
        (["--seed", "1", "--seeds", "0,1"], "give --seed or --seeds, not both"),
        (["--dpo-loss-type", "kto"], "dpo_loss_type"),
        (["--final-topics", "15"], "at most 20"),
        (["--ai-seed-prompts", "0"], "ai_seed_prompts"),
    ],
)
def test_the_command_refuses_bad_settings_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str
) -> None:
    monkeypatch.setenv("SMILEY_DATA_DIR", str(tmp_path / "data"))
    outcome = CliRunner().invoke(cli, ["demo", "loop", *arguments])
    assert outcome.exit_code == 1, outcome.output
    assert "bad loop settings" in outcome.output and message in outcome.output
    # Refused before the data folder, the web app or a worker was made.
    assert not (tmp_path / "data").exists()


def comparison(policy: str, baseline: str, rate: float, best_of: int = 1) -> Comparison:
    hidden = HiddenJudgement(PairedRate(rate, rate - 0.04, rate + 0.04, 512), 1.5, 0.0, 0.8, 0.01)
    automatic = PairedRate(0.9, 0.87, 0.93, 512)
    return Comparison(policy, baseline, 10, 2, best_of, hidden, automatic)


def a_report(seed: int, rloo: float) -> LoopReport:
    human = result(60, 0, 36, 0.52, 0.71)
    rounds = []
    for number in (1, 2):
        start = "SFT" if number == 1 else "round 1"
        arms = [
            ArmResult(name, 10 * number + index, 100 * number + index, human, index,
                      comparison(name, start, rloo if name == "RLOO" else 0.6))
            for index, name in enumerate(("RLOO", "DPO"))
        ]  # fmt: skip
        rounds.append(
            RoundResult(
                number, 2, 3, 4, 0.7, 0.85, 40, 0.74, 300, 1.5, 5, arms, kept="RLOO",
                keep_reason="people preferred it",
                versus_sft=comparison("RLOO", "SFT", 0.8) if number == 2 else None,
                versus_best_of=comparison("RLOO", f"best of 4 of {start}", 0.55, best_of=4),
                kept_human=human,
            )
        )  # fmt: skip
    null = HiddenJudgement(PairedRate(0.5, 0.46, 0.54, 512), 0.0, 0.0, 0.8, 0.02)
    return LoopReport(LoopConfig(seed=seed), 2, rounds, null, project_id=seed + 1, seconds=9)


def test_the_report_prints_every_row_on_the_final_split_and_their_mean() -> None:
    report = a_report(0, 0.7)
    table = report.markdown()
    assert (
        "| 1 | RLOO (kept) | SFT | 0.70 (0.66-0.74) | 0.80 | 0.87 | 1.50 / 0.00 | 1% | "
        "0.90 (0.87-0.93) | 0.62 (0.52-0.71), 96 judgements | 0.62 (0.52-0.71), 96 judgements |"
    ) in table
    assert "| 1 | DPO | SFT | 0.60 (0.56-0.64) |" in table
    assert "| 2 | RLOO (kept) | SFT | 0.80 (0.76-0.84) |" in table
    assert "| 2 | RLOO (kept) | best of 4 of round 1 | 0.55 (0.51-0.59) |" in table
    assert "Null (SFT against fresh SFT samples): hidden 0.50 (0.46-0.54) on 512 pairs" in table
    assert "Round 1: kept RLOO (people preferred it)." in table
    assert "reward model accuracy 0.70, the hidden preference's own 0.85" in table
    assert json.loads(json.dumps(report.to_json()))["rounds"][0]["kept_model_id"] == 100
    mean = summary([report, a_report(1, 0.8)])
    assert mean.startswith("Mean over seeds 0, 1:")
    # The pooled interval of the mean of two rates each +-0.04: +-0.04 * sqrt(2) / 2.
    assert (
        "| 1 | RLOO | SFT | 0.750 (0.722-0.778) | 0.70-0.80 | 0.800 | 0.938 | 1% | 0.90 | 0.62 |"
        in mean
    )
    assert "| 1 | kept (RLOO/RLOO) | SFT | 0.750 (0.722-0.778) |" in mean
    assert "| 2 | kept (RLOO/RLOO) | best of 4 of round 1 | 0.550 " in mean
    assert "Null (SFT vs SFT), mean: 0.500." in mean
