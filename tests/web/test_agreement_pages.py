"""The agreement page of a project and its CSV: admins and researchers read, labelers neither.

The figures are worked out by hand in tests/services/agreement/world.py."""

from __future__ import annotations

import html
import re
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import QueueKind, User
from app.schemas.agreement import AgreementPoint
from app.web.agreement import over_time_chart
from tests import factories
from tests.conftest import web_login
from tests.services.agreement.test_metrics import direct_alpha
from tests.services.agreement.world import World, build_world, make_project


@pytest.fixture
def world(db: Session) -> World:
    return build_world(db)


def texts(pattern: str, page: str) -> list[str]:
    return [html.unescape(found).strip() for found in re.findall(pattern, page, re.S)]


def by_testid(name: str, page: str) -> str:
    found = texts(rf'data-testid="{name}"[^>]*>(.*?)</', page)
    assert len(found) == 1, (name, found)
    return found[0]


def paragraph(name: str, page: str) -> str:
    """The whole text of the <p> with that test id, its links' text included."""
    found = re.findall(rf'<p[^>]*data-testid="{name}"[^>]*>(.*?)</p>', page, re.S)
    assert len(found) == 1, (name, found)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found[0])).split())


def rows(name: str, page: str) -> list[list[str]]:
    """The cells of every row with data-testid=name, tags stripped."""
    found = []
    for row in re.findall(rf'<tr data-testid="{name}"[^>]*>(.*?)</tr>', page, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        found.append([" ".join(html.unescape(re.sub(r"<[^>]+>", "", c)).split()) for c in cells])
    return found


def error_message(page: str) -> str:
    return by_testid("error-message", page)


# --- the page ---------------------------------------------------------------------------------


def test_admin_sees_the_figures_tables_chart_and_csv_link(
    client: TestClient, world: World, admin: User
) -> None:
    web_login(client, admin.username)

    response = client.get(f"/projects/{world.project.id}/agreement")

    assert response.status_code == 200
    page = response.text
    # 10 of 27 = 37.0%; alpha and tau as computed in test_service (shown to 3 places).
    assert by_testid("overall-pairwise", page) == "37.0%"
    assert by_testid("overall-n", page) == "n = 27 labeler pairs on 11 response pairs"
    assert by_testid("overall-tau", page) == f"{(-2 + 2 * 6**-0.5) / 7:.3f}"
    assert by_testid("overall-alpha", page) == f"{direct_alpha(slice(None)):.3f}"
    assert by_testid("overall-comparisons", page) == "8"
    # Only comparison queues are offered as filters (not "demos").
    assert texts(r'<option value="\d+" >(.*?)</option>', page) == ["chat", "gold", "v1", "v2"]
    # Per labeler: agreement 7/17 = 41.2%, 7/12 = 58.3%, 5/8 = 62.5%, 1/17 = 5.9%;
    # reliability 289/729, 289/594, 235/486, 127/729.
    assert rows("labeler-row", page) == [
        # The last column: labels an admin rejected (none here).
        ["ann", "2", "9", "41.2%", "7 / 17", "0.396", "—", "0"],
        ["bob", "2", "7", "58.3%", "7 / 12", "0.487", "100.0% (3 / 3)", "0"],
        ["cat", "2", "5", "62.5%", "5 / 8", "0.484", "66.7% (2 / 3)", "0"],
        ["dan", "2", "9", "5.9%", "1 / 17", "0.174", "—", "0"],
    ]
    assert [row[:3] for row in rows("version-row", page)] == [
        ["v1", "31.2%", "5 / 16"],
        ["v2", "40.0%", "2 / 5"],
    ]
    assert [row[:3] for row in rows("queue-row", page)] == [
        ["chat", "32.0%", "8 / 25"],
        ["gold", "100.0%", "2 / 2"],
    ]
    # Days 05-01 (5/5), 05-02 (3/20), 05-03 (2/2) on a 720 x 240 chart: x from 48 to 704,
    # y from 208 (0%) up to 12 (100%); 15% sits at 208 - 0.15 * 196 = 178.6.
    line = re.search(r'data-testid="agreement-line" points="([^"]+)"', page)
    assert line and line.group(1) == "48.0,12.0 376.0,178.6 704.0,12.0"
    assert "<title>2024-05-02: 15% of 20 labeler pairs</title>" in page
    assert re.search(r"<script(?! src=\"/static/vendor/htmx)", page) is None
    link = re.search(r'href="([^"]+)" data-testid="labelers-csv"', page)
    assert link and link.group(1) == f"/projects/{world.project.id}/agreement/labelers.csv"


def test_researcher_sees_the_page_without_the_csv_link(
    client: TestClient, world: World, researcher: User
) -> None:
    web_login(client, researcher.username)

    response = client.get(f"/projects/{world.project.id}/agreement")

    assert response.status_code == 200
    assert by_testid("overall-pairwise", response.text) == "37.0%"
    assert 'data-testid="labelers-csv"' not in response.text


def test_filters_narrow_the_page_and_the_csv_link(
    client: TestClient, world: World, admin: User
) -> None:
    web_login(client, admin.username)

    response = client.get(
        f"/projects/{world.project.id}/agreement",
        params={"queue_id": str(world.gold.id), "guideline_version_id": ""},
    )

    page = response.text
    assert response.status_code == 200
    assert by_testid("overall-pairwise", page) == "100.0%"
    assert by_testid("overall-n", page) == "n = 2 labeler pairs on 2 response pairs"
    assert [row[0] for row in rows("labeler-row", page)] == ["bob", "cat"]
    assert [row[0] for row in rows("queue-row", page)] == ["gold"]
    assert f'<option value="{world.gold.id}" selected>gold</option>' in page
    link = re.search(r'href="([^"]+)" data-testid="labelers-csv"', page)
    assert link and html.unescape(link.group(1)) == (
        f"/projects/{world.project.id}/agreement/labelers.csv?queue_id={world.gold.id}"
    )


def test_project_without_comparisons_shows_dashes_and_no_chart(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db, "Quiet")
    db.commit()
    web_login(client, admin.username)

    page = client.get(f"/projects/{project.id}/agreement").text

    assert by_testid("overall-pairwise", page) == "—"
    assert by_testid("overall-alpha", page) == "—"
    assert by_testid("overall-tau", page) == "—"
    assert by_testid("overall-n", page) == "n = 0 labeler pairs on 0 response pairs"
    assert 'data-testid="agreement-chart"' not in page
    assert by_testid("no-agreement-over-time", page) == (
        "No response pair has been ordered by two labelers yet."
    )
    # The empty page says what to do next (issue 16).
    assert paragraph("next-step", page) == (
        "This project has no comparison queue: agreement is measured on comparisons. "
        "Add a comparison queue with an overlap of 2 or more."
    )
    assert f'<a href="/projects/{project.id}/queues">Add a comparison queue</a>' in page


def test_a_queue_of_overlap_one_is_named_as_the_next_step(
    client: TestClient, db: Session, admin: User
) -> None:
    project = make_project(db, "Quiet")
    queue = factories.make_queue(db, project, QueueKind.comparison, name="Pairs")
    factories.make_queue(db, project, QueueKind.comparison, name="Doubles", overlap=2)
    db.commit()
    web_login(client, admin.username)

    page = client.get(f"/projects/{project.id}/agreement").text

    assert paragraph("next-step", page) == (
        "Set the queue's overlap to 2 or more so each task goes to two labelers: Pairs (overlap 1)."
    )
    assert f'<a href="/queues/{queue.id}">Pairs</a>' in page


def test_the_figures_have_no_next_step_once_two_labelers_agree(
    client: TestClient, world: World, admin: User
) -> None:
    web_login(client, admin.username)
    page = client.get(f"/projects/{world.project.id}/agreement").text
    assert 'data-testid="agreement-next-step"' not in page


# --- CSV --------------------------------------------------------------------------------------


def test_admin_downloads_the_csv(client: TestClient, world: World, admin: User) -> None:
    web_login(client, admin.username)

    response = client.get(
        f"/projects/{world.project.id}/agreement/labelers.csv",
        params={"queue_id": str(world.gold.id)},
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text.splitlines() == [
        "labeler_id,username,comparisons,response_pairs,labeler_pairs,agreeing_pairs,"
        "pairwise_agreement,reliability,gold_pairs,gold_correct,gold_accuracy",
        f"{world.bob.id},bob,1,2,2,2,1.0,1.0,3,3,1.0",
        f"{world.cat.id},cat,1,2,2,2,1.0,1.0,3,2,{2 / 3!r}",
    ]


# --- who may, and what is not there -----------------------------------------------------------


def test_labeler_gets_403_on_the_page_and_the_csv(
    client: TestClient, world: World, labeler: User
) -> None:
    web_login(client, labeler.username)

    page = client.get(f"/projects/{world.project.id}/agreement")
    csv = client.get(f"/projects/{world.project.id}/agreement/labelers.csv")

    assert (page.status_code, error_message(page.text)) == (
        403,
        "this needs the admin or researcher role",
    )
    assert (csv.status_code, error_message(csv.text)) == (403, "this needs the admin role")


def test_researcher_gets_403_on_the_csv(client: TestClient, world: World, researcher: User) -> None:
    web_login(client, researcher.username)

    response = client.get(f"/projects/{world.project.id}/agreement/labelers.csv")

    assert (response.status_code, error_message(response.text)) == (
        403,
        "this needs the admin role",
    )


def test_visitor_is_sent_to_login(client: TestClient, world: World) -> None:
    response = client.get(f"/projects/{world.project.id}/agreement")

    assert response.status_code == 303
    assert response.headers["location"] == (
        f"/login?next=%2Fprojects%2F{world.project.id}%2Fagreement"
    )


def test_unknown_project_queue_or_bad_filter(client: TestClient, world: World, admin: User) -> None:
    web_login(client, admin.username)

    unknown = client.get("/projects/999999/agreement")
    other_queue = client.get(
        f"/projects/{world.other.id}/agreement", params={"queue_id": str(world.chat.id)}
    )
    bad = client.get(f"/projects/{world.project.id}/agreement", params={"queue_id": "chat"})
    csv = client.get("/projects/999999/agreement/labelers.csv")

    assert (unknown.status_code, error_message(unknown.text)) == (
        404,
        "no project with id 999999",
    )
    assert (other_queue.status_code, error_message(other_queue.text)) == (
        404,
        f"no queue with id {world.chat.id} in project {world.other.id}",
    )
    assert (bad.status_code, error_message(bad.text)) == (422, "queue_id must be a number")
    assert csv.status_code == 404


# --- the chart's layout -----------------------------------------------------------------------


def point(day: int, rate: float, pairs: int = 4) -> AgreementPoint:
    return AgreementPoint(
        start=date(2024, 5, day),
        pairwise_agreement=rate,
        agreeing_pairs=round(rate * pairs),
        labeler_pairs=pairs,
    )


def test_one_day_is_drawn_in_the_middle() -> None:
    chart = over_time_chart([point(1, 0.5)])

    assert chart.polyline == "376.0,110.0"
    assert chart.x_ticks == [(376.0, "2024-05-01")]
    assert [text for _, text in chart.y_ticks] == ["0%", "25%", "50%", "75%", "100%"]


def test_days_are_placed_by_date_not_by_index() -> None:
    # 05-01, 05-02 and 05-05: 4 days wide, so 05-02 is a quarter of the way (48 + 164).
    chart = over_time_chart([point(1, 1.0), point(2, 0.0), point(5, 0.25)])

    assert chart.polyline == "48.0,12.0 212.0,208.0 704.0,159.0"
    assert [text for _, text in chart.x_ticks] == ["2024-05-01", "2024-05-03", "2024-05-05"]
