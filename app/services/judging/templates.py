"""The judge prompt: a project's template versions, how a task becomes a prompt, and how a
reply becomes a ranking.

A template is versioned like a guideline: saving never edits a version, it adds the next one,
and every label a generative judge makes records the version it was asked with. The template
is plain text with four placeholders, replaced verbatim (no format strings, so braces in a
guideline are safe):

    {guideline}  the project's published guideline (the rubric)
    {conversation}  the prompt's turns, "User: ..." / "Assistant: ..."
    {responses}  the candidates, each under its letter: "Response A:", "Response B:", ...
    {letters}  the letters in use, "A, B, C"

The reply must hold exactly one line `Ranking: <letters>` naming every letter once, best
first, separated by ">" (better) or "=" (tie), and may hold one line `Scores: A=6, B=3` giving
every letter a 1-7 score that does not contradict the ranking. Anything else is not a label:
the reply is counted as unparsed and skipped, never stored as a guess.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.models import JudgeTemplate, User
from app.schemas.judging import JudgeTemplateCreate
from app.services.prompts import get_project_checked

LETTERS = string.ascii_uppercase
PLACEHOLDERS = ("{guideline}", "{conversation}", "{responses}", "{letters}")

DEFAULT_TEMPLATE = """You judge answers of an assistant by the guideline below.

# Guideline
{guideline}

# Conversation
{conversation}

# Candidate answers
{responses}

Rank the answers {letters} from best to worst by the guideline. Reply with one line
Ranking: followed by the letters best first, separated by > (better) or = (equally good),
for example "Ranking: B > A = C", and one line Scores: giving each a score from 1 (bad)
to 7 (excellent), for example "Scores: A=4, B=6, C=4".
"""


def list_templates(db: Session, project_id: int) -> list[JudgeTemplate]:
    get_project_checked(db, project_id)
    return list(
        db.scalars(
            select(JudgeTemplate)
            .where(JudgeTemplate.project_id == project_id)
            .order_by(JudgeTemplate.version.desc())
        )
    )


def get_template(db: Session, project_id: int, version: int) -> JudgeTemplate:
    found = db.scalar(
        select(JudgeTemplate).where(
            JudgeTemplate.project_id == project_id, JudgeTemplate.version == version
        )
    )
    if found is None:
        raise NotFound(
            f"project {project_id} has no judge template version {version}",
            field="template_version",
        )
    return found


def latest_template(db: Session, project_id: int) -> JudgeTemplate | None:
    return db.scalar(
        select(JudgeTemplate)
        .where(JudgeTemplate.project_id == project_id)
        .order_by(JudgeTemplate.version.desc())
        .limit(1)
    )


def save_template(
    db: Session, project_id: int, data: JudgeTemplateCreate, acting: User | None
) -> JudgeTemplate:
    """The next version of the project's judge template (committed). A body without the
    {responses} placeholder would ask the judge about answers it never sees: refused."""
    get_project_checked(db, project_id)
    _add(db, project_id, data.body, data.note.strip(), acting)
    db.commit()
    found = latest_template(db, project_id)
    assert found is not None
    return found


def _add(db: Session, project_id: int, body: str, note: str, acting: User | None) -> JudgeTemplate:
    if "{responses}" not in body:
        raise InvalidInput(
            "the template must show the answers: put {responses} where they go", field="body"
        )
    top = db.scalar(
        select(func.max(JudgeTemplate.version)).where(JudgeTemplate.project_id == project_id)
    )
    template = JudgeTemplate(
        project_id=project_id,
        version=(top or 0) + 1,
        body=body,
        note=note,
        created_by_id=acting.id if acting else None,
    )
    db.add(template)
    db.flush()
    return template


def template_for_run(
    db: Session, project_id: int, version: int | None, acting: User | None
) -> JudgeTemplate:
    """The version asked for; without one the latest, or the built-in template saved as
    version 1 (in the caller's transaction) when the project has none yet."""
    if version is not None:
        return get_template(db, project_id, version)
    return latest_template(db, project_id) or _add(
        db, project_id, DEFAULT_TEMPLATE, "the built-in template", acting
    )


def render(body: str, guideline: str, messages: list[dict[str, Any]], responses: list[str]) -> str:
    if len(responses) > len(LETTERS):
        raise InvalidInput(f"a judge ranks at most {len(LETTERS)} responses per task")
    conversation = "\n\n".join(
        f"{str(turn.get('role', '')).capitalize()}: {turn.get('content', '')}" for turn in messages
    )
    shown = "\n\n".join(
        f"Response {LETTERS[index]}:\n{text}" for index, text in enumerate(responses)
    )
    values = {
        "{guideline}": guideline,
        "{conversation}": conversation,
        "{responses}": shown,
        "{letters}": ", ".join(LETTERS[: len(responses)]),
    }
    # One pass, so a placeholder inside a guideline or an answer is left as written.
    pattern = re.compile("|".join(re.escape(key) for key in PLACEHOLDERS))
    return pattern.sub(lambda match: values[match.group(0)], body)


@dataclass(frozen=True)
class ParsedRanking:
    # Dense ranks (1 best), one per letter, in letter order.
    ranks: list[int]
    # 1-7 per letter, or None when the reply gave no Scores line.
    scores: list[int] | None


RANKING_LINE = re.compile(r"^\s*ranking\s*:\s*(.*?)\s*$", re.IGNORECASE)
SCORES_LINE = re.compile(r"^\s*scores\s*:\s*(.*?)\s*$", re.IGNORECASE)
RANKING = re.compile(r"^[A-Z](\s*[>=]\s*[A-Z])*$")
SCORE = re.compile(r"^([A-Z])\s*=\s*([1-7])$")


def parse_reply(reply: str, count: int) -> ParsedRanking | None:
    """The ranking of `count` responses (letters A...) in `reply`, or None when the reply does
    not follow the format exactly (module docstring)."""
    letters = LETTERS[:count]
    rankings = [m.group(1) for line in reply.splitlines() if (m := RANKING_LINE.match(line))]
    score_lines = [m.group(1) for line in reply.splitlines() if (m := SCORES_LINE.match(line))]
    if len(rankings) != 1 or len(score_lines) > 1:
        return None
    text = rankings[0]
    if not RANKING.match(text):
        return None
    tokens = re.findall(r"[A-Z]|[>=]", text)
    named = tokens[0::2]
    if sorted(named) != list(letters):
        return None
    ranks: dict[str, int] = {named[0]: 1}
    rank = 1
    for separator, letter in zip(tokens[1::2], named[1:], strict=True):
        rank += separator == ">"
        ranks[letter] = rank
    scores = None
    if score_lines:
        given: dict[str, int] = {}
        for part in score_lines[0].split(","):
            match = SCORE.match(part.strip())
            if match is None or match.group(1) in given:
                return None
            given[match.group(1)] = int(match.group(2))
        if sorted(given) != list(letters):
            return None
        # A better-ranked answer with a lower score (or tied answers with different scores)
        # contradicts the ranking: the reply says two things, so it says nothing.
        for a in letters:
            for b in letters:
                if ranks[a] < ranks[b] and given[a] < given[b]:
                    return None
                if ranks[a] == ranks[b] and given[a] != given[b]:
                    return None
        scores = [given[letter] for letter in letters]
    return ParsedRanking([ranks[letter] for letter in letters], scores)
