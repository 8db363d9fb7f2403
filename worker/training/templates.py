"""Chat templates for base models whose tokenizer has none, chosen by name for a run.

A pretrained base model's tokenizer often has no chat template, and every snapshot Smiley trains
on is conversational. An SFT or reward run then names one (ChatML by default; the names are
app.schemas.runs.CHAT_TEMPLATES). The job sets it on the tokenizer, adds the template's marker
tokens the vocabulary lacks as special tokens (so they never merge with the text around them),
makes its end-of-turn token the eos token (so generation stops where an answer ends), and grows
the model's embeddings to the new vocabulary, as TRL's `clone_chat_template` does from a hub
tokenizer. The trained model is saved with the template and the tokens, so the runs after it
(DPO, PPO, RLOO, GRPO, generation) find them there. A tokenizer that has a template keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChatTemplate:
    jinja: str
    # Tokens the template writes, added as special tokens where the vocabulary lacks them.
    markers: tuple[str, ...]
    # The token that ends a turn, made the eos token; None keeps the tokenizer's own eos.
    end: str | None


CHAT_TEMPLATES: dict[str, ChatTemplate] = {
    # OpenAI's ChatML, as Qwen and many fine-tunes use it.
    "chatml": ChatTemplate(
        jinja=(
            "{% for message in messages %}"
            "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
            "{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        ),
        markers=("<|im_start|>", "<|im_end|>"),
        end="<|im_end|>",
    ),
    # Zephyr's: role markers, each turn ended by the tokenizer's own eos token.
    "zephyr": ChatTemplate(
        jinja=(
            "{% for message in messages %}"
            "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
            "{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
        ),
        markers=("<|system|>", "<|user|>", "<|assistant|>"),
        end=None,
    ),
}


def add_chat_template(tokenizer: Any, name: str) -> None:
    """Gives `tokenizer` the template `name`, with its marker tokens and end-of-turn eos."""
    template = CHAT_TEMPLATES[name]
    vocabulary = tokenizer.get_vocab()
    missing = [marker for marker in template.markers if marker not in vocabulary]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if template.end is not None:
        tokenizer.eos_token = template.end
    tokenizer.chat_template = template.jinja


def fit_model_to_tokenizer(model: Any, tokenizer: Any) -> None:
    """Grows `model`'s embeddings to the tokenizer's vocabulary (new rows are the mean of the
    old ones, transformers' default) and makes the tokenizer's eos the one it stops at."""
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    model.config.get_text_config().eos_token_id = tokenizer.eos_token_id
    if model.can_generate():
        model.generation_config.eos_token_id = tokenizer.eos_token_id
