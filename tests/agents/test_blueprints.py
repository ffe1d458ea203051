"""The blueprint framework: the loop contract, the multi-turn tool loop, the tool allow-list, the
tenant's settings, and the API that lists blueprints and starts runs of them."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from agents import blueprints, engine, services
from agents.blueprints import LoopBlueprint
from agents.connectors.sandbox.models import DirectoryUser, LogLine, Operation
from agents.models import BlueprintSetting, Run, Step, ToolCall
from approvals.models import ApprovalRequest
from approvals.services import decide
from tests.agents.scripted import ScriptedBackend, tool_reply


def drive(run, limit=30):
    outcome = ""
    for _ in range(limit):
        outcome = engine.advance(run.pk)
        if outcome not in ("advanced", "model-retry"):
            break
    run.refresh_from_db()
    return outcome


def membership(user, tenant):
    from agentops.models import Membership

    return Membership.objects.select_related("tenant", "user").get(user=user, tenant=tenant)


@pytest.fixture
def locked_out(personas):
    user = DirectoryUser.objects.create(
        tenant=personas.tenant, email="kim@acme.test", display_name="Kim", locked=True
    )
    LogLine.objects.create(
        tenant=personas.tenant, service="auth", level="warning", message="kim locked after 5 tries"
    )
    return user


def states(run):
    return [s.state for s in Step.objects.for_tenant(run.tenant).filter(run=run).order_by("seq")]


# --------------------------------------------------------------------------- the contract


def test_the_probe_blueprint_plans_asks_a_person_acts_and_answers(personas, locked_out):
    run = services.start_blueprint(
        membership=membership(personas.agent, personas.tenant),
        blueprint="probe",
        subject_id="kim@acme.test",
    )
    assert drive(run) == "parked"
    assert run.status == "waiting_approval"
    assert states(run) == ["plan", "execute_tool", "evaluate", "plan", "execute_tool"]
    [request] = ApprovalRequest.objects.for_tenant(personas.tenant).filter(status="pending")
    assert request.action == "unlock_account"
    assert "needs a person's approval in the Probe blueprint" in request.reason
    assert not Operation.objects.for_tenant(personas.tenant).exists()  # nothing ran yet

    decide(request=request, actor=personas.reviewer, approve=True)
    assert drive(run) == "succeeded"
    assert run.result["summary"] == "kim@acme.test: unlocked."
    assert states(run) == [
        "plan",
        "execute_tool",
        "evaluate",
        "plan",
        "execute_tool",  # parked here
        "execute_tool",  # resumed after the decision
        "evaluate",
        "plan",
        "evaluate",
        "report",
    ]
    locked_out.refresh_from_db()
    assert locked_out.locked is False
    assert Operation.objects.for_tenant(personas.tenant).count() == 1
    # Each observation carries an evidence id; the checkpoint keeps them all.
    assert [o["id"] for o in run.state_data["observations"]] == ["obs-1", "obs-2"]
    assert run.blueprint_config["tools"] == ["search_logs", "unlock_account"]


def test_a_rejected_action_is_an_observation_and_the_loop_goes_on(personas, locked_out):
    run = services.start_blueprint(
        membership=membership(personas.agent, personas.tenant),
        blueprint="probe",
        subject_id="kim@acme.test",
    )
    drive(run)
    request = ApprovalRequest.objects.for_tenant(personas.tenant).get(status="pending")
    decide(request=request, actor=personas.reviewer, approve=False, comment="Kim is on leave.")
    assert drive(run) == "succeeded"
    assert run.result["summary"] == "kim@acme.test: left as it was."
    rejected = run.state_data["observations"][-1]
    assert rejected["status"] == "rejected" and "Kim is on leave." in rejected["summary"]
    assert not Operation.objects.for_tenant(personas.tenant).exists()


def test_the_iteration_budget_stops_the_loop_and_a_person_takes_it(personas, locked_out):
    class Stubborn(LoopBlueprint):  # keeps searching, never answers
        name = "stubborn"
        tools = ("search_logs",)
        default_config = {"max_iterations": 2, "budget_usd": 1.0, "max_actions_per_turn": 1}

        def plan(self, state):
            args = {"service": "auth", "query": "", "minutes": 5 + state.iteration}
            return [blueprints.Action("search_logs", args)]

    blueprints.register(Stubborn())
    try:
        run = engine.start_run(tenant=personas.tenant, blueprint="stubborn", actor=personas.agent)
        assert drive(run) == "escalated"
    finally:
        blueprints.unregister("stubborn")
    assert "iteration budget (2) is spent" in run.result["summary"]
    assert ToolCall.objects.for_tenant(personas.tenant).filter(run=run).count() == 2


# --------------------------------------------------------------------------- the model loop


class Lookout(LoopBlueprint):
    name = "lookout"
    title = "Lookout"
    tools = ("search_logs", "query_metrics")


@pytest.fixture
def lookout(monkeypatch):
    blueprints.register(Lookout())
    yield
    blueprints.unregister("lookout")


def test_tool_results_go_back_to_the_model_until_it_answers(personas, lookout, monkeypatch):
    LogLine.objects.create(
        tenant=personas.tenant, service="payments", level="error", message="pool exhausted"
    )
    model = ScriptedBackend(
        tool_reply(
            ("search_logs", {"service": "payments", "query": "", "minutes": 60}),
            ("install_software", {"user_email": "x@acme.test", "software": "Zoom"}),
            text="Reading the payments logs.",
        ),
        tool_reply(text="The payments pool is exhausted (obs-1)."),
    )
    monkeypatch.setattr(engine, "backend_for", lambda config: model)
    run = engine.start_run(
        tenant=personas.tenant, blueprint="lookout", input={"goal": "Why do payments fail?"}
    )
    assert drive(run) == "succeeded"
    assert run.result["summary"] == "The payments pool is exhausted (obs-1)."
    first, second = model.requests
    assert first["tools"] == ["search_logs", "query_metrics"]  # only what it declares
    assert first["messages"] == [{"role": "user", "content": "Goal: Why do payments fail?"}]
    # The second turn carries the first turn and both results, the refusal as an error.
    assistant, results = second["messages"][1], second["messages"][2]
    assert [b["type"] for b in assistant["content"]] == ["text", "tool_use", "tool_use"]
    assert [r["tool_use_id"] for r in results["content"]] == ["toolu_0", "toolu_1"]
    assert "[obs-1]" in results["content"][0]["content"]
    assert "pool exhausted" in results["content"][0]["content"]
    assert results["content"][1]["is_error"] is True
    assert "not among the tools this agent may use" in results["content"][1]["content"]
    refused = ToolCall.objects.for_tenant(personas.tenant).get(tool_name="install_software")
    assert refused.status == "blocked" and refused.policy_verdict == "block"
    assert not Operation.objects.for_tenant(personas.tenant).exists()


def test_the_same_read_in_a_later_turn_reads_again(personas, lookout, monkeypatch):
    LogLine.objects.create(tenant=personas.tenant, service="web", level="info", message="ok")
    read = ("search_logs", {"service": "web", "query": "", "minutes": 5})
    model = ScriptedBackend(tool_reply(read), tool_reply(read), tool_reply(text="Stable."))
    monkeypatch.setattr(engine, "backend_for", lambda config: model)
    run = engine.start_run(tenant=personas.tenant, blueprint="lookout", input={"goal": "Watch"})
    assert drive(run) == "succeeded"
    calls = ToolCall.objects.for_tenant(personas.tenant).filter(run=run)
    assert calls.count() == 2 and {c.status for c in calls} == {"success"}


def test_the_offline_model_investigates_over_several_turns(personas, lookout, monkeypatch):
    from agents.connectors.sandbox.seed import seed_sandbox
    from agents.llm.offline import OfflineBackend

    seed_sandbox(personas.tenant, [])
    backend = OfflineBackend()
    monkeypatch.setattr(engine, "backend_for", lambda config: backend)
    run = engine.start_run(
        tenant=personas.tenant,
        blueprint="lookout",
        input={"goal": "Investigate the error spike of the payments service in the last hour"},
    )
    assert drive(run) == "succeeded"
    tools = list(
        ToolCall.objects.for_tenant(personas.tenant)
        .filter(run=run)
        .order_by("id")
        .values_list("tool_name", flat=True)
    )
    assert tools and set(tools) <= {"search_logs", "query_metrics"}
    assert run.state_data["iteration"] >= 2  # results went back to the model at least once


# --------------------------------------------------------------------------- tenant settings


def test_a_tenant_narrows_the_tools_and_a_run_keeps_what_it_started_with(personas, locked_out):
    blueprints.registry.save_setting(
        tenant=personas.tenant,
        actor=personas.admin,
        blueprint="probe",
        enabled=True,
        config={"max_iterations": 3},
        allowed_tools=["search_logs"],
    )
    run = services.start_blueprint(
        membership=membership(personas.agent, personas.tenant),
        blueprint="probe",
        subject_id="kim@acme.test",
    )
    assert run.blueprint_config == {
        "config": {"max_iterations": 3, "budget_usd": 1.0, "max_actions_per_turn": 2},
        "tools": ["search_logs"],
    }
    assert drive(run) == "succeeded"
    unlock = ToolCall.objects.for_tenant(personas.tenant).get(run=run, tool_name="unlock_account")
    assert unlock.status == "blocked"
    assert not ApprovalRequest.objects.for_tenant(personas.tenant).exists()
    locked_out.refresh_from_db()
    assert locked_out.locked is True
    # The other tenant keeps the defaults.
    other = blueprints.for_tenant(personas.other_tenant, "probe")
    assert other.tools == ("search_logs", "unlock_account") and other.enabled


def test_settings_are_validated_and_audited(personas):
    from agentops.models import AuditEvent

    with pytest.raises(ValidationError) as exc:
        blueprints.registry.save_setting(
            tenant=personas.tenant,
            actor=personas.admin,
            blueprint="probe",
            enabled=True,
            config={"max_iterations": "many", "colour": "red"},
            allowed_tools=["delete_user_account"],
        )
    errors = exc.value.message_dict
    assert any("Unknown setting 'colour'" in e for e in errors["config"])
    assert any("max_iterations must be a int" in e for e in errors["config"])
    assert "does not declare delete_user_account" in errors["allowed_tools"][0]
    blueprints.registry.save_setting(
        tenant=personas.tenant,
        actor=personas.admin,
        blueprint="probe",
        enabled=False,
        config={},
        allowed_tools=[],
    )
    event = AuditEvent.objects.for_tenant(personas.tenant).get(action="blueprint.settings_changed")
    assert event.changes["enabled"] is False


def test_a_disabled_blueprint_starts_nothing(personas, locked_out):
    BlueprintSetting.objects.create(tenant=personas.tenant, blueprint="probe", enabled=False)
    with pytest.raises(ValidationError, match="not enabled"):
        services.start_blueprint(
            membership=membership(personas.agent, personas.tenant),
            blueprint="probe",
            subject_id="kim@acme.test",
        )
    assert not Run.objects.for_tenant(personas.tenant).exists()


def test_a_disabled_service_desk_leaves_new_tickets_to_people(personas, make_ticket):
    from agents.engine import agent_config

    config = agent_config(personas.tenant)
    config.auto_resolve_on_create = True
    config.save()
    BlueprintSetting.objects.create(tenant=personas.tenant, blueprint="service_desk", enabled=False)
    ticket = make_ticket(personas.tenant, personas.requester)
    assert ticket.number and not Run.objects.for_tenant(personas.tenant).exists()


def test_only_agents_and_admins_start_runs(personas):
    for user in (personas.requester, personas.reviewer, personas.auditor):
        with pytest.raises(PermissionDenied):
            services.start_blueprint(
                membership=membership(user, personas.tenant), blueprint="probe", subject_id="a@b.c"
            )


def test_the_admin_page_lists_and_validates_settings(personas, client):
    personas.admin.is_staff = personas.admin.is_superuser = True
    personas.admin.save()
    client.force_login(personas.admin)
    page = client.get("/admin/agents/blueprintsetting/add/")
    assert page.status_code == 200
    assert b"probe: search_logs, unlock_account" in page.content
    bad = client.post(
        "/admin/agents/blueprintsetting/add/",
        {
            "tenant": personas.tenant.pk,
            "blueprint": "probe",
            "enabled": "on",
            "config": json.dumps({"max_iterations": 0}),
            "allowed_tools": "[]",
        },
    )
    assert bad.status_code == 200 and b"max_iterations must be greater than 0" in bad.content
    good = client.post(
        "/admin/agents/blueprintsetting/add/",
        {
            "tenant": personas.tenant.pk,
            "blueprint": "probe",
            "config": json.dumps({"max_iterations": 2}),
            "allowed_tools": json.dumps(["search_logs"]),
        },
    )
    assert good.status_code == 302
    setting = BlueprintSetting.objects.for_tenant(personas.tenant).get(blueprint="probe")
    assert setting.enabled is False and setting.allowed_tools == ["search_logs"]


def test_a_redelivered_parking_step_asks_once_and_parks_again(personas, locked_out):
    """The worker died after the approval request was committed but before the step was
    recorded: the redelivery finds the call waiting, asks nobody twice, and parks."""
    run = services.start_blueprint(
        membership=membership(personas.agent, personas.tenant),
        blueprint="probe",
        subject_id="kim@acme.test",
    )
    assert drive(run) == "parked"
    Run.objects.for_tenant(personas.tenant).filter(pk=run.pk).update(
        status="running", step_count=run.step_count - 1, lease_expires_at=None
    )
    assert engine.advance(run.pk) == "parked"
    assert ApprovalRequest.objects.for_tenant(personas.tenant).count() == 1
    step = Step.objects.for_tenant(personas.tenant).get(run=run, seq=run.step_count)
    assert step.retries == 1 and step.status == "waiting"


def test_actions_over_the_turn_limit_are_answered_not_run(personas, lookout, monkeypatch):
    """The Messages API wants a result for every tool_use: the ones over the limit get one
    saying they were not run, and the model can ask again."""
    LogLine.objects.create(tenant=personas.tenant, service="web", level="info", message="ok")
    reads = [("search_logs", {"service": "web", "query": "", "minutes": m}) for m in range(1, 6)]
    model = ScriptedBackend(tool_reply(*reads), tool_reply(text="Enough."))
    monkeypatch.setattr(engine, "backend_for", lambda config: model)
    run = engine.start_run(tenant=personas.tenant, blueprint="lookout", input={"goal": "Watch"})
    assert drive(run) == "succeeded"
    assert ToolCall.objects.for_tenant(personas.tenant).filter(run=run).count() == 4
    results = model.requests[1]["messages"][-1]["content"]
    assert [r["tool_use_id"] for r in results] == [f"toolu_{i}" for i in range(5)]
    assert results[4]["is_error"] and results[4]["content"].startswith("Not run: at most 4")


def test_the_admin_says_when_the_tier_keeps_a_blueprint_off(personas, client):
    personas.tenant.tier = "free"  # the free tier includes only the service-desk agent
    personas.tenant.save(update_fields=["tier"])
    personas.admin.is_staff = personas.admin.is_superuser = True
    personas.admin.save()
    client.force_login(personas.admin)
    saved = client.post(
        "/admin/agents/blueprintsetting/add/",
        {
            "tenant": personas.tenant.pk,
            "blueprint": "probe",
            "enabled": "on",
            "config": "{}",
            "allowed_tools": "[]",
        },
        follow=True,
    )
    assert b"stays off" in saved.content and b"not in the Free tier" in saved.content
    assert not blueprints.for_tenant(personas.tenant, "probe").enabled
    listing = client.get("/admin/agents/blueprintsetting/").content.decode()
    assert "Off: not in the Free tier" in listing
