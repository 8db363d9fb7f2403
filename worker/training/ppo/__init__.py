# Copyright 2020-2026 The HuggingFace Team. All rights reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""TRL's PPOTrainer and PPOConfig, kept here because TRL 1.13 removed them.

Where it came from: TRL 1.12.0 (https://github.com/huggingface/trl, tag v1.12.0, Apache-2.0),
trl/experimental/ppo/ppo_trainer.py and ppo_config.py, and the five helpers of
trl/experimental/utils.py they use. TRL 1.13 dropped `trl.experimental.ppo`
(huggingface/trl#7020); Smiley's PPO job (worker/jobs/ppo.py) runs on this copy.

What changed from 1.12.0, to run on TRL 1.16 and transformers 5:
- relative imports made absolute (`trl.models.utils`, `trl.trainer.base_trainer`,
  `trl.trainer.utils`, `trl.trainer.base_config`), each still in TRL 1.16;
- the helpers from trl/experimental/utils.py copied into utils.py, so nothing here imports
  `trl.experimental`; `create_reference_model` keeps only the path PPOTrainer takes;
- the value-head models (modeling_value_head.py) are left out: PPOTrainer does not use them.

What changed to run in a process group (DDP), each marked `# Smiley:` in trainer.py:
- `save_model`, `null_ref_context`, the LoRA reference pass and `_save_checkpoint`'s model card
  unwrap the model (`accelerator.unwrap_model`) before reading `.policy` or `.config` off it:
  the DDP wrapper has neither, and the first checkpoint failed on the model card's `.config`;
- `is_distributed_loading_by_transformers` set (False), which transformers 5's `Trainer._save`
  reads on every rank but the main one (PPOTrainer does not call `Trainer.__init__`).

The code is otherwise TRL's, formatted as TRL formats it (ruff skips this folder).
"""

from worker.training.ppo.config import PPOConfig
from worker.training.ppo.trainer import PPOTrainer

__all__ = ["PPOConfig", "PPOTrainer"]
