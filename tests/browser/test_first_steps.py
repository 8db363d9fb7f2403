"""The README's first steps in a real browser: admin logs in, makes a labeler, who logs in."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from app.models import Role
from app.schemas.users import UserCreate
from app.services import users
from tests.browser.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def login(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    # Keyboard only: Enter submits the form.
    page.get_by_label("Password").press("Enter")


def test_admin_creates_a_labeler_who_logs_in(live_server: LiveServer, page: Page) -> None:
    with live_server.db() as db:
        users.create_user(
            db, UserCreate(username="boss", role=Role.admin, password="boss password 1")
        )
    base = live_server.url

    login(page, base, "boss", "wrong password")
    expect(page.get_by_test_id("login-error")).to_have_text("wrong username or password")

    login(page, base, "boss", "boss password 1")
    expect(page.get_by_test_id("whoami")).to_have_text("boss · admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()

    form = page.get_by_test_id("create-user-form")
    form.get_by_label("Username").fill("lena")
    form.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("heading")).to_have_text("Created lena")
    temporary = page.get_by_test_id("one-time-password").inner_text()
    assert re.fullmatch(r"[a-z2-9]{5}(-[a-z2-9]{5}){3}", temporary)

    # Role change through htmx: the row updates in place, the page does not reload.
    page.get_by_role("link", name="Back to users").click()
    page.evaluate("window.__marker = 'same page'")
    row = page.get_by_test_id("user-row-lena")
    row.get_by_label("Role of lena").select_option("researcher")
    row.get_by_role("button", name="Save role").click()
    expect(page.get_by_test_id("user-row-lena")).to_contain_text("lena is now researcher.")
    assert page.evaluate("window.__marker") == "same page"
    page.reload()
    expect(page.get_by_test_id("user-row-lena").get_by_label("Role of lena")).to_have_value(
        "researcher"
    )

    page.get_by_test_id("logout").click()
    expect(page.get_by_test_id("notice")).to_have_text("You are logged out.")

    login(page, base, "lena", temporary)
    expect(page).to_have_url(f"{base}/account/password")
    expect(page.get_by_test_id("must-change")).to_be_visible()
    page.get_by_label("Current password").fill(temporary)
    page.get_by_label(re.compile(r"^New password \(")).fill("lena's own password")
    page.get_by_label("New password again").fill("lena's own password")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_test_id("notice")).to_have_text("Your password is changed.")
    expect(page.get_by_test_id("whoami")).to_have_text("lena · researcher")
    expect(page.get_by_test_id("run-counts")).to_contain_text("0 registered models")
