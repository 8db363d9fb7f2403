"""Self-reported labeler demographics: the answers one may give, and the aggregate admins see."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.schemas.common import Text

PREFER_NOT_TO_SAY = "prefer not to say"
AGE_RANGES = ("18-24", "25-34", "35-44", "45-54", "55-64", "65 or older", PREFER_NOT_TO_SAY)
GENDERS = ("woman", "man", "non-binary", PREFER_NOT_TO_SAY)
EDUCATION_LEVELS = (
    "less than high school",
    "high school",
    "some college",
    "bachelor's degree",
    "master's degree",
    "doctorate",
    PREFER_NOT_TO_SAY,
)
FREE_TEXT_MAX_LENGTH = 64

# Field name -> the answers it accepts; None: free text (trimmed, at most 64 characters).
FIELD_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "age_range": AGE_RANGES,
    "gender": GENDERS,
    "region": None,
    "education": EDUCATION_LEVELS,
    "first_language": None,
}
FIELD_LABELS = {
    "age_range": "Age",
    "gender": "Gender",
    "region": "Region",
    "education": "Education",
    "first_language": "First language",
}

# Aggregates never show a group smaller than this: such values are merged into OTHER.
MIN_GROUP_SIZE = 3
OTHER = f"other (fewer than {MIN_GROUP_SIZE})"
NOT_GIVEN = "not given"


def _choice(field: str, value: str | None) -> str | None:
    options = FIELD_OPTIONS[field]
    assert options is not None
    if value is None or value == "":
        return None
    if value not in options:
        raise ValueError("choose one of: " + ", ".join(options))
    return value


def _free_text(value: str | None) -> str | None:
    if value is None:
        return None
    # Inner runs of spaces (or newlines pasted in) become one space, so answers group cleanly.
    value = " ".join(value.split())
    if len(value) > FREE_TEXT_MAX_LENGTH:
        raise ValueError(f"at most {FREE_TEXT_MAX_LENGTH} characters")
    return value or None


class ProfileUpdate(BaseModel):
    """Every answer at once; None (or an empty string) clears it. All are optional."""

    model_config = ConfigDict(extra="forbid")

    age_range: Text | None = None
    gender: Text | None = None
    region: Text | None = Field(default=None, max_length=1000)
    education: Text | None = None
    first_language: Text | None = Field(default=None, max_length=1000)

    @field_validator("age_range", "gender", "education")
    @classmethod
    def _option(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _choice(str(info.field_name), value)

    _text = field_validator("region", "first_language")(
        classmethod(lambda cls, value: _free_text(value))
    )


class DemographicCount(BaseModel):
    value: str
    count: int


class DemographicField(BaseModel):
    field: str
    label: str
    counts: list[DemographicCount] = Field(
        description=f"Each answer given by at least {MIN_GROUP_SIZE} people, then "
        f"{OTHER!r} for the rest, then {NOT_GIVEN!r}; the counts add up to the population."
    )


class DemographicsSummary(BaseModel):
    population: int = Field(description="Active labelers; everyone counted is one of them.")
    min_group_size: int
    fields: list[DemographicField]
