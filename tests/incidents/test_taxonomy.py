"""The tenant's own taxonomy (issue 13): categories and subcategories per tenant, kept on
tickets, offered to triage, learnt from imported history."""

from __future__ import annotations

import csv
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from agentops.models import Tenant
from incidents import services, taxonomy
from incidents.models import Category, TicketCategory
from incidents.pipeline import TRIAGE_TOOL
from knowledge.models import LabelledExample


def define(tenant, value, name, parent=None):
    return TicketCategory.objects.create(tenant=tenant, value=value, name=name, parent=parent)


def test_every_tenant_starts_with_the_nine_categories(personas):
    for tenant in (personas.tenant, personas.other_tenant):
        assert taxonomy.values_for(tenant) == list(Category.values)
    fresh = Tenant.objects.create(name="Initech", slug="initech")
    assert TicketCategory.objects.for_tenant(fresh).count() == 9
    assert taxonomy.label_for(fresh, "network") == "Network & VPN"


def test_tickets_keep_the_tenants_own_categories(personas, make_ticket, client_for):
    acme, globex = personas.tenant, personas.other_tenant
    facilities = define(acme, "facilities", "Facilities")
    define(acme, "badge-readers", "Badge readers", parent=facilities)
    ticket = make_ticket(acme, personas.requester, category="badge-readers")
    ticket.refresh_from_db()
    assert ticket.category == "badge-readers"  # kept, not dropped or turned into "other"
    assert ticket.get_category_display() == "Facilities / Badge readers"
    html = client_for(personas.agent).get(reverse("incidents:ticket-detail", args=[ticket.number]))
    assert "Facilities / Badge readers" in html.content.decode()
    # Triage may change it to another of the tenant's categories; unknown ones are refused.
    services.ticket_update(ticket=ticket, actor=None, category="facilities")
    with pytest.raises(ValidationError, match="Unknown category"):
        services.ticket_update(ticket=ticket, actor=None, category="payroll")
    # Another tenant's category is unknown here.
    with pytest.raises(ValidationError, match="Unknown category"):
        make_ticket(globex, personas.outsider, category="badge-readers")


def test_queue_rows_name_the_tenants_own_categories(personas, make_ticket, client_for):
    acme = personas.tenant
    facilities = define(acme, "facilities", "Facilities")
    define(acme, "badge-readers", "Badge readers", parent=facilities)
    make_ticket(acme, personas.requester, category="badge-readers", title="Badge reader dead")
    client = client_for(personas.agent)
    for headers in ({}, {"HX-Request": "true"}):  # the page and its results partial
        html = client.get(reverse("incidents:queue"), headers=headers).content.decode()
        assert "Facilities / Badge readers" in html


def test_a_retired_category_stays_on_its_tickets_but_is_not_offered(personas, make_ticket):
    acme = personas.tenant
    printers = define(acme, "printers", "Printers")
    ticket = make_ticket(acme, personas.requester, category="printers")
    TicketCategory.objects.for_tenant(acme).filter(pk=printers.pk).update(is_active=False)
    assert "printers" not in taxonomy.values_for(acme)
    services.ticket_update(ticket=ticket, actor=None, priority="high")  # still valid
    assert taxonomy.normalise(acme, "printers") == "other"


def test_triage_is_offered_the_tenants_categories(personas):
    acme = personas.tenant
    define(acme, "facilities", "Facilities")
    tool = taxonomy.triage_tool(acme, TRIAGE_TOOL)
    enum = tool.input_schema["properties"]["category"]["enum"]
    assert "facilities" in enum and "network" in enum
    assert "facilities" not in TRIAGE_TOOL.input_schema["properties"]["category"]["enum"]
    other = taxonomy.triage_tool(personas.other_tenant, TRIAGE_TOOL)
    assert "facilities" not in other.input_schema["properties"]["category"]["enum"]
    assert taxonomy.normalise(acme, "Facilities") == "facilities"  # by name, any case
    assert taxonomy.normalise(acme, "payroll") == "other"


