"""Onboarding: a new starter's checklist as one agent run.

A hiring manager starts it for the starter's e-mail address, naming the authorised software
and the groups ("software: Slack, Zoom; groups: vpn-users, sales"). The run works the
checklist in order — the directory account exists, MFA enrolled, the VPN profile on each of
the starter's devices, the authorised software installed, the groups joined — one tool call
at a time through the engine's gates: the policy decides each call, and group membership
always waits for a person's approval in this blueprint. Every item is a step on the run's
timeline, so the hiring manager follows the progress on the run's page; the report lists what
is done and what is not. The checklist is policy, not judgement: it is planned in code, the
same with or without a model.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from agents import blueprints
from agents.blueprints import Action, LoopBlueprint, LoopState

NAME = "onboarding"
MFA_METHOD = "authenticator_app"
SOFTWARE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .+_()-]{0,79}$")  # as install_software's schema
GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")  # as modify_security_group's
LIST_MAX = 10


def parse_checklist(goal: str) -> dict[str, list[str]]:
    """ "software: Slack, Zoom; groups: vpn-users" → {"software": [...], "groups": [...]}."""
    found: dict[str, list[str]] = {"software": [], "groups": []}
    for part in (goal or "").split(";"):
        if not part.strip():
            continue
        key, sep, values = part.partition(":")
        key = key.strip().lower()
        key = {"group": "groups", "apps": "software", "applications": "software"}.get(key, key)
        if not sep or key not in found:
            raise ValidationError({"goal": "Write it as 'software: A, B; groups: C, D'."})
        pattern = SOFTWARE if key == "software" else GROUP
        for value in (v.strip() for v in values.split(",")):
            if not value:
                continue
            if not pattern.match(value):
                raise ValidationError({"goal": f"{value!r} is not a valid {key} name."})
            if value not in found[key]:
                found[key].append(value)
        if len(found[key]) > LIST_MAX:
            raise ValidationError({"goal": f"At most {LIST_MAX} {key} per run."})
    return found


class OnboardingBlueprint(LoopBlueprint):
    name = NAME
    title = "Onboarding"
    description = (
        "A new starter's checklist as one run: account, MFA, VPN, authorised software, groups "
        "(group membership waits for approval); progress on the run's page."
    )
    tools = ("enable_mfa", "push_vpn_config", "install_software", "modify_security_group")
    approval_tools = ("modify_security_group",)
    default_config = {"max_iterations": 30, "budget_usd": 0.5, "max_actions_per_turn": 1}

    def start_input(self, *, tenant, actor, goal, subject_type, subject_id):
        email = (subject_id or "").strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError(
                {"subject_id": "Name the new starter's e-mail address."}
            ) from None
        checklist = parse_checklist(goal)
        return {
            "subject_type": "user",
            "subject_id": email,
            "subject_repr": f"Onboarding of {email}",
            "input": {"goal": goal or "", **checklist},
        }

    # -- the checklist ---------------------------------------------------------------------

    def checklist(self, state: LoopState) -> list[Action]:
        """Every action of the checklist, in order (the account check is done in ``plan``)."""
        from agents.connectors.base import get_connector

        run = state.ctx.run
        email = run.subject_id
        actions = [Action("enable_mfa", {"user_email": email, "method": MFA_METHOD})]
        if "devices" not in state.data:
            devices = get_connector("endpoint", state.ctx.tenant).list_devices(email)
            state.data["devices"] = [d.get("device_id") or d.get("asset_tag") for d in devices]
        for device in state.data["devices"][:3]:
            actions.append(Action("push_vpn_config", {"device_id": device}))
            for software in run.input.get("software", []):
                actions.append(
                    Action("install_software", {"device_id": device, "software": software})
                )
        for group in run.input.get("groups", []):
            actions.append(
                Action(
                    "modify_security_group",
                    {"user_email": email, "group": group, "action": "add"},
                    thought="Group membership needs a person's approval.",
                )
            )
        return actions

    def plan(self, state: LoopState) -> list[Action]:
        from agents.connectors.base import get_connector

        email = state.ctx.run.subject_id
        state.data["subject_email"] = email  # the only person the tools may act on
        if not state.data.get("account_checked"):
            user = get_connector("directory", state.ctx.tenant).get_user(email)
            state.data["account_checked"] = True
            state.data["account"] = bool(user)
        if not state.data["account"]:
            state.data["final"] = (
                f"{email} has no directory account yet: a person must create it before "
                "onboarding can continue. Nothing else was changed."
            )
            return []
        done = {(o["tool"], tuple(sorted(o["args"].items()))) for o in state.observations}
        for action in self.checklist(state):
            if (action.tool, tuple(sorted(action.args.items()))) not in done:
                return [action]
        state.data["final"] = self.summary(state)
        return []

    def summary(self, state: LoopState) -> str:
        lines = [f"Onboarding of {state.ctx.run.subject_id}:", "- directory account: exists"]
        for o in state.observations:
            what = ", ".join(str(v) for k, v in sorted(o["args"].items()) if k != "user_email")
            lines.append(f"- {o['tool']} {what}: {'done' if o.get('ok') else o.get('status')}")
        if not state.data.get("devices"):
            lines.append("- VPN and software: no managed device on record for the starter")
        return "\n".join(lines)


def register() -> None:
    blueprints.register(OnboardingBlueprint())


# --------------------------------------------------------------------------- the hiring manager


def start_for_ticket(*, ticket, actor, email: str, software: list[str], groups: list[str]):
    """Start the checklist for a new-starter request a hiring manager (any member who may
    open tickets, staff or not) sent from the portal. The run is linked to their ticket
    (``input["ticket"]``), which is where they follow its progress (``progress``); what each
    item may do is still decided by the policy, whoever asked."""
    from agentops import quotas
    from agents import engine

    goal = "; ".join(
        f"{key}: {', '.join(values)}"
        for key, values in (("software", software), ("groups", groups))
        if values
    )
    start = OnboardingBlueprint().start_input(
        tenant=ticket.tenant, actor=actor, goal=goal, subject_type="user", subject_id=email
    )
    quotas.check_run(ticket.tenant, blueprint=NAME)
    return engine.start_run(
        tenant=ticket.tenant,
        blueprint=NAME,
        subject_type=start["subject_type"],
        subject_id=start["subject_id"],
        subject_repr=start["subject_repr"],
        actor=actor,
        started_by_staff=False,
        input={**start["input"], "ticket": ticket.number},
    )


# What the hiring manager reads for each item: plain words, never a tool's name, arguments,
# a policy reason or who reviewed it.
DONE, WAITING, NOT_DONE, TO_DO = "Done", "Waiting for approval", "Not done", "To do"


def runs_for_tickets(tenant, numbers: list[str]) -> dict[str, object]:
    """The newest onboarding run of each of these tickets (one query)."""
    from agents.models import Run

    runs = (
        Run.objects.for_tenant(tenant)
        .filter(agent_name=NAME, input__ticket__in=list(numbers))
        .only("pk", "status", "input", "state_data")
        .order_by("created_at")
    )
    return {run.input["ticket"]: run for run in runs}  # the newest wins


def progress(runs: list) -> dict[int, dict]:
    """Each run's checklist in plain words: {run pk: {"items": [(label, state)], "status"}}.
    One query for all their tool calls."""
    from agents.models import RunStatus, ToolCall

    calls: dict[int, list] = {}
    if runs:
        rows = (
            ToolCall.objects.for_tenant(runs[0].tenant_id)
            .filter(run_id__in=[r.pk for r in runs])
            .order_by("id")
            .values_list("run_id", "tool_name", "args_json", "status")
        )
        for run_id, tool, args, status in rows:
            calls.setdefault(run_id, []).append((tool, args or {}, status))
    result = {}
    for run in runs:
        finished = run.status not in (
            RunStatus.QUEUED,
            RunStatus.RUNNING,
            RunStatus.WAITING_APPROVAL,
        )
        items = [("Directory account", _account_state(run))]
        for label, tool, match in _items(run):
            mine = [(a, s) for t, a, s in calls.get(run.pk, []) if t == tool and match(a)]
            items.append((label, _state(mine, finished)))
        result[run.pk] = {
            "items": items,
            "done": sum(state == DONE for _label, state in items),
            "status": "Finished" if finished else "In progress",
        }
    return result


def _account_state(run) -> str:
    account = (run.state_data or {}).get("account")
    if account is None:
        return TO_DO
    return DONE if account else "Missing: the service desk will create it"


def _items(run):
    """(label, tool, argument match) for each item of the run's checklist."""
    software = run.input.get("software", [])
    groups = run.input.get("groups", [])
    items = [
        ("MFA enrolled", "enable_mfa", lambda a: True),
        ("VPN profile on their computer", "push_vpn_config", lambda a: True),
    ]
    items += [
        (f"{name} installed", "install_software", lambda a, n=name: a.get("software") == n)
        for name in software
    ]
    items += [
        (f"Member of {group}", "modify_security_group", lambda a, g=group: a.get("group") == g)
        for group in groups
    ]
    return items


def _state(calls: list[tuple[dict, str]], finished: bool) -> str:
    """An item is done when the latest call for each of its targets (a device, a group)
    succeeded; waiting while one awaits a person; not done when one failed, was blocked or
    rejected, or the run finished without it."""
    from agents.models import ToolCall

    latest = {tuple(sorted(args.items())): status for args, status in calls}
    statuses = set(latest.values())
    if statuses and statuses == {ToolCall.Status.SUCCESS}:
        return DONE
    if ToolCall.Status.AWAITING_APPROVAL in statuses:
        return WAITING
    failed = {ToolCall.Status.FAILURE, ToolCall.Status.BLOCKED, ToolCall.Status.REJECTED}
    return NOT_DONE if finished or statuses & failed else TO_DO
