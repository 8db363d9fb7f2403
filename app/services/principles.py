"""A project's principles (Constitutional AI): a name, a critique request and a revision
request each.

A principle version is never changed once stored: an edit stores a new version that names the
one it replaces (which is retired), and removing a principle retires it. So every revision a
critique run made names the exact text it was made under, and that text stays readable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.models import Principle, ResponseRevision, User
from app.models.base import utcnow
from app.schemas.critique import PrincipleCreate, PrincipleOut
from app.services.prompts import get_project_checked, storable_id
from app.services.queues import chunks


def list_principles(db: Session, project_id: int, *, history: bool = False) -> list[Principle]:
    """The current principles by name; with `history`, every version (newest first per name)."""
    get_project_checked(db, project_id)
    query = select(Principle).where(Principle.project_id == project_id)
    if not history:
        query = query.where(Principle.retired_at.is_(None))
    return list(db.scalars(query.order_by(Principle.name, Principle.version.desc())))


def get_principle(db: Session, principle_id: int) -> Principle:
    principle = db.get(Principle, principle_id) if storable_id(principle_id) else None
    if principle is None:
        raise NotFound(f"no principle with id {principle_id}")
    return principle


def principles_out(db: Session, principles: Sequence[Principle]) -> list[PrincipleOut]:
    counts = revision_counts(db, [principle.id for principle in principles])
    return [
        PrincipleOut.model_validate(principle).model_copy(
            update={"revisions": counts.get(principle.id, 0)}
        )
        for principle in principles
    ]


def revision_counts(db: Session, principle_ids: Sequence[int]) -> dict[int, int]:
    counts: Counter[int] = Counter()
    for chunk in chunks(list(principle_ids)):
        rows = db.execute(
            select(ResponseRevision.principle_id, func.count())
            .where(ResponseRevision.principle_id.in_(chunk))
            .group_by(ResponseRevision.principle_id)
        )
        counts.update({principle_id: count for principle_id, count in rows})
    return dict(counts)


def create_principle(
    db: Session, project_id: int, data: PrincipleCreate, acting: User
) -> Principle:
    get_project_checked(db, project_id)
    principle = Principle(
        project_id=project_id,
        name=data.name,
        critique_request=data.critique_request,
        revision_request=data.revision_request,
        version=1,
        created_by_id=acting.id,
    )
    db.add(principle)
    _flush_live_name(db, project_id, data.name)
    db.commit()
    return principle


def revise_principle(
    db: Session, principle_id: int, data: PrincipleCreate, acting: User
) -> Principle:
    """Stores the edit as the next version and retires the one it replaces; an edit that
    changes nothing is refused (it would make a version that says the same)."""
    current = _live(db, principle_id)
    if (data.name, data.critique_request, data.revision_request) == (
        current.name,
        current.critique_request,
        current.revision_request,
    ):
        raise InvalidInput("the edit changes nothing: the principle is kept as it is")
    current.retired_at = utcnow()
    db.flush()
    principle = Principle(
        project_id=current.project_id,
        name=data.name,
        critique_request=data.critique_request,
        revision_request=data.revision_request,
        version=current.version + 1,
        previous_id=current.id,
        created_by_id=acting.id,
    )
    db.add(principle)
    _flush_live_name(db, current.project_id, data.name)
    db.commit()
    return principle


def retire_principle(db: Session, principle_id: int) -> Principle:
    """Takes a principle out of the current list; it stays readable with its revisions."""
    principle = _live(db, principle_id)
    principle.retired_at = utcnow()
    db.commit()
    return principle


def _live(db: Session, principle_id: int) -> Principle:
    principle = get_principle(db, principle_id)
    if principle.retired_at is not None:
        newer = db.scalar(select(Principle.id).where(Principle.previous_id == principle.id))
        where = f": version {newer} replaced it" if newer is not None else ""
        raise Conflict(f"principle {principle.id} is retired{where}; edit the current version")
    return principle


def current_principles(
    db: Session, project_id: int, principle_ids: Sequence[int] | None, field: str
) -> list[Principle]:
    """The principles a critique run takes: the given ones (each a current principle of the
    project), or every current one; InvalidInput when there are none."""
    if principle_ids is None:
        found = list_principles(db, project_id)
        if not found:
            raise InvalidInput(
                f"project {project_id} has no principles yet: add one on its Principles page",
                field=field,
            )
        return found
    wanted = [pid for pid in principle_ids if storable_id(pid)]
    rows = {
        principle.id: principle
        for principle in db.scalars(select(Principle).where(Principle.id.in_(wanted)))
    }
    for principle_id in principle_ids:
        principle = rows.get(principle_id)
        if principle is None or principle.project_id != project_id:
            raise InvalidInput(
                f"no principle with id {principle_id} in project {project_id}", field=field
            )
        if principle.retired_at is not None:
            raise InvalidInput(
                f"principle {principle_id} ({principle.name}) is retired: use its current version",
                field=field,
            )
    return [rows[principle_id] for principle_id in principle_ids]


def _flush_live_name(db: Session, project_id: int, name: str) -> None:
    try:
        db.flush()
    except IntegrityError as error:
        db.rollback()
        taken = exists().where(
            Principle.project_id == project_id,
            Principle.name == name,
            Principle.retired_at.is_(None),
        )
        if db.scalar(select(taken)):
            raise Conflict(
                f"a principle named {name!r} exists in this project", field="name"
            ) from error
        raise
