"""A simulated world for demos and tests: a tiny language of prompts and answers
(world.py), a scripted judge with a hidden preference (judge.py), and labelers that work
through queues over the JSON API with that judge (labeler.py). Nothing here needs torch or
the worker."""
