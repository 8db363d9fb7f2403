"""Loading policies, reward models and tokenizers from local folders, safetensors only.

A model folder may come from a user (a registered base model), so nothing in it is unpickled:
weights load with `use_safetensors=True`, remote code is never trusted, and a folder holding
only pickle weights (pytorch_model.bin, *.pt) is refused with a message saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.training.errors import JobInputError
from worker.training.templates import add_chat_template

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.ckpt")


def check_model_folder(folder: Path) -> Path:
    """`folder` if it holds config.json and safetensors weights; a JobInputError otherwise."""
    if not folder.is_dir():
        raise JobInputError(f"model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise JobInputError(f"model folder {folder} has no config.json")
    if not any(folder.glob("*.safetensors")):
        pickles = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
        if pickles:
            raise JobInputError(
                f"model folder {folder} holds only pickle weights ({', '.join(pickles)}), which "
                "are never loaded because unpickling can run code; convert them to safetensors"
            )
        raise JobInputError(f"model folder {folder} has no safetensors weights")
    return folder


def load_tokenizer(folder: Path, chat_template: str | None = None) -> Any:
    """The folder's tokenizer, with a pad token (the eos token when it names none). One without
    a chat template gets `chat_template` (worker/training/templates.py), or is refused."""
    tokenizer, _ = load_tokenizer_with_template(folder, chat_template)
    return tokenizer


def load_tokenizer_with_template(folder: Path, chat_template: str | None) -> tuple[Any, bool]:
    """`load_tokenizer`'s tokenizer, and whether it was given `chat_template` here (then the
    model it goes with must be fitted to it: templates.fit_model_to_tokenizer)."""
    from transformers import AutoTokenizer

    check_model_folder(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    added = False
    if tokenizer.chat_template is None:
        if chat_template is None:
            raise JobInputError(
                f"the tokenizer in {folder} has no chat template, which the conversational "
                "snapshots need: choose one for an SFT or reward run (chat_template), or start "
                "from a model that has one"
            )
        add_chat_template(tokenizer, chat_template)
        added = True
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, added


def load_policy(folder: Path, **kwargs: Any) -> Any:
    """A causal language model (AutoModelForCausalLM) from safetensors weights."""
    from transformers import AutoModelForCausalLM

    check_model_folder(folder)
    return AutoModelForCausalLM.from_pretrained(
        folder, use_safetensors=True, trust_remote_code=False, **kwargs
    )


def load_reward_model(folder: Path, pad_token_id: int | None = None, **kwargs: Any) -> Any:
    """A one-output sequence classifier (reward or value model) from safetensors weights.

    From a policy folder the score head is new (randomly initialised); from a reward model's
    folder it is the trained one."""
    from transformers import AutoModelForSequenceClassification

    check_model_folder(folder)
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=1, use_safetensors=True, trust_remote_code=False, **kwargs
    )
    # The classifier scores the last non-pad token, which it can only find with a pad id.
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id
    return model


def parameter_count(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters())
