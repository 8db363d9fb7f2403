"""The proof that the loop improves a model (issues 7 and 19): `smiley demo loop`'s own code, on
CPU with the tiny model, a real worker (SQLite, embedded broker) and simulated labelers working
through the JSON API. SFT on their demonstrations; then two rounds of samples, rankings, a
reward model, RLOO against it and DPO on pairs it ranked, and the AI-feedback arm (a judge
trained on a seed of people's labels labels the round's queue; RLOO on a reward model of its
labels); people choose each round's arm on the selection split of held-out prompts, and every
figure asserted here comes from the final split (other topics, fresh samples).

What is asserted, and why it is not noise: the round-1 kept policy's win rate over SFT on the
final split, judged by the labelers' hidden preference without noise on 512 answer pairs, is
at least ROUND_ONE_FLOOR with its 95% interval above 0.5 and within +-0.05 (SFT against fresh
SFT samples, the null printed beside it, is 0.5 up to that noise); RLOO alone clears 0.6. The
labelers agree about as often as people do, their noise is fixed once for the whole loop, and
the platform's own pages (rounds, lineage) tell the story."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, session_factory
from app.main import create_app
from app.models import Comparison, Response, Run, Snapshot, Task, TaskResponse
from app.services import lineage, registry, rounds
from app.settings import Settings
from app.simulation.loop import LoopConfig, run_loop
from app.simulation.steps import LoopError
from tests.conftest import MigratedDatabases
from tests.worker.training_worker import start_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800), pytest.mark.xdist_group("loop")]
# `smiley demo loop`'s defaults but for the PPO arm (PPO has its own worker tests): the final
# split's samples and the kept policy's human evaluations cost more than the loop did before
# (issue 19), and leaving PPO out pays for them. A run that takes 10 minutes (each takes
# seconds) is stuck: fail with the worker's log, before the timeout.
# DPO's pairs are the loop's own (its start policy's answers ranked by the round's reward
# model), on fewer answers and steps than the README's table: no DPO figure is asserted here,
# only how its pairs were made. RLOO runs 120 steps, not the default 320: the suite's time is
# at its limit, and over its four RLOO runs (two rounds, the human and the AI arm) 40 steps
# fewer took the test from 200 s to 174 s alone. People judge 6 answers to each held-out
# prompt, not 12: halving the labelers' ~1,000 evaluation tasks through the API took it from
# 216 s to 200 s alone, and what is asserted of people's figures (the arm chosen beat its
# start) holds with 48 judgements.
CONFIG = LoopConfig(
    run_timeout=600.0,
    ppo_steps=0,
    dpo_steps=40,
    dpo_samples=4,
    rloo_steps=120,
    selection_repeats=6,
    human_repeats=6,
)
JUDGEMENTS = 8 * 6
# The round-1 kept policy's hidden-preference win rate over SFT on the final split: seed 0
# measured 0.73 (0.71-0.76) for RLOO at 120 steps with this config, the arm kept, on a CPU
# (the ceiling over SFT's answers 0.76; 160 steps gave 0.74, the default 320 steps 0.75); the
# floor sits two interval half-widths below it.
ROUND_ONE_FLOOR = 0.68


@pytest.fixture
def settings(tmp_path: Path, migrated_databases: MigratedDatabases) -> Settings:
    url = migrated_databases.sqlite(tmp_path / "loop.sqlite3")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, secret_key="test-secret-key-" + "x" * 32
    )
    settings.ensure_data_dir()
    return settings


@pytest.fixture
def sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.resolved_database_url)
    yield session_factory(engine)
    engine.dispose()


def test_two_rounds_of_the_loop_make_a_policy_people_prefer(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    worker = start_worker(settings, "loop@%h")
    lines: list[str] = []
    try:
        with TestClient(create_app(settings)) as http:
            report = run_loop(settings, sessions, http, CONFIG, log=lines.append)
    except LoopError as error:
        pytest.fail(f"{error}\n{chr(10).join(lines)}\nworker log:\n{worker.output()[-6000:]}")
    finally:
        worker.stop()

    first, second = report.rounds
    table = report.markdown()
    assert [arm.name for arm in first.arms] == ["RLOO", "DPO"]
    # The round-1 figure, on the final split: the policy people chose on the selection split
    # is truly better than SFT, beyond sampling noise, on prompts it was not chosen on.
    assert first.kept is not None, table
    kept = first.kept_arm()
    final = kept.final.hidden
    assert kept.final.baseline == "SFT" and final.rate.pairs == 8 * 64, table
    assert final.win_rate >= ROUND_ONE_FLOOR, (table, worker.output()[-3000:])
    assert final.rate.ci_low > 0.5 and final.rate.half_width < 0.05, table
    assert final.win_rate <= final.ceiling, table
    rloo = first.arms[0]
    assert rloo.final.hidden.win_rate > 0.6, table
    # The policy learnt the hidden preference: its answers are truly better, not only
    # preferred by a reward model that could be gamed.
    assert rloo.final.hidden.mean_utility > rloo.final.hidden.baseline_mean_utility + 0.5, table
    # The null beside it: SFT against fresh samples of itself.
    assert report.null is not None and abs(report.null.win_rate - 0.5) < 0.05, table
    # Chosen by people on the selection split (6 answers to each of its 8 prompts), measured
    # by people again on the final split.
    assert kept.selection.judgements == JUDGEMENTS == kept.selection.tasks_total
    assert kept.selection.win_rate is not None and kept.selection.win_rate > 0.5, table
    assert first.kept_human is not None and first.kept_human.judgements == JUDGEMENTS
    # The round's reward model judged every row's own pairs, separately from people.
    assert all(row.comparison.reward_model is not None for row in report.rows()), table
    # Simulated labelers agree about as often as InstructGPT's did (~73%), with one noise for
    # the whole loop; the reward model's accuracy sits beside the hidden preference's own on
    # the same test pairs.
    assert first.labeler_agreement is not None
    assert 0.65 <= first.labeler_agreement <= 0.82, table
    assert first.labeler_noise == second.labeler_noise
    assert first.reward_test_pairs > 0 and first.hidden_accuracy is not None
    # Round 2 starts from round 1's kept policy and is measured against it and against SFT.
    assert second.start_model_id == first.kept_model_id
    assert second.versus_sft is not None
    assert second.versus_sft.baseline_model_id == report.sft_model_id
    # Best-of-4 sampling of the start policy, reranked by the round's reward model, is the
    # baseline the kept policy also met, on the same final prompts.
    assert first.versus_best_of is not None
    assert first.versus_best_of.baseline_best_of == 4
    assert first.versus_best_of.human is not None
    assert first.versus_best_of.human.judgements == JUDGEMENTS
    assert "| 1 | RLOO" in table and "| 2 | DPO" in table
    assert "| best of 4 of SFT |" in table

    # The AI-feedback arm: the judge learned from a seed of 11 tasks people labeled once each,
    # labeled all 44 tasks of the round's queue (people labeled each 3 times), and RLOO on a
    # reward model of its labels alone made a policy measured like the others, never kept.
    ai = first.ai
    assert ai is not None and ai.arm is not None and second.ai is not None
    assert (ai.seed_comparisons, ai.judge_tasks, ai.human_comparisons) == (11, 44, 132)
    assert (second.ai.seed_comparisons, second.ai.human_comparisons) == (22, 264)
    assert ai.judge_agreement is not None and ai.judge_agreement.tasks == 44
    # It agrees with people's consensus beyond chance, and its labels carry the preference.
    assert ai.judge_agreement.ci_low is not None and ai.judge_agreement.ci_low > 0.5, table
    assert ai.ai_label_accuracy is not None and ai.ai_label_accuracy > 0.6, table
    assert ai.arm.name == "RLOO on AI labels" and first.kept != ai.arm.name
    assert ai.arm.final.hidden.rate.ci_low > 0.5, table
    assert ai.arm.selection.judgements == JUDGEMENTS
    assert "| 1 | RLOO on AI labels | SFT |" in table
    assert (
        "Round 1 AI feedback: the judge, a reward model trained on 11 comparisons people made "
        "of a seed ($38.50 at $3.50 each), labeled 44 tasks of the round's queue" in table
    )
    with sessions() as db:
        judged = db.execute(
            select(Comparison.model_id, Comparison.run_id, Comparison.labeler_id)
            .join(Task, Task.id == Comparison.task_id)
            .where(Task.queue_id == first.comparisons_queue_id, Comparison.source == "ai")
        ).all()
        assert set(judged) == {(ai.judge_model_id, ai.judge_run_id, None)} and len(judged) == 44
        # The judge's labels filled no overlap: every task still holds its 3 people's labels.
        assert (
            db.scalar(
                select(func.count(Comparison.id))
                .join(Task, Task.id == Comparison.task_id)
                .where(Task.queue_id == first.comparisons_queue_id, Comparison.source == "labeler")
            )
            == 132
        )
        ai_reward_run = db.get(Run, ai.ai_reward_run_id)
        assert ai_reward_run is not None and ai_reward_run.snapshot_id is not None
        ai_snapshot = db.get(Snapshot, ai_reward_run.snapshot_id)
        assert ai_snapshot is not None and ai_snapshot.filters["label_sources"] == "ai"

    with sessions() as db:
        # DPO learnt from pairs the round's reward model ranked: a judge run over a queue of
        # its own (4 answers to each training prompt; identical answers are one candidate, and
        # a prompt left with one gets no task), which no reward model learns from, in a
        # snapshot of those AI labels alone.
        dpo_run = db.get(Run, first.arms[1].run_id)
        assert dpo_run is not None and dpo_run.snapshot_id is not None
        dpo_snapshot = db.get(Snapshot, dpo_run.snapshot_id)
        assert dpo_snapshot is not None and dpo_snapshot.filters["label_sources"] == "ai"
        (dpo_queue,) = dpo_snapshot.filters["queue_ids"]
        assert dpo_queue not in (first.comparisons_queue_id, second.comparisons_queue_id)
        answers = db.scalars(
            select(func.count(TaskResponse.response_id))
            .join(Task, Task.id == TaskResponse.task_id)
            .where(Task.queue_id == dpo_queue)
            .group_by(Task.id)
        ).all()
        assert 40 <= len(answers) <= 44 and set(answers) <= {2, 3, 4}, answers
        ranked = db.execute(
            select(Comparison.model_id, Comparison.source, func.count(Comparison.id))
            .join(Task, Task.id == Comparison.task_id)
            .where(Task.queue_id == dpo_queue)
            .group_by(Comparison.model_id, Comparison.source)
        ).all()
        assert [tuple(row) for row in ranked] == [(first.reward_model_id, "ai", len(answers))]

    with sessions() as db:
        # The registry is the loop's lineage tree: base -> SFT -> round 1's reward model and
        # policies -> round 2's, grown from the policy round 1 kept.
        (root,) = registry.lineage(db, report.project_id)
        (sft_node,) = root.children
        assert sft_node.model.id == report.sft_model_id
        round_one = {child.model.run_id: child for child in sft_node.children}
        assert set(round_one) == {
            first.reward_run_id,
            *(arm.run_id for arm in first.arms),
            ai.judge_reward_run_id,
            ai.ai_reward_run_id,
            ai.arm.run_id,
        }
        kept_node = next(c for c in sft_node.children if c.model.id == first.kept_model_id)
        assert second.ai.arm is not None
        assert {child.model.run_id for child in kept_node.children} == {
            second.reward_run_id,
            *(arm.run_id for arm in second.arms),
            second.ai.judge_reward_run_id,
            second.ai.ai_reward_run_id,
            second.ai.arm.run_id,
        }
        shown = rounds.project_rounds(db, report.project_id)
        # Every new policy's human win rate is on the rounds page, beside its own run's: the
        # latest evaluation against its start (the kept arm's: the final split's).
        by_model = {policy.model_id: policy for round_out in shown for policy in round_out.policies}
        assert by_model[kept.model_id].human is not None
        assert by_model[kept.model_id].human.win_rate == pytest.approx(first.kept_human.win_rate)
        # Lineage: a round-2 sample leads back to the labels and labelers behind its model.
        sample = db.scalar(
            select(Response).where(Response.model_id == second.start_model_id).limit(1)
        )
        assert sample is not None
        story = lineage.response_lineage(db, settings, sample.id)
    assert story.model is not None and story.model.id == second.start_model_id
    trained = story.model.run
    assert trained is not None and trained.kind.value == kept.name.lower()
    assert trained.base_model is not None and trained.base_model.id == report.sft_model_id
    sft_run = trained.base_model.run
    assert sft_run is not None and sft_run.snapshot is not None
    contents = sft_run.snapshot.contents
    assert contents is not None
    # The labelers took turns: every one of them wrote some of the demonstrations SFT learnt
    # from (how many each depends on who leased first, not on an even split).
    assert contents.demonstrations == 44 * CONFIG.demonstrations_per_prompt
    shares = [row.rows for row in contents.labelers]
    assert len(shares) == CONFIG.labelers and min(shares) > 0
    assert sum(shares) == contents.demonstrations
