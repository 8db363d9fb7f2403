"""The one error a job raises for inputs it cannot use."""

from __future__ import annotations


class JobInputError(ValueError):
    """A model folder, snapshot or setting a job cannot use; the message says which and why.

    Raised before training starts, so a refused job leaves no checkpoint and no model."""
