"""Labeler demographics: each person sets their own answers; admins see only k-anonymous counts.

No function here returns another person's answers: the one read of a profile is by its owner."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict
from app.models import LabelerProfile, Role, User
from app.schemas.demographics import (
    FIELD_LABELS,
    FIELD_OPTIONS,
    MIN_GROUP_SIZE,
    NOT_GIVEN,
    OTHER,
    DemographicCount,
    DemographicField,
    DemographicsSummary,
    ProfileUpdate,
)


def own_profile(db: Session, user: User) -> LabelerProfile | None:
    """The signed-in user's own answers (None: never given, or all cleared)."""
    return db.get(LabelerProfile, user.id)


def save_own_profile(db: Session, user: User, data: ProfileUpdate) -> LabelerProfile | None:
    """Replaces the user's answers; clearing every answer deletes the row altogether."""
    answers = data.model_dump()
    profile = db.get(LabelerProfile, user.id)
    if all(value is None for value in answers.values()):
        if profile is not None:
            db.delete(profile)
            db.commit()
        return None
    if profile is None:
        profile = LabelerProfile(user_id=user.id)
        db.add(profile)
    for field, value in answers.items():
        setattr(profile, field, value)
    try:
        db.commit()
    except IntegrityError as error:
        # The same user saving from two tabs at once; the other save won.
        db.rollback()
        raise Conflict("your answers were saved from elsewhere just now; try again") from error
    return profile


def summarize(db: Session) -> DemographicsSummary:
    """Counts per answer over the active labelers, with every group under MIN_GROUP_SIZE
    merged into OTHER, so no one person's answer can be read off the table."""
    columns = [getattr(LabelerProfile, field) for field in FIELD_OPTIONS]
    rows = db.execute(
        select(*columns)
        .select_from(User)
        .outerjoin(LabelerProfile, LabelerProfile.user_id == User.id)
        .where(User.role == Role.labeler, User.is_active.is_(True))
    ).all()
    fields = [
        DemographicField(
            field=field,
            label=FIELD_LABELS[field],
            counts=_counts([row[index] for row in rows], FIELD_OPTIONS[field]),
        )
        for index, field in enumerate(FIELD_OPTIONS)
    ]
    return DemographicsSummary(population=len(rows), min_group_size=MIN_GROUP_SIZE, fields=fields)


def _counts(answers: list[str | None], options: tuple[str, ...] | None) -> list[DemographicCount]:
    given = [answer for answer in answers if answer is not None]
    if options is None:
        groups = _free_text_groups(given)
        order = sorted(groups, key=lambda label: (-groups[label], label.casefold()))
    else:
        groups = Counter(given)
        order = [option for option in options if option in groups]
    shown = [label for label in order if groups[label] >= MIN_GROUP_SIZE]
    merged = sum(count for label, count in groups.items() if count < MIN_GROUP_SIZE)
    return [
        *(DemographicCount(value=label, count=groups[label]) for label in shown),
        DemographicCount(value=OTHER, count=merged),
        DemographicCount(value=NOT_GIVEN, count=len(answers) - len(given)),
    ]


def _free_text_groups(given: list[str]) -> Counter[str]:
    """Free-text answers grouped regardless of case, each group under its commonest spelling."""
    spellings: dict[str, Counter[str]] = {}
    for answer in given:
        spellings.setdefault(answer.casefold(), Counter())[answer] += 1
    groups: Counter[str] = Counter()
    for variants in spellings.values():
        label = min(variants, key=lambda spelling: (-variants[spelling], spelling))
        groups[label] = sum(variants.values())
    return groups
