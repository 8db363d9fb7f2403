"""Each labeler's reliability over a whole project, cached in this process.

A task's consensus weighs its labelers by their reliability over every counting comparison of
the project, which means reading them all: seconds at a million comparisons, for one task.
The weights only change when the counted comparisons do, so they are kept per project under a
fingerprint of those comparisons from one aggregate query (`fingerprint`): their number, the
largest and sum of their ids, the sums of their labelers and tasks, the latest creation time.
A new (or removed) comparison changes it, and the next consensus recomputes. Comparisons are
never edited in place (a re-judgement is a new comparison), so nothing else can change the
weights unseen.

That query still reads every comparison of the project (a second or two at a million), so a
cheaper check comes first (`anything_new`): the number of comparisons anywhere and the newest
one, from the primary key. While that stays the same, no comparison was added or removed and
the cached weights stand; when it moves, the project's fingerprint decides.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Comparison, Queue, Task
from app.services.agreement import metrics
from app.services.agreement.consensus import labeler_reliability
from app.services.agreement.loading import counted_comparisons
from app.services.agreement.ratings import Ratings

Key = tuple[object, ...]
Reliability = Mapping[int, float]


def anything_new(db: Session) -> Key:
    """(comparisons, the newest one's id and creation time), over every project: cheap (an
    index count and one primary key lookup); a comparison added or removed anywhere changes it
    (new ones take ids above every existing one)."""
    count = db.scalar(select(func.count()).select_from(Comparison))
    newest = db.execute(
        select(Comparison.id, Comparison.created_at).order_by(Comparison.id.desc()).limit(1)
    ).first()
    return (count, *(str(value) for value in newest or ()))


def fingerprint(db: Session, project_id: int) -> Key:
    """What identifies the counted comparisons of a project, from one aggregate query."""
    row = db.execute(
        select(
            func.count(),
            func.max(Comparison.id),
            func.sum(Comparison.id),
            func.sum(Comparison.labeler_id),
            func.sum(Comparison.task_id),
            func.max(Comparison.created_at),
        )
        .select_from(Comparison)
        .join(Task, Task.id == Comparison.task_id)
        .join(Queue, Queue.id == Task.queue_id)
        .where(counted_comparisons(project_ids=[project_id]))
    ).one()
    return tuple(None if value is None else str(value) for value in row)


def project_reliability(ratings: Ratings) -> Reliability:
    """Reliability of every labeler in `ratings`, smoothed toward their overall agreement."""
    # Read-only: one cached mapping is handed to every caller.
    return MappingProxyType(
        labeler_reliability(
            metrics.labeler_agreement(ratings), metrics.pairwise_agreement(ratings).rate
        )
    )


@dataclass
class _Entry:
    everywhere: Key | None
    project: Key
    reliability: Reliability


class ReliabilityCache:
    """The reliability of the most recently used projects, with the keys it was computed at.

    `computed`, `reused` and `fingerprinted` (project fingerprints taken) count what happened,
    for tests and the benchmark."""

    def __init__(self, projects: int = 64) -> None:
        self.projects = projects
        self.computed = self.reused = self.fingerprinted = 0
        self._found: OrderedDict[int, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, project_id: int, key: Key, compute: Callable[[], Reliability]) -> Reliability:
        """The project's reliability if cached under its fingerprint `key`, else `compute`d
        (take the key before `compute` reads, so a value is never older than its key)."""
        return self.lookup(project_id, None, lambda: key, compute)

    def lookup(
        self,
        project_id: int,
        everywhere: Key | None,
        project_key: Callable[[], Key],
        compute: Callable[[], Reliability],
    ) -> Reliability:
        """As `get`, but first: while `everywhere` (anything_new) is what it was when the
        value was stored, the value stands without taking the project's key at all."""
        with self._lock:
            found = self._found.get(project_id)
        if found is not None and everywhere is not None and found.everywhere == everywhere:
            return self._keep(project_id, found)
        key = project_key()
        with self._lock:
            self.fingerprinted += 1
        if found is not None and found.project == key:
            return self._keep(project_id, _Entry(everywhere, key, found.reliability))
        # Outside the lock: a slow computation must not hold up other projects' readers.
        reliability = compute()
        with self._lock:
            self.computed += 1
            self._store(project_id, _Entry(everywhere, key, reliability))
        return reliability

    def _keep(self, project_id: int, entry: _Entry) -> Reliability:
        with self._lock:
            self.reused += 1
            self._store(project_id, entry)
        return entry.reliability

    def _store(self, project_id: int, entry: _Entry) -> None:
        self._found[project_id] = entry
        self._found.move_to_end(project_id)
        while len(self._found) > self.projects:
            self._found.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._found.clear()
            self.computed = self.reused = self.fingerprinted = 0


CACHE = ReliabilityCache()


def cached_reliability(
    db: Session, project_id: int, compute: Callable[[], Reliability]
) -> Reliability:
    """The project's reliability from CACHE, or `compute`d (it reads after the keys are
    taken, so a cached value is never older than its keys)."""
    return CACHE.lookup(project_id, anything_new(db), lambda: fingerprint(db, project_id), compute)
