"""app.services.demographics: one's own optional answers, and k-anonymous totals for admins."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import LabelerProfile, Role, User
from app.schemas.demographics import (
    AGE_RANGES,
    EDUCATION_LEVELS,
    GENDERS,
    NOT_GIVEN,
    OTHER,
    DemographicCount,
    DemographicField,
    DemographicsSummary,
    ProfileUpdate,
)
from app.services import demographics
from tests.conftest import make_user

# --- what may be answered -------------------------------------------------------------------


def test_the_option_lists() -> None:
    assert AGE_RANGES == (
        "18-24",
        "25-34",
        "35-44",
        "45-54",
        "55-64",
        "65 or older",
        "prefer not to say",
    )
    assert GENDERS == ("woman", "man", "non-binary", "prefer not to say")
    assert EDUCATION_LEVELS[-1] == "prefer not to say"
    assert OTHER == "other (fewer than 3)"


@pytest.mark.parametrize(
    ("field", "value", "options"),
    [
        ("age_range", "17", AGE_RANGES),
        ("age_range", "25-34 ", AGE_RANGES),
        ("gender", "Woman", GENDERS),
        ("education", "phd", EDUCATION_LEVELS),
    ],
)
def test_an_answer_outside_the_options_is_refused(
    field: str, value: str, options: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as refused:
        ProfileUpdate.model_validate({field: value})

    assert [(e["loc"], e["msg"]) for e in refused.value.errors()] == [
        ((field,), "Value error, choose one of: " + ", ".join(options))
    ]


def test_free_text_is_trimmed_and_empty_means_not_given() -> None:
    data = ProfileUpdate(
        region="  East \n Africa ", first_language="   ", age_range="", gender=None
    )

    assert data.model_dump() == {
        "age_range": None,
        "gender": None,
        "region": "East Africa",
        "education": None,
        "first_language": None,
    }
    assert ProfileUpdate(region="  " + "r" * 64 + "  ").region == "r" * 64


@pytest.mark.parametrize("field", ["region", "first_language"])
def test_free_text_over_64_characters_is_refused(field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ProfileUpdate.model_validate({field: "x" * 65})

    assert [(e["loc"], e["msg"]) for e in refused.value.errors()] == [
        ((field,), "Value error, at most 64 characters")
    ]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        ProfileUpdate.model_validate({"income": "high"})


# --- one's own answers ----------------------------------------------------------------------


def stored(db: Session, user: User) -> tuple[str | None, ...] | None:
    db.expire_all()
    profile = db.get(LabelerProfile, user.id)
    if profile is None:
        return None
    return (
        profile.age_range,
        profile.gender,
        profile.region,
        profile.education,
        profile.first_language,
    )


def test_save_update_and_clear_own_answers(db: Session, labeler: User) -> None:
    assert demographics.own_profile(db, labeler) is None

    saved = demographics.save_own_profile(
        db, labeler, ProfileUpdate(age_range="25-34", region="Kenya")
    )
    assert saved is not None and saved.user_id == labeler.id
    assert stored(db, labeler) == ("25-34", None, "Kenya", None, None)

    # Every save replaces all answers: what is left out is cleared.
    demographics.save_own_profile(db, labeler, ProfileUpdate(gender="woman", region="Kenya"))
    assert stored(db, labeler) == (None, "woman", "Kenya", None, None)
    assert demographics.own_profile(db, labeler) is not None

    assert demographics.save_own_profile(db, labeler, ProfileUpdate()) is None
    assert stored(db, labeler) is None
    assert demographics.own_profile(db, labeler) is None


def test_clearing_without_answers_stores_nothing(db: Session, labeler: User) -> None:
    assert demographics.save_own_profile(db, labeler, ProfileUpdate(region="  ")) is None
    assert db.scalar(select(func.count()).select_from(LabelerProfile)) == 0


def test_answers_belong_to_their_user(db: Session, labeler: User, admin: User) -> None:
    demographics.save_own_profile(db, labeler, ProfileUpdate(age_range="18-24"))

    assert demographics.own_profile(db, admin) is None
    assert stored(db, labeler) == ("18-24", None, None, None, None)


# --- the aggregate --------------------------------------------------------------------------


def answer(db: Session, username: str, role: Role = Role.labeler, **answers: str) -> User:
    user = make_user(db, username, role)
    if answers:
        demographics.save_own_profile(db, user, ProfileUpdate(**answers))
    return user


def counts(*pairs: tuple[str, int]) -> list[DemographicCount]:
    return [DemographicCount(value=value, count=count) for value, count in pairs]


def test_summary_merges_small_groups_and_counts_the_unanswered(db: Session) -> None:
    bachelor, masters = "bachelor's degree", "master's degree"
    people = [
        # username, age_range, gender, region, education, first_language
        ("l1", "25-34", "woman", "Kenya", bachelor, "English"),
        ("l2", "25-34", "woman", "kenya", bachelor, "english"),
        ("l3", "25-34", "woman", " Kenya ", masters, "Swahili"),
        ("l4", "18-24", "man", "Philippines", bachelor, "English"),
        ("l5", "18-24", "man", "Philippines", "high school", "Tagalog"),
        ("l6", "65 or older", "man", None, None, None),
        ("l7", None, "non-binary", None, None, None),
    ]
    for username, *values in people:
        fields = ("age_range", "gender", "region", "education", "first_language")
        answer(db, username, **{f: v for f, v in zip(fields, values, strict=True) if v})
    answer(db, "l8")
    # Not active labelers: never counted, whatever they answered.
    answer(db, "boss", Role.admin, age_range="45-54", gender="man", region="Kenya")
    answer(db, "sci", Role.researcher, age_range="45-54", gender="man", region="Kenya")
    gone = answer(db, "gone", age_range="45-54", gender="man", region="Kenya")
    gone.is_active = False
    db.commit()

    summary = demographics.summarize(db)

    assert summary == DemographicsSummary(
        population=8,
        min_group_size=3,
        fields=[
            DemographicField(
                field="age_range",
                label="Age",
                counts=counts(("25-34", 3), (OTHER, 3), (NOT_GIVEN, 2)),
            ),
            DemographicField(
                field="gender",
                label="Gender",
                counts=counts(("woman", 3), ("man", 3), (OTHER, 1), (NOT_GIVEN, 1)),
            ),
            DemographicField(
                field="region",
                label="Region",
                counts=counts(("Kenya", 3), (OTHER, 2), (NOT_GIVEN, 3)),
            ),
            DemographicField(
                field="education",
                label="Education",
                counts=counts((bachelor, 3), (OTHER, 2), (NOT_GIVEN, 3)),
            ),
            DemographicField(
                field="first_language",
                label="First language",
                counts=counts(("English", 3), (OTHER, 2), (NOT_GIVEN, 3)),
            ),
        ],
    )
    for field in summary.fields:
        assert sum(row.count for row in field.counts) == summary.population
        assert all(row.count >= 3 for row in field.counts[:-2]), "no small group is named"


def test_with_fewer_than_three_everyone_is_other(db: Session) -> None:
    answer(db, "l1", age_range="25-34", region="Kenya")
    answer(db, "l2", age_range="25-34", region="Peru")

    summary = demographics.summarize(db)

    assert summary.population == 2
    assert summary.fields[0].counts == counts((OTHER, 2), (NOT_GIVEN, 0))
    assert summary.fields[2].counts == counts((OTHER, 2), (NOT_GIVEN, 0))
    assert summary.fields[1].counts == counts((OTHER, 0), (NOT_GIVEN, 2))


def test_free_text_groups_are_ordered_by_size_then_name(db: Session) -> None:
    for number in range(3):
        answer(db, f"a{number}", first_language="spanish")
    for number in range(4):
        answer(db, f"b{number}", first_language="Hindi")
    for number in range(3):
        answer(db, f"c{number}", first_language="Arabic")

    languages = demographics.summarize(db).fields[4].counts

    assert languages == counts(
        ("Hindi", 4), ("Arabic", 3), ("spanish", 3), (OTHER, 0), (NOT_GIVEN, 0)
    )


def test_no_labelers_gives_an_empty_summary(db: Session, admin: User) -> None:
    summary = demographics.summarize(db)

    assert summary.population == 0
    assert [field.counts for field in summary.fields] == [counts((OTHER, 0), (NOT_GIVEN, 0))] * 5
