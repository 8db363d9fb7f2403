"""The tabs along the top of every page of a project, in one list.

A page under a project adds itself here (label, path under /projects/{id}); the partial
templates/partials/project_tabs.html draws them and marks the one the request is under."""

from __future__ import annotations

from dataclasses import dataclass

# (label, path under /projects/{id}); "" is the project's overview (the hub).
PROJECT_TABS: list[tuple[str, str]] = [
    ("Overview", ""),
    ("Prompts", "prompts"),
    ("Data", "data"),
    ("Queues", "queues"),
    ("Guideline", "guidelines"),
    ("Dashboard", "dashboard"),
    ("Agreement", "agreement"),
    ("Review", "review"),
    ("Datasets", "datasets"),
    ("Runs", "runs"),
    ("Generate", "generate"),
    ("Principles", "principles"),
    ("Evaluations", "evaluations"),
    ("Rounds", "rounds"),
]


@dataclass(frozen=True)
class Tab:
    label: str
    slug: str
    url: str
    current: bool


def project_tabs(project_id: int, path: str) -> list[Tab]:
    """The project's tabs, the one `path` is on (or under) marked current."""
    base = f"/projects/{project_id}"
    tabs = []
    for label, slug in PROJECT_TABS:
        url = f"{base}/{slug}" if slug else base
        current = path == url if not slug else path == url or path.startswith(url + "/")
        tabs.append(Tab(label=label, slug=slug or "overview", url=url, current=current))
    return tabs
