"""The dashboard page of a project and its CSVs: admins and researchers read, labelers neither,
and only admins download the table that names labelers.

The figures are worked out by hand in tests/services/test_dashboard.py. The page measures
queue progress now, long after the world's leases (2024) ran out: nothing is in progress."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Project, User
from app.schemas.queues import QueueProgress
from app.web.charts import progress_chart
from tests.conftest import web_login
from tests.services.test_dashboard import DashboardWorld, build_dashboard_world
from tests.web.helpers import snapshot

CSVS = ("queues", "agreement-over-time", "labelers", "categories", "flags", "cost")


@pytest.fixture
def world(db: Session) -> DashboardWorld:
    return build_dashboard_world(db)


def texts(pattern: str, page: str) -> list[str]:
    return [" ".join(html.unescape(found).split()) for found in re.findall(pattern, page, re.S)]


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


def attribute(testid: str, name: str, page: str) -> list[str]:
    """The `name` attribute of every element with data-testid=testid, in page order."""
    return re.findall(rf'<[^>]*data-testid="{testid}"[^>]*\b{name}="([^"]*)"', page)


# --- the page ---------------------------------------------------------------------------------


def test_admin_sees_every_section_with_its_numbers(
    client: TestClient, world: DashboardWorld, admin: User
) -> None:
    web_login(client, admin.username)

    response = client.get(f"/projects/{world.project.id}/dashboard")

    assert response.status_code == 200
    page = response.text
    assert rows("queue-row", page) == [
        ["demos", "demonstration", "3", "0", "3", "6", "3", "0",
         "no pace yet (nothing submitted in the last hour)"],
        ["pairs", "comparison", "4", "0", "2", "6", "2", "0",
         "no pace yet (nothing submitted in the last hour)"],
    ]  # fmt: skip
    # Progress bars over 260..704 (444 wide): demos 3 of 6 done, pairs 4 of 6.
    assert attribute("progress-chart-done", "width", page) == ["222.0", "296.0"]
    assert attribute("progress-chart-left", "width", page) == ["222.0", "148.0"]

    assert by_testid("overall-pairwise", page) == "66.7%"
    assert rows("agreement-row", page) == [
        ["2024-05-01", "100.0%", "2 / 2"],
        ["2024-05-02", "0.0%", "0 / 1"],
    ]
    line = re.search(r'data-testid="agreement-chart-line" points="([^"]+)"', page)
    assert line and line.group(1) == "48.0,12.0 704.0,208.0"

    assert rows("labeler-row", page) == [
        ["ann", "2", "1", "45.0 s", "40.0% (2 of 5)", "100.0% (n = 2)", "—"],
        ["bob", "1", "2", "40.0 s", "25.0% (1 of 4)", "66.7% (n = 3)", "100.0% (n = 1)"],
        ["cat", "0", "2", "70.0 s", "0.0% (0 of 2)", "0.0% (n = 1)", "0.0% (n = 1)"],
    ]

    # Categories with nothing counted are left out unless asked for (issue 16), and the
    # counts are a table only: no bar chart drawing the prompts column again.
    assert rows("category-row", page) == [
        ["Generation", "2", "3", "0", "3"],
        ["Open QA", "1", "0", "0", "0"],
        ["Brainstorming", "1", "0", "3", "3"],
        ["Chat", "1", "0", "2", "2"],
        ["Summarization", "1", "0", "0", "0"],
    ]
    assert paragraph("hidden-categories", page) == (
        "5 categories with nothing counted yet are not shown. Show all"
    )
    assert 'data-testid="category-chart"' not in page

    assert rows("flag-row", page) == [
        ["Fails to follow the instruction", "2", "1"],
        ["Hallucination", "3", "2"],
        ["@risk: harmful advice", "1", "1"],
        ["legacy_flag not in the label schema", "1", "1"],
    ]
    assert paragraph("hidden-flags", page) == (
        "1 flag with nothing counted yet is not shown. Show all"
    )
    assert 'data-testid="flag-chart"' not in page

    assert by_testid("spend-to-date", page) == "9.50"
    assert by_testid("usable-pairs", page) == "7"
    assert by_testid("cost-per-pair", page) == "0.2857"
    assert rows("cost-row", page) == [
        ["Demonstrations", "3", "2.50", "7.50"],
        ["Comparisons", "5", "0.40", "2.00"],
    ]

    base = f"/projects/{world.project.id}/dashboard"
    for name, testid in zip(
        CSVS,
        ("queues-csv", "agreement-csv", "labelers-csv", "categories-csv", "flags-csv", "cost-csv"),
        strict=True,
    ):
        assert re.search(rf'href="{base}/{name}.csv" data-testid="{testid}"', page), name
    # No inline script, style attribute or handler: the page passes a strict CSP.
    assert re.search(r"<script(?! src=)", page) is None
    assert " style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None


def test_show_all_brings_back_the_rows_with_nothing_counted(
    client: TestClient, world: DashboardWorld, admin: User
) -> None:
    web_login(client, admin.username)

    page = client.get(f"/projects/{world.project.id}/dashboard?show=all").text

    assert [row[0] for row in rows("category-row", page)] == [
        "Generation", "Open QA", "Brainstorming", "Chat", "Rewrite", "Summarization",
        "Classification", "Closed QA", "Extraction", "Other",
    ]  # fmt: skip
    assert rows("flag-row", page)[3] == ["Contains private information", "0", "0"]
    assert 'data-testid="hidden-categories"' not in page
    assert page.count(f'href="/projects/{world.project.id}/dashboard">Hide rows') == 2


def test_researcher_sees_the_page_without_the_labelers_csv(
    client: TestClient, world: DashboardWorld, researcher: User
) -> None:
    web_login(client, researcher.username)

    page = client.get(f"/projects/{world.project.id}/dashboard").text

    assert [row[0] for row in rows("labeler-row", page)] == ["ann", "bob", "cat"]
    assert 'data-testid="labelers-csv"' not in page
    assert 'data-testid="flags-csv"' in page


def test_empty_project_says_so(client: TestClient, db: Session, admin: User) -> None:
    project = Project(name="Quiet", label_schema={"flags": []})
    db.add(project)
    db.commit()
    web_login(client, admin.username)

    page = client.get(f"/projects/{project.id}/dashboard").text

    assert by_testid("no-queues", page) == "This project has no queues yet."
    assert by_testid("no-agreement", page) == (
        "No response pair has been ordered by two labelers yet."
    )
    assert by_testid("overall-pairwise", page) == "—"
    assert rows("labeler-row", page) == []
    assert "No labeler has worked on this project yet." in page
    assert rows("category-row", page) == []
    assert "No prompts yet: import some on the <a" in page
    assert paragraph("hidden-categories", page) == (
        "10 categories with nothing counted yet are not shown. Show all"
    )
    assert rows("flag-row", page) == []
    assert "The label schema has no flags and none was raised." in page
    assert by_testid("spend-to-date", page) == "0.00"
    assert by_testid("cost-per-pair", page) == "—"


def test_unknown_costs_are_shown_as_such(
    client: TestClient, db: Session, world: DashboardWorld, admin: User
) -> None:
    world.project.cost_per_comparison = None
    db.commit()
    web_login(client, admin.username)

    page = client.get(f"/projects/{world.project.id}/dashboard").text

    assert by_testid("spend-to-date", page) == "unknown"
    assert by_testid("cost-per-pair", page) == "—"
    assert rows("cost-row", page)[1] == ["Comparisons", "5", "not set", "unknown"]


def test_the_project_page_links_to_the_dashboard(
    client: TestClient, world: DashboardWorld, researcher: User
) -> None:
    web_login(client, researcher.username)

    page = client.get(f"/projects/{world.project.id}").text

    link = re.search(r'href="([^"]+)" data-testid="project-dashboard-link"', page)
    assert link and link.group(1) == f"/projects/{world.project.id}/dashboard"


# --- CSV --------------------------------------------------------------------------------------


def test_admin_downloads_each_csv(client: TestClient, world: DashboardWorld, admin: User) -> None:
    web_login(client, admin.username)
    base = f"/projects/{world.project.id}/dashboard"

    found = {name: client.get(f"{base}/{name}.csv") for name in CSVS}

    for name, response in found.items():
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == (
            f'attachment; filename="project-{world.project.id}-{name}.csv"'
        )
    assert found["labelers"].text == (
        "labeler_id,username,demonstrations,comparisons,labels,median_seconds,submitted,"
        "skipped,skip_rate,pairwise_agreement,agreement_pairs,gold_pairs,gold_accuracy\n"
        f"{world.ann.id},ann,2,1,3,45.0,3,2,0.4,1.0,2,0,\n"
        f"{world.bob.id},bob,1,2,3,40.0,3,1,0.25,{2 / 3},3,1,1.0\n"
        f"{world.cat.id},cat,0,2,2,70.0,2,0,0.0,0.0,1,1,0.0\n"
    )
    assert found["flags"].text == (
        "key,label,in_schema,items,comparisons\n"
        "fails_instruction,Fails to follow the instruction,true,2,1\n"
        "hallucination,Hallucination,true,3,2\n"
        "harmful_advice,'@risk: harmful advice,true,1,1\n"
        "private_information,Contains private information,true,0,0\n"
        "legacy_flag,legacy_flag,false,1,1\n"
    )
    assert found["categories"].text.splitlines()[:3] == [
        "category,prompts,demonstrations,comparisons,labels",
        "generation,2,3,0,3",
        "open_qa,1,0,0,0",
    ]
    assert found["cost"].text.splitlines()[-3:] == [
        "spend_to_date,9.50",
        "usable_pairs,7",
        "cost_per_usable_pair,0.2857",
    ]
    assert found["queues"].text == (
        "queue_id,name,kind,is_paused,tasks,required,done,in_progress,left,per_hour,eta_seconds\n"
        f"{world.demos.id},demos,demonstration,false,3,6,3,0,3,0,\n"
        f"{world.pairs.id},pairs,comparison,false,2,6,4,0,2,0,\n"
    )
    assert found["agreement-over-time"].text == (
        "day,pairwise_agreement,agreeing_pairs,labeler_pairs\n"
        "2024-05-01,1.0,2,2\n"
        "2024-05-02,0.0,0,1\n"
    )


def test_researcher_downloads_all_but_the_labelers_csv(
    client: TestClient, world: DashboardWorld, researcher: User
) -> None:
    web_login(client, researcher.username)
    base = f"/projects/{world.project.id}/dashboard"

    found = {name: client.get(f"{base}/{name}.csv") for name in CSVS}

    assert {name: response.status_code for name, response in found.items()} == {
        "queues": 200,
        "agreement-over-time": 200,
        "labelers": 403,
        "categories": 200,
        "flags": 200,
        "cost": 200,
    }
    assert error_message(found["labelers"].text) == "this needs the admin role"


# --- who may, and what is not there -----------------------------------------------------------


def test_labeler_gets_403_everywhere(
    client: TestClient, db: Session, world: DashboardWorld, labeler: User
) -> None:
    web_login(client, labeler.username)
    before = snapshot(db)
    base = f"/projects/{world.project.id}/dashboard"

    page = client.get(base)
    found = {name: client.get(f"{base}/{name}.csv") for name in CSVS}

    assert (page.status_code, error_message(page.text)) == (
        403,
        "this needs the admin or researcher role",
    )
    assert {name: response.status_code for name, response in found.items()} == dict.fromkeys(
        CSVS, 403
    )
    assert error_message(found["labelers"].text) == "this needs the admin role"
    assert error_message(found["cost"].text) == "this needs the admin or researcher role"
    assert snapshot(db) == before


def test_visitor_is_sent_to_login(client: TestClient, world: DashboardWorld) -> None:
    response = client.get(f"/projects/{world.project.id}/dashboard")

    assert response.status_code == 303
    assert response.headers["location"] == (
        f"/login?next=%2Fprojects%2F{world.project.id}%2Fdashboard"
    )


@pytest.mark.parametrize("project_id", [999_999, 2**63])
def test_unknown_project_is_404(client: TestClient, admin: User, project_id: int) -> None:
    web_login(client, admin.username)
    base = f"/projects/{project_id}/dashboard"

    responses = [client.get(base)] + [client.get(f"{base}/{name}.csv") for name in CSVS]

    assert [response.status_code for response in responses] == [404] * 7
    assert {error_message(response.text) for response in responses} == {
        f"no project with id {project_id}"
    }


# --- the charts' layout -----------------------------------------------------------------------


def test_progress_past_the_required_labels_stays_inside_its_bar() -> None:
    # A task's overlap lowered after its labels came: 5 done of 4 required, 1 in progress.
    over = QueueProgress(
        tasks=2, required=4, done=5, in_progress=1, left=0, per_hour=0, eta_seconds=None
    )
    empty = QueueProgress(
        tasks=0, required=0, done=0, in_progress=0, left=0, per_hour=0, eta_seconds=None
    )

    chart = progress_chart([("over", over), ("empty", empty)])

    assert [(s.part, s.count, s.x, s.width) for s in chart.rows[0].segments] == [
        ("done", 4, 260.0, 444.0),
        ("in-progress", 0, 704.0, 0.0),
        ("left", 0, 704.0, 0.0),
    ]
    assert chart.rows[0].summary == "over: 5 done, 1 in progress, 0 left of 4"
    assert chart.rows[1].segments == []
