"""Agreement between labelers: pure metrics (metrics.py) and their reading of the database."""
