"""One module per job kind. Training kinds (sft, reward, dpo, ppo, rloo, grpo) run through
worker/runner.py on the `gpu` queue (task `smiley.jobs.train`); dataset imports and exports
(datasets.py, task `smiley.datasets.run`) run on the `default` queue."""
