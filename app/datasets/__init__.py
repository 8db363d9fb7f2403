"""Datasets in and out: readers for the common formats (pure, streaming, no database)."""
