"""LoRA runs save their adapter alone, naming the base folder they started from; every later
job (DPO from it, generation, scoring with a reward adapter) loads base plus adapter. Tiny
model, 3 steps each; merge_adapter is in test_job_sft.py."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.worker.job_support import Recorder, make_context
from worker.jobs import dpo, generate, reward, score, sft
from worker.training.errors import JobInputError
from worker.training.evaluation import score as reward_scores
from worker.training.loading import (
    adapter_chain,
    check_model_folder,
    load_policy,
    load_reward_model,
    load_tokenizer,
)
from worker.training.synthetic import preference_rows, prompt_rows, sft_rows, write_snapshot_folder

LORA = {"r": 4, "alpha": 8}


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lora-snapshots")
    return (
        write_snapshot_folder(root / "sft", "sft", sft_rows(40)),
        write_snapshot_folder(root / "pairs", "preference", preference_rows(40)),
    )


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file())


def run_sft(root: Path, base: Path, snapshot: Path, lora: dict[str, object]) -> Path:
    hyperparameters = {"max_steps": 3, "learning_rate": 1e-2, "lora": lora}
    result = sft.run(make_context(root, "sft", hyperparameters, base, snapshot, Recorder()))
    assert result.settings["merge_adapter"] is bool(lora.get("merge_adapter"))
    return result.model_dir


def test_a_lora_sft_run_saves_the_adapter_alone_and_later_jobs_load_base_plus_adapter(
    tmp_path: Path, tiny: Path, snapshots: tuple[Path, Path]
) -> None:
    demonstrations, pairs = snapshots
    # The base inside a data folder, as a registered base model is.
    data = tmp_path / "data"
    base = data / "models" / "base"
    shutil.copytree(tiny, base)
    adapter = run_sft(data / "runs" / "1", base, demonstrations, LORA)

    saved = sorted(path.name for path in adapter.iterdir())
    assert "adapter_config.json" in saved and "adapter_model.safetensors" in saved
    assert "model.safetensors" not in saved and "config.json" not in saved
    assert "tokenizer.json" in saved
    assert (adapter / "adapter_model.safetensors").stat().st_size * 10 < (
        base / "model.safetensors"
    ).stat().st_size
    assert folder_bytes(adapter) < folder_bytes(base)
    config = json.loads((adapter / "adapter_config.json").read_text())
    # Relative to the adapter's folder: the data folder can move whole.
    assert config["base_model_name_or_path"] == "../../../models/base"
    moved = tmp_path / "moved"
    shutil.move(data, moved)
    adapter = moved / "runs" / "1" / "model"
    base = moved / "models" / "base"
    assert check_model_folder(adapter) == adapter
    # A process group sizes its strategy by the full base folder's weights (worker/launch.py).
    assert adapter_chain(adapter) == [base.resolve(), adapter]

    # Base plus adapter, merged in memory: the same weights as the base's where LoRA adapted
    # nothing (embeddings), different where it did.
    policy = load_policy(adapter)
    plain = load_policy(base)
    assert not hasattr(policy, "peft_config")
    assert policy.num_parameters() == plain.num_parameters()
    weights, base_weights = policy.state_dict(), plain.state_dict()
    assert set(weights) == set(base_weights)
    assert torch.equal(
        weights["model.embed_tokens.weight"], base_weights["model.embed_tokens.weight"]
    )
    changed = [name for name in weights if not torch.equal(weights[name], base_weights[name])]
    assert changed and all("proj" in name for name in changed)

    # DPO from the adapter, itself with LoRA: an adapter naming the SFT adapter as its base.
    dpo_result = dpo.run(
        make_context(
            tmp_path / "dpo",
            "dpo",
            {"max_steps": 3, "lora": LORA},
            adapter,
            pairs,
            Recorder(),
        )
    )
    assert dpo_result.settings["merge_adapter"] is False
    assert dpo_result.settings["reasons"]["merge_adapter"].startswith("the adapter alone")
    assert (dpo_result.model_dir / "adapter_model.safetensors").is_file()
    chained = load_policy(dpo_result.model_dir)
    assert chained.num_parameters() == plain.num_parameters()
    # And without LoRA: full weights trained from base plus adapter.
    full = dpo.run(
        make_context(tmp_path / "full", "dpo", {"max_steps": 3}, adapter, pairs, Recorder())
    )
    assert (full.model_dir / "model.safetensors").is_file()
    assert "merge_adapter" not in full.settings

    # A generation run samples from base plus adapter.
    folder = tmp_path / "input"
    folder.mkdir()
    rows = [{"prompt_id": 1 + i, "messages": row["prompt"]} for i, row in enumerate(prompt_rows(2))]
    (folder / "prompts.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    params = {"max_new_tokens": 4, "samples_per_prompt": 1}
    ctx = make_context(
        tmp_path / "generate", "generate", params, dpo_result.model_dir, None, Recorder()
    )
    result = generate.run(replace(ctx, input_dir=folder))
    assert result.metrics == {"prompts": 2.0, "samples": 2.0}


def test_a_reward_adapter_keeps_its_trained_score_head(
    tmp_path: Path, tiny: Path, snapshots: tuple[Path, Path]
) -> None:
    hyperparameters = {"max_steps": 3, "learning_rate": 1e-2, "lora": LORA}
    result = reward.run(
        make_context(tmp_path, "reward", hyperparameters, tiny, snapshots[1], Recorder())
    )
    assert (result.model_dir / "adapter_model.safetensors").is_file()

    # The score head is the trained one (peft's modules_to_save), the same on every load.
    first = load_reward_model(result.model_dir)
    again = load_reward_model(result.model_dir)
    assert torch.equal(first.score.weight, again.score.weight)
    fresh = load_reward_model(tiny)
    assert not torch.equal(first.score.weight, fresh.score.weight)

    prompt = [{"role": "user", "content": "Tell me about the sea."}]
    row = {"response_id": 7, "prompt": prompt, "content": "The sea is warm and kind."}
    folder = tmp_path / "input"
    folder.mkdir()
    (folder / "responses.jsonl").write_text(json.dumps(row) + "\n")
    ctx = make_context(tmp_path / "score", "score", {}, result.model_dir, None, Recorder())
    written = score.run(replace(ctx, input_dir=folder)).model_dir / "scores.jsonl"
    tokenizer = load_tokenizer(result.model_dir)
    model = load_reward_model(result.model_dir, pad_token_id=tokenizer.pad_token_id).eval()
    expected = reward_scores(model, tokenizer, [prompt], [row["content"]])
    assert [json.loads(line)["score"] for line in written.read_text().splitlines()] == (
        pytest.approx(expected, abs=1e-5)
    )


def test_an_adapter_whose_base_is_gone_or_loops_is_refused(
    tmp_path: Path, tiny: Path, snapshots: tuple[Path, Path]
) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny, base)
    adapter = run_sft(tmp_path / "run", base, snapshots[0], LORA)
    shutil.rmtree(base)
    with pytest.raises(
        JobInputError, match=r"the base model folder .*/base of adapter .* does not exist"
    ):
        load_policy(adapter)

    config_path = adapter / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "base_model_name_or_path": "."}))
    with pytest.raises(JobInputError, match="names its bases in a loop"):
        check_model_folder(adapter)
    config_path.write_text(json.dumps({**config, "base_model_name_or_path": None}))
    with pytest.raises(JobInputError, match="names no base model"):
        check_model_folder(adapter)


def test_a_lora_run_that_gives_the_base_a_chat_template_saves_full_weights(
    tmp_path: Path, tiny: Path, snapshots: tuple[Path, Path]
) -> None:
    base = shutil.copytree(tiny, tmp_path / "base")
    (base / "chat_template.jinja").unlink()
    hyperparameters = {"max_steps": 3, "lora": LORA}
    result = sft.run(make_context(tmp_path, "sft", hyperparameters, base, snapshots[0], Recorder()))

    assert result.settings["merge_adapter"] is True
    assert result.settings["reasons"]["merge_adapter"] == (
        "the run gave the base model a chat template (its tokens and end token), which an "
        "adapter does not hold"
    )
    assert not (result.model_dir / "adapter_config.json").exists()
    policy = load_policy(result.model_dir)
    assert policy.get_input_embeddings().num_embeddings == 514
    assert policy.config.eos_token_id == 513
