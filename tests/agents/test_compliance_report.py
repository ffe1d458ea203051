"""The compliance auditor (agents.compliance): per period, privileged actions with who requested
and approved them and their arguments, policy overrides, blocked attempts, four-eyes refusals
and SLA breaches; as a page, CSV and PDF, signed with the audit chain head; auditors and admins
only; two tenants throughout."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import PermissionDenied

from agentops import audit
from agents.compliance import report
from agents.models import PolicyRule, Run
from approvals import handlers
from approvals import services as approvals
from incidents import sla
from incidents.models import TicketSLA

TODAY = datetime.now(UTC).date()
PERIOD = {"start": (TODAY - timedelta(days=1)).isoformat(), "end": TODAY.isoformat()}


def _request(tenant, requested_by, action="grant_admin_access", **arguments):
    return approvals.request_approval(
        tenant=tenant,
        handler="test.compliance",
        handler_ref=f"ref-{action}",
        subject_type="ticket",
        subject_id="REQ0000001",
        subject_repr="REQ0000001 Admin rights",
        action=action,
        arguments=arguments or {"user_email": "robin@acme.example", "group": "=cmd|calc"},
        requested_by=requested_by,
        requested_by_label=requested_by.get_username() if requested_by else "agent",
    )


@pytest.fixture
def activity(personas, make_ticket):
    """One of everything the report covers, in both tenants."""
    handlers.register("test.compliance", lambda request: None)
    acme = personas.tenant
    # 1. A privileged action requested by an agent's run, approved with edited arguments.
    edited = _request(acme, None, group="Domain Admins")
    approvals.decide(
        request=edited,
        actor=personas.reviewer,
        approve=True,
        edited_arguments={"user_email": "robin@acme.example", "group": "Helpdesk"},
    )
    # 2. One requested by a reviewer, who then tries to approve it (four eyes: refused).
    own = _request(
        acme, personas.reviewer, action="delete_user_account", user_email="x@acme.example"
    )
    with pytest.raises(PermissionDenied):
        approvals.decide(request=own, actor=personas.reviewer, approve=True)
    # 3. A tenant rule overriding the built-in policy; a blocked attempt.
    PolicyRule.objects.create(tenant=acme, action="disable_mfa", verdict="block", reason="never")
    audit.record(
        tenant=acme,
        actor=None,
        action="policy.verdict",
        target_type="tool_call",
        target_id="call-blocked-1",
        target_repr="disable_mfa",
        changes={"verdict": "block", "reason": '=HYPERLINK("http://evil.example")'},
        metadata={"run_id": "run_abc"},
    )
    # 4. A ticket SLA breach, through the SLA clock.
    ticket = make_ticket(acme, personas.requester, title="Printer on fire", priority="critical")
    clock = TicketSLA.objects.for_tenant(acme).get(ticket=ticket)
    sla.check_tenant(acme, now=clock.due_at)
    # The other tenant: the same kinds of things, none of which may appear in acme's report.
    _request(personas.other_tenant, personas.outsider, action="export_user_data", who="globex")
    audit.record(
        tenant=personas.other_tenant,
        actor=None,
        action="approval.refused",
        target_type="approval",
        target_id="999",
        metadata={"reason": "globex refusal"},
    )
    return {"edited": edited, "own": own, "ticket": ticket}


def _report(personas):
    start = datetime.combine(TODAY - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return report.generate(personas.tenant, start, start + timedelta(days=2))


def test_the_report_has_every_section_with_who_and_what(personas, activity):
    signed = _report(personas)
    privileged = {row["action"]: row for row in signed["sections"]["privileged"]}
    admin = privileged["grant_admin_access"]
    assert admin["requested_by"] == "agent" and admin["decided_by"] == "riley"
    assert admin["decision"] == "approved"
    assert '"Domain Admins"' in admin["arguments"] and '"Helpdesk"' in admin["approved_arguments"]
    delete = privileged["delete_user_account"]
    assert delete["requested_by"] == "riley" and delete["decision"] == "pending"
    overrides = signed["sections"]["overrides"]
    assert {(o["kind"], o["action"]) for o in overrides} == {
        ("policy rule", "disable_mfa"),
        ("arguments edited before approval", "grant_admin_access"),
    }
    [blocked] = signed["sections"]["blocked"]
    assert blocked["tool"] == "disable_mfa" and blocked["run"] == "run_abc"
    [refusal] = signed["sections"]["refusals"]
    assert refusal["who"] == "riley" and "delete_user_account" in refusal["request"]
    [breach] = signed["sections"]["sla_breaches"]
    assert breach["kind"] == "ticket" and breach["target"] == activity["ticket"].number
    assert signed["counts"] == {
        "privileged": 2,
        "overrides": 2,
        "blocked": 1,
        "refusals": 1,
        "sla_breaches": 1,
    }
    # Nothing of the other tenant.
    text = str(signed)
    assert "export_user_data" not in text and "globex" not in text


def test_the_signature_binds_the_report_to_the_chain_head(personas, activity):
    signed = _report(personas)
    head = report.chain_head(personas.tenant)
    assert signed["signature"]["chain_seq"] == head["seq"] > 0
    assert signed["signature"]["chain_hash"] == head["hash"]
    assert report.verify(personas.tenant, signed) == []
    # Changing a row, or the head it claims, no longer verifies.
    forged = {**signed, "sections": {**signed["sections"], "refusals": []}}
    assert report.verify(personas.tenant, forged)
    reheaded = {**signed, "signature": {**signed["signature"], "chain_seq": 1}}
    assert any("signature" in p for p in report.verify(personas.tenant, reheaded))
    # A period whose events changed since (a late event dated inside it) is reported.
    audit.record(
        tenant=personas.tenant,
        actor=personas.agent,
        action="approval.refused",
        target_type="approval",
        target_id="1",
        metadata={"reason": "late"},
    )
    assert any("another report" in p for p in report.verify(personas.tenant, signed))


def test_auditors_and_admins_read_the_page_others_get_403(personas, activity, client_for):
    for user in (personas.auditor, personas.admin):
        page = client_for(user).get("/compliance/", PERIOD)
        assert page.status_code == 200
        html = page.content.decode()
        for title in report.SECTIONS.values():
            assert title in html
        assert "riley" in html and "Helpdesk" in html and "disable_mfa" in html
        assert report.chain_head(personas.tenant)["hash"] in html
        assert 'data-chart="compliance-counts"' in html
    for user in (personas.agent, personas.reviewer, personas.requester):
        assert client_for(user).get("/compliance/", PERIOD).status_code == 403
        assert client_for(user).get("/compliance/report.csv", PERIOD).status_code == 403


def test_csv_and_pdf_carry_the_rows_and_the_signature(personas, activity, client_for):
    client = client_for(personas.auditor)
    response = client.get("/compliance/report.csv", PERIOD)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    head = report.chain_head(personas.tenant)
    assert ["# audit_chain_hash", head["hash"]] in rows
    assert any(row[:2] == ["section", "Four-eyes refusals"] for row in rows)
    # A value that a spreadsheet would run as a formula is defused.
    assert not any(cell.startswith("=") for row in rows for cell in row)
    assert '\'=HYPERLINK("http://evil.example")' in [c for row in rows for c in row]
    pdf = client.get("/compliance/report.pdf", PERIOD)
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and head["hash"].encode() in pdf.content


@pytest.mark.parametrize(
    "params",
    [
        {"start": "2026-13-01"},
        {"start": "2026-11-10", "end": "2026-11-01"},
        {"start": "2024-01-01", "end": "2026-01-01"},
        {"end": "yesterday"},
    ],
)
def test_a_bad_period_is_a_400_with_a_reason(personas, client_for, params):
    client = client_for(personas.auditor)
    page = client.get("/compliance/", params)
    assert page.status_code == 400 and 'role="alert"' in page.content.decode()
    assert client.get("/compliance/report.csv", params).status_code == 400


def test_a_compliance_auditor_run_keeps_a_signed_report_only_its_tenant_reads(
    personas, activity, client_for, django_capture_on_commit_callbacks
):
    from tests.conftest import make_user

    client = client_for(personas.auditor)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/compliance/runs", PERIOD)
    assert response.status_code == 302
    run = Run.objects.for_tenant(personas.tenant).get(agent_name="compliance_auditor")
    assert run.status == "succeeded" and run.subject_type == "period"
    kept = run.result["report"]
    assert kept["counts"]["refusals"] == 1 and report.verify(personas.tenant, kept) == []
    page = client.get(response["Location"])
    assert page.status_code == 200 and "Verified ✓" in page.content.decode()
    download = client.get("/compliance/report.csv", {"run": run.run_id})
    assert kept["signature"]["hmac"] in download.content.decode()
    # Another tenant's auditor: the run and its downloads do not exist for them.
    globex_auditor = make_user("gloria", personas.other_tenant, "auditor")
    other = client_for(globex_auditor)
    assert other.get(f"/compliance/runs/{run.run_id}/").status_code == 404
    assert other.get("/compliance/report.csv", {"run": run.run_id}).status_code == 404
    # A kept report whose content was changed afterwards says so.
    forged = {**kept, "counts": {**kept["counts"], "refusals": 0}}
    Run.objects.for_tenant(personas.tenant).filter(pk=run.pk).update(result={"report": forged})
    page = client_for(personas.auditor).get(f"/compliance/runs/{run.run_id}/")
    assert "Does not verify" in page.content.decode()


def test_only_auditors_and_admins_start_the_blueprint(personas, client_for):
    assert client_for(personas.agent).post("/compliance/runs", PERIOD).status_code == 403
    blueprint = __import__("agents.blueprints", fromlist=["get"]).get("compliance_auditor")
    with pytest.raises(Exception, match="auditors and admins"):
        blueprint.start_input(
            tenant=personas.tenant,
            actor=personas.agent,
            goal="",
            subject_type="period",
            subject_id=f"{PERIOD['start']}..{PERIOD['end']}",
        )
