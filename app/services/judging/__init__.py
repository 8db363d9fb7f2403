"""AI judges beside people: judge runs label comparison tasks with a model (launching.py,
recording.py), generative judges are asked with a versioned template (templates.py), and
agreement.py measures each judge against the labelers' consensus."""
