"""What the job modules share: the tiny offline model, safe loading, device defaults, the
progress callback and snapshot reading. torch/transformers/trl are imported only here and in
worker/jobs, never under app/."""
