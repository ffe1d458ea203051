"""Platform admins manage tenants in a real Chromium: create with a tier, suspend, delete for
good after typing the slug; at 390 px the page does not overflow; no CSP violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from agentops.models import Tenant
from tests.conftest import make_user

pytestmark = pytest.mark.browser


def test_platform_admin_creates_suspends_and_deletes_a_tenant(page, personas, login, browser_log):
    root = make_user("root", personas.tenant, "admin", is_superuser=True, is_staff=True)
    login(root)
    page.locator("details.usermenu summary").click()
    page.get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    page.locator("#id_name").fill("Initech")
    page.locator("#id_slug").fill("initech")
    page.locator("#id_tier").select_option("professional")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.locator(".message")).to_contain_text("Tenant initech created (Professional)")
    initech = Tenant.objects.get(slug="initech")
    row = page.locator(f"#tenant-{initech.pk}")
    row.get_by_role("button", name="Suspend").click()
    expect(page.locator(f"#tenant-{initech.pk}")).to_contain_text("suspended")
    assert not Tenant.objects.get(pk=initech.pk).is_active

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 390px screen"

    row = page.locator(f"#tenant-{initech.pk}")
    row.locator("summary", has_text="Delete").click()
    row.get_by_label("to delete every row").fill("initech")
    row.get_by_role("button", name="Delete for good").click()
    expect(page.locator(".message")).to_contain_text("Tenant initech deleted for good")
    assert not Tenant.objects.filter(slug="initech").exists()
    assert browser_log.csp_violations() == [] and browser_log.errors() == []
