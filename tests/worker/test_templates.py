"""worker/training/templates.py and the jobs that use it: a base model whose tokenizer has no
chat template trains with the one the run names (ChatML by default), saved with the model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import get_args

import pytest

from app.schemas.runs import ChatTemplateName
from tests.worker.job_support import Recorder, make_context
from worker.jobs import reward, sft
from worker.training.errors import JobInputError
from worker.training.loading import load_policy, load_reward_model, load_tokenizer
from worker.training.synthetic import preference_rows, sft_rows, write_snapshot_folder
from worker.training.templates import CHAT_TEMPLATES

CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Path:
    """The tiny model as a pretrained base often comes: a tokenizer without a chat template."""
    folder = shutil.copytree(tiny, tmp_path_factory.mktemp("base") / "model")
    (folder / "chat_template.jinja").unlink()
    return folder


def test_the_web_apps_names_are_the_templates_here() -> None:
    assert get_args(ChatTemplateName) == tuple(CHAT_TEMPLATES) == ("chatml", "zephyr")


def test_a_tokenizer_without_a_template_is_refused_unless_one_is_chosen(base: Path) -> None:
    with pytest.raises(JobInputError, match="has no chat template") as refused:
        load_tokenizer(base)
    assert str(refused.value) == (
        f"the tokenizer in {base} has no chat template, which the conversational snapshots "
        "need: choose one for an SFT or reward run (chat_template), or start from a model "
        "that has one"
    )


def test_chatml_adds_its_markers_as_tokens_and_ends_turns_with_im_end(base: Path) -> None:
    tokenizer = load_tokenizer(base, "chatml")

    assert len(tokenizer) == 514
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 513)
    # The tiny tokenizer's own pad token stays.
    assert tokenizer.pad_token == "<|pad|>"
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n"
    pieces = tokenizer.tokenize(text)
    assert pieces[0] == "<|im_start|>"
    assert pieces.count("<|im_end|>") == 2


def test_zephyr_keeps_the_tokenizers_own_end_token(base: Path) -> None:
    tokenizer = load_tokenizer(base, "zephyr")

    # The tiny tokenizer already has <|user|>, <|assistant|>, <|system|>: nothing added.
    assert len(tokenizer) == 512
    assert tokenizer.eos_token == "<|end|>"
    assert tokenizer.apply_chat_template(CHAT, tokenize=False) == (
        "<|user|>\nhi<|end|>\n<|assistant|>\nhello<|end|>\n"
    )


def test_a_model_with_a_template_keeps_it(tiny: Path) -> None:
    assert load_tokenizer(tiny, "chatml").chat_template == load_tokenizer(tiny).chat_template
    assert len(load_tokenizer(tiny, "chatml")) == 512


def test_sft_from_a_base_without_a_template_trains_and_saves_chatml(
    tmp_path: Path, base: Path
) -> None:
    snapshot = write_snapshot_folder(tmp_path / "snapshot", "sft", sft_rows(200))
    recorder = Recorder()
    result = sft.run(
        make_context(
            tmp_path, "sft", {"max_steps": 150, "learning_rate": 1e-3}, base, snapshot, recorder
        )
    )

    losses = [value for _, value in recorder.series("loss")]
    assert len(losses) == 150
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1.0
    assert result.settings["chat_template"] == "chatml"
    assert result.settings["reasons"]["chat_template"] == "the base model's tokenizer has none"
    # Saved with the model: the next run (DPO, RLOO...) loads the template and the tokens.
    saved = load_tokenizer(result.model_dir)
    assert saved.chat_template == CHAT_TEMPLATES["chatml"].jinja
    assert (len(saved), saved.eos_token) == (514, "<|im_end|>")
    policy = load_policy(result.model_dir)
    assert policy.get_input_embeddings().num_embeddings == 514
    assert policy.config.eos_token_id == policy.generation_config.eos_token_id == 513
    # It learnt to end its answers with the new end token.
    prompt = saved.apply_chat_template(
        [{"role": "user", "content": "Tell me about the weather."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    answer = policy.generate(**prompt, max_new_tokens=60, do_sample=False)[0]
    assert 513 in answer[prompt["input_ids"].shape[1] :].tolist()


def test_a_reward_model_from_a_base_without_a_template_uses_the_chosen_one(
    tmp_path: Path, base: Path
) -> None:
    pairs = write_snapshot_folder(tmp_path / "pairs", "preference", preference_rows(40))
    result = reward.run(
        make_context(
            tmp_path,
            "reward",
            {"max_steps": 2, "chat_template": "zephyr"},
            base,
            pairs,
            Recorder(),
        )
    )

    assert result.settings["chat_template"] == "zephyr"
    assert load_tokenizer(result.model_dir).chat_template == CHAT_TEMPLATES["zephyr"].jinja
    assert load_reward_model(result.model_dir).config.num_labels == 1
