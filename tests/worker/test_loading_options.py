"""worker/training/defaults.py pick_model_loading: the weights' dtype and attention
implementation every model of a job loads with, chosen per device, recorded with the reason,
and refused before anything loads where the worker cannot run them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.worker.job_support import Recorder, make_context
from worker.jobs import sft
from worker.training import defaults
from worker.training.defaults import loading_arguments, pick_model_loading
from worker.training.errors import JobInputError
from worker.training.loading import load_policy
from worker.training.synthetic import sft_rows, write_snapshot_folder


def test_defaults_per_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_model_loading("cpu", None, None) == {
        "torch_dtype": "float32",
        "attn_implementation": "sdpa",
        "load_in_4bit": False,
        "reasons": {
            "torch_dtype": "cpu: full precision",
            "attn_implementation": "cpu with float32 weights: torch's own",
        },
    }
    monkeypatch.setattr(defaults, "cuda_supports_bf16", lambda: True)
    monkeypatch.setattr(defaults, "flash_attn_installed", lambda: False)
    assert pick_model_loading("cuda", None, None) == {
        "torch_dtype": "bfloat16",
        "attn_implementation": "sdpa",
        "load_in_4bit": False,
        "reasons": {
            "torch_dtype": "CUDA device with bf16 support",
            "attn_implementation": "the flash_attn package is not installed",
        },
    }
    monkeypatch.setattr(defaults, "flash_attn_installed", lambda: True)
    chosen = pick_model_loading("cuda", None, None)
    assert (chosen["torch_dtype"], chosen["attn_implementation"]) == (
        "bfloat16",
        "flash_attention_2",
    )
    assert chosen["reasons"]["attn_implementation"] == (
        "CUDA, half precision, flash_attn installed"
    )
    # Full precision asked for: flash attention cannot run it, sdpa is chosen.
    given = pick_model_loading("cuda", "float32", None)
    assert (given["attn_implementation"], given["reasons"]["torch_dtype"]) == (
        "sdpa",
        "given in the run's hyperparameters",
    )
    monkeypatch.setattr(defaults, "cuda_supports_bf16", lambda: False)
    old = pick_model_loading("cuda", None, "eager")
    assert (old["torch_dtype"], old["attn_implementation"]) == ("float32", "eager")
    assert old["reasons"]["torch_dtype"] == "this CUDA device does not support bf16"


def test_what_the_worker_cannot_run_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(JobInputError, match="flash_attention_2 needs a CUDA device; this worker"):
        pick_model_loading("cpu", "bfloat16", "flash_attention_2")
    monkeypatch.setattr(defaults, "flash_attn_installed", lambda: False)
    monkeypatch.setattr(defaults, "cuda_supports_bf16", lambda: False)
    with pytest.raises(JobInputError, match="needs the flash_attn package, which this worker"):
        pick_model_loading("cuda", "float16", "flash_attention_2")
    with pytest.raises(JobInputError, match="bfloat16: this CUDA device does not support bf16"):
        pick_model_loading("cuda", "bfloat16", None)
    # A CPU build without half-precision kernels (this one has them: checked for real below).
    monkeypatch.setattr(defaults, "cpu_runs_dtype", lambda name: False)
    with pytest.raises(JobInputError, match="torch cannot compute in float16 on the CPU"):
        pick_model_loading("cpu", "float16", None)
    monkeypatch.undo()
    assert defaults.cpu_runs_dtype("bfloat16") is True
    assert pick_model_loading("cpu", "bfloat16", None)["torch_dtype"] == "bfloat16"


def test_load_in_4bit_is_refused_on_cpu_and_without_bitsandbytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(JobInputError, match=r"load_in_4bit needs a CUDA device .* on cpu"):
        pick_model_loading("cpu", None, None, load_in_4bit=True)
    monkeypatch.setattr(defaults, "cuda_supports_bf16", lambda: True)
    monkeypatch.setattr(defaults, "bitsandbytes_installed", lambda: False)
    with pytest.raises(JobInputError, match="load_in_4bit needs the bitsandbytes package"):
        pick_model_loading("cuda", None, None, load_in_4bit=True)
    monkeypatch.setattr(defaults, "bitsandbytes_installed", lambda: True)
    assert pick_model_loading("cuda", None, None, load_in_4bit=True)["load_in_4bit"] is True


def test_a_4bit_run_on_cpu_is_refused_before_anything_loads(tmp_path: Path, tiny: Path) -> None:
    hyperparameters = {"max_steps": 2, "load_in_4bit": True, "lora": {"r": 4}}
    with pytest.raises(JobInputError, match="load_in_4bit needs a CUDA device"):
        sft.run(make_context(tmp_path, "sft", hyperparameters, tiny, None, Recorder()))
    assert not tmp_path.joinpath("checkpoints").exists()


def test_loading_arguments() -> None:
    assert loading_arguments(pick_model_loading("cpu", "bfloat16", "eager")) == {
        "dtype": torch.bfloat16,
        "attn_implementation": "eager",
    }
    assert loading_arguments(pick_model_loading("cpu", "auto", "auto")) == {"dtype": "auto"}


def test_a_run_loads_and_trains_with_them_and_records_them(tmp_path: Path, tiny: Path) -> None:
    snapshot = write_snapshot_folder(tmp_path / "snapshot", "sft", sft_rows(20))
    hyperparameters = {"max_steps": 2, "torch_dtype": "bfloat16", "attn_implementation": "eager"}
    result = sft.run(make_context(tmp_path, "sft", hyperparameters, tiny, snapshot, Recorder()))

    assert (result.settings["torch_dtype"], result.settings["attn_implementation"]) == (
        "bfloat16",
        "eager",
    )
    assert result.settings["reasons"]["torch_dtype"] == "given in the run's hyperparameters"
    saved = load_policy(result.model_dir, dtype="auto")
    assert saved.dtype == torch.bfloat16

    # Refused before anything loads or trains: no checkpoint folder is made.
    refused = tmp_path / "refused"
    with pytest.raises(JobInputError, match="flash_attention_2 needs a CUDA device"):
        sft.run(
            make_context(
                refused,
                "sft",
                {"max_steps": 2, "attn_implementation": "flash_attention_2"},
                tiny,
                snapshot,
                Recorder(),
            )
        )
    assert not refused.exists()


def test_load_in_4bit_asks_for_nf4_with_the_runs_compute_dtype_on_the_ranks_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The arguments only (loading them needs CUDA and bitsandbytes, which this machine lacks)."""
    monkeypatch.setenv("LOCAL_RANK", "1")
    loading = {"torch_dtype": "bfloat16", "attn_implementation": "sdpa", "load_in_4bit": True}
    arguments = loading_arguments(loading)
    quantization = arguments.pop("quantization_config")
    assert arguments == {
        "dtype": torch.bfloat16,
        "attn_implementation": "sdpa",
        "device_map": {"": 1},
    }
    assert (quantization.load_in_4bit, quantization.bnb_4bit_quant_type) == (True, "nf4")
    assert quantization.bnb_4bit_use_double_quant is True
    assert quantization.bnb_4bit_compute_dtype == torch.bfloat16
