"""app/schemas/runs.py: every kind's hyperparameters, their defaults and their refusals."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from app.schemas.runs import (
    HYPERPARAMETERS,
    REWARD_FUNCTIONS,
    DPOHyperparameters,
    GRPOHyperparameters,
    LoraSettings,
    PPOHyperparameters,
    RewardHyperparameters,
    RLOOHyperparameters,
    SFTHyperparameters,
)

COMMON_OPEN = {
    "learning_rate": None,
    "batch_size": None,
    "gradient_accumulation_steps": None,
    "max_steps": None,
    "epochs": None,
    "max_length": None,
    "bf16": None,
    "gradient_checkpointing": None,
    "lora": None,
    "save_steps": None,
    "logging_steps": None,
    "seed": 0,
    "processes": 1,
    "distributed": None,
    "torch_dtype": None,
    "attn_implementation": None,
    "load_in_4bit": False,
}


def problems(schema: type[BaseModel], values: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        schema.model_validate(values)
    return [
        (".".join(str(part) for part in error["loc"]), error["msg"])
        for error in caught.value.errors()
    ]


def test_every_run_kind_but_generate_has_a_schema() -> None:
    assert {
        "sft": SFTHyperparameters,
        "reward": RewardHyperparameters,
        "dpo": DPOHyperparameters,
        "ppo": PPOHyperparameters,
        "rloo": RLOOHyperparameters,
        "grpo": GRPOHyperparameters,
    } == HYPERPARAMETERS


def test_empty_hyperparameters_leave_the_device_dependent_ones_open() -> None:
    assert SFTHyperparameters().model_dump() == {
        **COMMON_OPEN,
        "chat_template": "chatml",
        "packing": False,
    }
    assert RewardHyperparameters().model_dump() == {
        **COMMON_OPEN,
        "chat_template": "chatml",
        "use_margin": False,
        "center_rewards_coefficient": None,
    }
    assert DPOHyperparameters().model_dump() == {
        **COMMON_OPEN,
        "beta": 0.1,
        "loss_type": "sigmoid",
        "sft_weight": 0.0,
    }
    assert PPOHyperparameters().model_dump() == {
        **COMMON_OPEN,
        "max_completion_length": 32,
        "temperature": 1.0,
        "kl_coef": 0.05,
        "num_ppo_epochs": 4,
        "cliprange": 0.2,
        "vf_coef": 0.1,
    }
    assert RLOOHyperparameters().model_dump() == {
        **COMMON_OPEN,
        "max_completion_length": 32,
        "temperature": 1.0,
        "num_generations": 4,
        "use_vllm": None,
        "beta": 0.05,
    }
    assert GRPOHyperparameters().model_dump() == {
        **COMMON_OPEN,
        "max_completion_length": 32,
        "temperature": 1.0,
        "num_generations": 4,
        "use_vllm": None,
        "beta": 0.0,
        "loss_type": "dapo",
        "reward_functions": [],
        "reward_weights": None,
    }


def test_a_full_set_round_trips() -> None:
    values = {
        "learning_rate": 3e-5,
        "batch_size": 16,
        "gradient_accumulation_steps": 2,
        "max_steps": 500,
        "max_length": 2048,
        "bf16": True,
        "gradient_checkpointing": False,
        "lora": {
            "r": 8,
            "alpha": 16,
            "dropout": 0.0,
            "target_modules": ["q_proj", "v_proj"],
            "merge_adapter": False,
        },
        "save_steps": 50,
        "logging_steps": 5,
        "seed": 7,
        "processes": 4,
        "distributed": "fsdp",
        "torch_dtype": "bfloat16",
        "attn_implementation": "flash_attention_2",
        "load_in_4bit": True,
        "beta": 0.3,
        "loss_type": "ipo",
        "sft_weight": 0.5,
    }
    parsed = DPOHyperparameters.model_validate(values)
    assert parsed.model_dump() == {**values, "epochs": None, "lora": {**values["lora"]}}
    assert parsed.lora == LoraSettings(
        r=8, alpha=16.0, dropout=0.0, target_modules=["q_proj", "v_proj"]
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"learning_rate": -1e-4}, [("learning_rate", "Input should be greater than 0")]),
        ({"learning_rate": 0}, [("learning_rate", "Input should be greater than 0")]),
        ({"learning_rate": 2.0}, [("learning_rate", "Input should be less than or equal to 1")]),
        ({"batch_size": 0}, [("batch_size", "Input should be greater than or equal to 1")]),
        ({"max_steps": 0}, [("max_steps", "Input should be greater than or equal to 1")]),
        ({"epochs": 0}, [("epochs", "Input should be greater than 0")]),
        ({"max_length": 4}, [("max_length", "Input should be greater than or equal to 8")]),
        (
            {"gradient_accumulation_steps": 0},
            [("gradient_accumulation_steps", "Input should be greater than or equal to 1")],
        ),
        ({"seed": -1}, [("seed", "Input should be greater than or equal to 0")]),
        ({"learning_rate": float("nan")}, [("learning_rate", "Input should be a finite number")]),
        ({"lr": 1e-4}, [("lr", "Extra inputs are not permitted")]),
        ({"lora": {"r": 0}}, [("lora.r", "Input should be greater than or equal to 1")]),
        ({"lora": {"dropout": 1.0}}, [("lora.dropout", "Input should be less than 1")]),
        ({"lora": {"rank": 8}}, [("lora.rank", "Extra inputs are not permitted")]),
        (
            {"lora": {"target_modules": []}},
            [("lora.target_modules", "List should have at least 1 item after validation, not 0")],
        ),
        (
            {"max_steps": 10, "epochs": 1},
            [("", "Value error, give max_steps or epochs, not both")],
        ),
        (
            {"packing": "sometimes"},
            [("packing", "Input should be a valid boolean, unable to interpret input")],
        ),
        (
            {"torch_dtype": "float64"},
            [
                (
                    "torch_dtype",
                    "Input should be 'auto', 'float32', 'bfloat16' or 'float16'",
                )
            ],
        ),
        (
            {"attn_implementation": "flash_attention_2", "torch_dtype": "float32"},
            [
                (
                    "",
                    "Value error, flash_attention_2 runs in bfloat16 or float16 only: set "
                    "torch_dtype to one of them, or use sdpa",
                )
            ],
        ),
        (
            {"load_in_4bit": True},
            [
                (
                    "",
                    "Value error, load_in_4bit trains LoRA adapters on a frozen 4-bit base: "
                    "turn lora on",
                )
            ],
        ),
        (
            {"load_in_4bit": True, "lora": {"merge_adapter": True}},
            [
                (
                    "",
                    "Value error, a 4-bit base cannot take its adapter merged in: leave "
                    "merge_adapter off with load_in_4bit",
                )
            ],
        ),
        ({"processes": 0}, [("processes", "Input should be greater than or equal to 1")]),
        ({"processes": 17}, [("processes", "Input should be less than or equal to 16")]),
        (
            {"processes": 1.5},
            [("processes", "Input should be a valid integer, got a number with a fractional part")],
        ),
        (
            {"processes": 2, "distributed": "horovod"},
            [("distributed", "Input should be 'ddp', 'fsdp' or 'deepspeed-zero3'")],
        ),
        (
            {"distributed": "ddp"},
            [("", "Value error, distributed is a strategy for processes above 1")],
        ),
    ],
)
def test_bad_common_values_are_refused(
    values: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert problems(SFTHyperparameters, values) == expected


def test_every_training_kind_takes_several_processes_and_ppo_no_4_bit_model() -> None:
    assert problems(PPOHyperparameters, {"load_in_4bit": True, "lora": {"r": 8}}) == [
        ("", "Value error, PPO trains a full value model, which cannot load in 4 bits")
    ]
    for schema in (
        SFTHyperparameters,
        RewardHyperparameters,
        DPOHyperparameters,
        PPOHyperparameters,
        RLOOHyperparameters,
        GRPOHyperparameters,
    ):
        parsed = schema.model_validate({"processes": 16, "distributed": "deepspeed-zero3"})
        assert (parsed.processes, parsed.distributed) == (16, "deepspeed-zero3")


def test_kind_specific_values_are_checked() -> None:
    assert problems(RewardHyperparameters, {"center_rewards_coefficient": -0.1}) == [
        ("center_rewards_coefficient", "Input should be greater than or equal to 0")
    ]
    assert problems(RewardHyperparameters, {"beta": 0.1}) == [
        ("beta", "Extra inputs are not permitted")
    ]
    assert problems(DPOHyperparameters, {"beta": 0}) == [("beta", "Input should be greater than 0")]
    assert problems(DPOHyperparameters, {"loss_type": "orpo"}) == [
        ("loss_type", "Input should be 'sigmoid', 'hinge' or 'ipo'")
    ]
    assert problems(DPOHyperparameters, {"use_margin": True}) == [
        ("use_margin", "Extra inputs are not permitted")
    ]
    assert problems(PPOHyperparameters, {"kl_coef": -1}) == [
        ("kl_coef", "Input should be greater than or equal to 0")
    ]
    assert problems(PPOHyperparameters, {"cliprange": 1}) == [
        ("cliprange", "Input should be less than 1")
    ]
    assert problems(PPOHyperparameters, {"num_ppo_epochs": 0}) == [
        ("num_ppo_epochs", "Input should be greater than or equal to 1")
    ]
    assert problems(PPOHyperparameters, {"max_completion_length": 0}) == [
        ("max_completion_length", "Input should be greater than or equal to 1")
    ]
    assert problems(RLOOHyperparameters, {"num_generations": 1}) == [
        ("num_generations", "Input should be greater than or equal to 2")
    ]
    assert problems(RLOOHyperparameters, {"temperature": 0}) == [
        ("temperature", "Input should be greater than 0")
    ]
    for online in (PPOHyperparameters, RLOOHyperparameters, GRPOHyperparameters):
        assert problems(online, {"max_length": 512}) == [
            (
                "",
                "Value error, max_length does not apply to PPO, RLOO or GRPO: set "
                "max_completion_length",
            )
        ]


def test_rloo_batches_hold_whole_groups_of_generations() -> None:
    assert problems(RLOOHyperparameters, {"batch_size": 6, "num_generations": 4}) == [
        (
            "",
            "Value error, batch_size x gradient_accumulation_steps (6) must be a multiple of "
            "num_generations (4): each prompt's completions are scored together",
        )
    ]
    accepted = RLOOHyperparameters(batch_size=6, gradient_accumulation_steps=2, num_generations=4)
    assert accepted.batch_size == 6
    # Left open, the job picks a batch that fits.
    assert RLOOHyperparameters(num_generations=3).batch_size is None


def test_grpo_batches_hold_whole_groups_of_generations() -> None:
    assert problems(GRPOHyperparameters, {"batch_size": 6, "num_generations": 4}) == [
        (
            "",
            "Value error, batch_size x gradient_accumulation_steps (6) must be a multiple of "
            "num_generations (4): each prompt's completions are scored together",
        )
    ]


def test_grpo_reward_functions_are_known_names_each_with_a_weight() -> None:
    assert list(REWARD_FUNCTIONS) == ["length_penalty", "think_format"]
    chosen = GRPOHyperparameters(
        reward_functions=["think_format", "length_penalty"], reward_weights=[1.0, 0.5, 0.2]
    )
    assert chosen.reward_functions == ["think_format", "length_penalty"]
    assert chosen.reward_weights == [1.0, 0.5, 0.2]
    assert problems(GRPOHyperparameters, {"reward_functions": ["brevity"]}) == [
        (
            "reward_functions",
            "Value error, unknown reward function 'brevity'; choose from length_penalty, "
            "think_format",
        )
    ]
    assert problems(
        GRPOHyperparameters, {"reward_functions": ["length_penalty", "length_penalty"]}
    ) == [("reward_functions", "Value error, each reward function may be named once")]
    assert problems(
        GRPOHyperparameters, {"reward_functions": ["length_penalty"], "reward_weights": [1.0]}
    ) == [
        (
            "reward_weights",
            "Value error, needs 2 weights (the reward model's, then one per reward function), "
            "not 1",
        )
    ]
    assert problems(GRPOHyperparameters, {"reward_weights": [float("nan")]}) == [
        ("reward_weights.0", "Input should be a finite number")
    ]


def test_the_schemas_import_no_training_library() -> None:
    code = (
        "import sys, app.schemas.runs; "
        "print(sorted({'torch', 'transformers', 'trl', 'datasets'} & set(sys.modules)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"


def test_every_hyperparameter_has_a_title_and_a_reason() -> None:
    """The launch form labels each field with its title and explains it with its
    description (issue 16): a field added without them would show as a bare name."""
    missing = [
        f"{schema.__name__}.{name}"
        for schema in [*HYPERPARAMETERS.values(), LoraSettings]
        for name, info in schema.model_fields.items()
        if not info.title or not info.description
    ]
    assert missing == []