def test_import_tickets_creates_and_uses_the_tenants_categories(personas, tmp_path):
    path = tmp_path / "history.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label"])
        writer.writerow(["1", "Badge reader at door 3 rejects my card", "Facilities / Badge"])
        writer.writerow(["2", "Laptop screen cracked", "Hardware"])
        writer.writerow(["3", "Payslip missing overtime", "Payroll"])
    call_command(
        "import_tickets",
        str(path),
        "--tenant=acme",
        "--text-column=text",
        "--label-column=label",
        "--id-column=id",
        stdout=StringIO(),
    )
    acme = personas.tenant
    values = taxonomy.values_for(acme)
    assert {"Facilities", "Facilities / Badge", "Payroll"} <= set(values)
    badge = TicketCategory.objects.for_tenant(acme).get(value="Facilities / Badge")
    assert badge.parent.value == "Facilities" and badge.name == "Badge"
    examples = dict(LabelledExample.objects.for_tenant(acme).values_list("ref", "category"))
    assert examples == {"1": "Facilities / Badge", "2": "hardware", "3": "Payroll"}
    assert "Payroll" not in taxonomy.values_for(personas.other_tenant)


def test_admin_adds_a_subcategory_and_refuses_another_tenants_parent(personas, client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    url = reverse("admin:incidents_ticketcategory_add")
    assert client.get(reverse("admin:incidents_ticketcategory_changelist")).status_code == 200
    network = TicketCategory.objects.for_tenant(personas.tenant).get(value="network")
    base = {"tenant": personas.tenant.pk, "position": 0, "is_active": "on"}
    response = client.post(url, {**base, "name": "Wi-Fi", "value": "", "parent": network.pk})
    assert response.status_code == 302
    wifi = TicketCategory.objects.for_tenant(personas.tenant).get(value="wi-fi")
    assert wifi.parent == network
    foreign = TicketCategory.objects.for_tenant(personas.other_tenant).get(value="network")
    response = client.post(url, {**base, "name": "Wired", "value": "", "parent": foreign.pk})
    assert response.status_code == 200 and "another tenant" in response.content.decode()
    response = client.post(url, {**base, "name": "Dup", "value": "wi-fi"})
    assert "already has a category" in response.content.decode()


# ------------------------------------------------------------ the ticket list's filter


def _category_options(html: str) -> list[str]:
    import re

    select = re.search(r'<select name="category".*?</select>', html, re.S)
    assert select is not None, "the ticket list has no category filter"
    return re.findall(r'<option value="([^"]*)"', select.group(0))


def test_the_ticket_list_filters_by_the_tenants_own_categories(personas, make_ticket, client_for):
    acme, globex = personas.tenant, personas.other_tenant
    TicketCategory.objects.for_tenant(acme).filter(value="hardware").update(is_active=False)
    facilities = define(acme, "facilities", "Facilities")
    define(acme, "badge-readers", "Badge readers", parent=facilities)
    define(globex, "payroll-system", "Payroll system")
    make_ticket(acme, personas.requester, title="badge broken", category="badge-readers")
    make_ticket(acme, personas.requester, title="vpn drops", category="network")
    queue = reverse("incidents:queue")

    acme_html = client_for(personas.agent).get(queue).content.decode()
    options = _category_options(acme_html)
    assert "facilities" in options and "badge-readers" in options and "network" in options
    assert "Facilities / Badge readers" in acme_html
    # A retired category is still a filter (its tickets keep it), after the active ones.
    assert options[-1] == "hardware" and "Hardware (retired)" in acme_html
    assert "payroll-system" not in options and "Payroll system" not in acme_html

    globex_html = client_for(personas.outsider).get(queue).content.decode()
    globex_options = _category_options(globex_html)
    assert "payroll-system" in globex_options
    assert "facilities" not in globex_options and "badge-readers" not in globex_options

    # Filtering by the tenant's own subcategory works; another tenant's value is refused.
    html = client_for(personas.agent).get(queue, {"category": "badge-readers"}).content.decode()
    assert "badge broken" in html and "vpn drops" not in html
    html = client_for(personas.agent).get(queue, {"category": "payroll-system"}).content.decode()
    assert "Some filters were not understood" in html and "category" in html


# ------------------------------------------------------------ the create_ticket tool


def test_create_ticket_offers_each_tenant_its_own_categories(personas):
    from agents.tools import registry

    acme, globex = personas.tenant, personas.other_tenant
    define(acme, "facilities", "Facilities")
    define(globex, "payroll-system", "Payroll system")
    tool = registry.get("create_ticket")

    def category_of(tenant):
        [spec] = registry.specs(["create_ticket"], tenant=tenant)
        return spec.input_schema["properties"]["category"]

    acme_category, globex_category = category_of(acme), category_of(globex)
    assert "facilities" in acme_category["enum"] and "network" in acme_category["enum"]
    assert "facilities (Facilities)" in acme_category["description"]
    assert "payroll-system" not in acme_category["enum"]
    assert "Payroll system" not in acme_category["description"]
    assert "payroll-system" in globex_category["enum"]
    assert "facilities" not in globex_category["enum"]

    # The arguments are checked against the same tenant's list.
    args = {"title": "Badge reader dead", "description": "Door 3", "category": "facilities"}
    assert registry.validate_args(tool, args, tenant=acme) == []
    assert registry.validate_args(tool, args, tenant=globex)  # not one of globex's
    assert registry.validate_args(tool, {**args, "category": "payroll-system"}, tenant=acme)


def test_the_model_sees_and_may_use_only_its_tenants_categories(personas, monkeypatch):
    from agentops.models import Membership
    from agents import engine
    from agents import services as agent_services
    from agents.models import ToolCall
    from approvals.models import ApprovalRequest
    from approvals.services import decide
    from incidents.models import Ticket
    from tests.agents.scripted import ScriptedBackend, tool_reply

    acme, globex = personas.tenant, personas.other_tenant
    define(acme, "facilities", "Facilities")
    define(globex, "payroll-system", "Payroll system")
    seen = {}

    def first(*, tools, **kwargs):
        seen.update({t.name: t.input_schema for t in tools})
        ticket = {"title": "Badge reader on door 3 is dead", "description": "Seen at 9:00"}
        return tool_reply(("create_ticket", {**ticket, "category": "payroll-system"}))

    model = ScriptedBackend(
        first,
        tool_reply(
            (
                "create_ticket",
                {"title": "Badge reader dead", "description": "Door 3", "category": "facilities"},
            )
        ),
        tool_reply(text="Opened a ticket for the facilities team."),
        tool_reply(text="Done."),
    )
    monkeypatch.setattr(engine, "backend_for", lambda config: model)
    membership = Membership.objects.select_related("tenant", "user").get(
        user=personas.agent, tenant=acme
    )
    run = agent_services.start_blueprint(
        membership=membership, blueprint="investigation", goal="Open a ticket for the badge reader"
    )
    for _ in range(20):
        if engine.advance(run.pk) not in ("advanced", "model-retry"):
            break
    category = seen["create_ticket"]["properties"]["category"]
    assert "facilities" in category["enum"] and "payroll-system" not in category["enum"]
    calls = ToolCall.objects.for_tenant(acme).filter(run=run, tool_name="create_ticket")
    refused, proposed = calls.order_by("id")
    assert proposed.args_json["category"] == "facilities"
    assert refused.status == ToolCall.Status.FAILURE and refused.error_class == "SchemaValidation"
    assert "payroll-system" in refused.error_message
    request = ApprovalRequest.objects.for_tenant(acme).get(status="pending")
    assert request.arguments["category"] == "facilities"
    decide(request=request, actor=personas.reviewer, approve=True)
    for _ in range(20):
        if engine.advance(run.pk) not in ("advanced", "model-retry"):
            break
    [ticket] = Ticket.objects.for_tenant(acme)
    assert ticket.category == "facilities"
    assert not Ticket.objects.for_tenant(globex).exists()
