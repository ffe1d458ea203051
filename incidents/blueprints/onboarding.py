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
