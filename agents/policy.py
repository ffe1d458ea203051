"""Compliance policy, enforced in code before any connector call. The model only proposes.

``decide`` returns one of allow / needs_approval / needs_identity_verification / block, with
the reason a reviewer reads. Untrusted text (ticket bodies, tool output, retrieved documents)
never reaches this function: it sees the tool, its validated arguments and facts the engine
established (who started the run, whose ticket it is, whether their identity is verified).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALLOW = "allow"
NEEDS_APPROVAL = "needs_approval"
NEEDS_IDENTITY = "needs_identity_verification"
BLOCK = "block"
VERDICTS = (ALLOW, NEEDS_APPROVAL, NEEDS_IDENTITY, BLOCK)

# Seed 000: actions that always wait for a human decision.
APPROVAL_REQUIRED_ACTIONS = frozenset(
    {
        "delete_user_account",
        "grant_admin_access",
        "modify_security_group",
        "export_user_data",
        "disable_mfa",
        "access_privileged_system",
    }
)
# Seed 000: password resets need the requester's identity verified first.
IDENTITY_REQUIRED_ACTIONS = frozenset({"reset_password"})
# Installed without approval unless the tenant sets its own list (AgentConfig.authorized_software).
DEFAULT_AUTHORIZED_SOFTWARE = (
    "Zoom",
    "Slack",
    "Microsoft Teams",
    "Google Chrome",
    "Mozilla Firefox",
    "Adobe Acrobat Reader",
    "7-Zip",
    "Visual Studio Code",
    "Notepad++",
    "Microsoft Office",
    "Tableau Reader",
    "Power BI Desktop",
)


@dataclass(frozen=True)
class Verdict:
    decision: str
    reason: str
    risk: str = "low"  # low / medium / high / critical

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW


@dataclass(frozen=True)
class PolicyFacts:
    """What the engine knows for sure, from records, not from the model or the ticket text."""

    subject_email: str = ""  # the requester the run works for
    started_by_staff: bool = False  # a staff member asked for this run
    identity_verified: bool = False  # the requester proved who they are (authenticated session)
    target_email: str | None = None  # the person this call affects (from the tool), if any
    authorized_software: tuple[str, ...] = DEFAULT_AUTHORIZED_SOFTWARE
    tenant_rules: dict[str, tuple[str, str]] | None = None  # action → (verdict, reason)
    # The ticket asks for something on someone else's behalf (issue 13): who it names, in
    # words, and their address when the tenant's directory knows it. Recognised in code
    # (incidents.third_party), never taken from the model.
    on_behalf_of: str = ""
    beneficiary_email: str = ""


def decide(
    tool_name: str, args: dict[str, Any], facts: PolicyFacts, *, known_tool: bool = True
) -> Verdict:
    # 1. Only registered tools run at all.
    if not known_tool:
        return Verdict(
            BLOCK, f"Unknown action {tool_name!r}: only registered tools may run.", "high"
        )
    # 2. A ticket on someone else's behalf: never silently an action on the requester; on the
    #    person it names only with the approval of someone who is neither of them.
    third_party = _on_behalf_verdict(tool_name, facts)
    if third_party is not None:
        return third_party
    # 3. A run acts for the person it works for (a ticket's requester), whoever started it:
    #    self-service tools never act on anyone else; a privileged action on someone else
    #    waits for a second person, and the approval says whom it is for. No tenant rule
    #    weakens this.
    if (
        facts.target_email is not None
        and facts.target_email.strip().lower() != (facts.subject_email or "").strip().lower()
    ):
        if tool_name in APPROVAL_REQUIRED_ACTIONS:
            return Verdict(
                NEEDS_APPROVAL,
                f"{tool_name} would act on {facts.target_email}, not on the requester "
                f"({facts.subject_email or 'unknown'}): a second person must approve acting "
                "on someone else.",
                "high",
            )
        return Verdict(
            BLOCK,
            f"{tool_name} would affect {facts.target_email}, who is not the requester "
            f"({facts.subject_email or 'unknown'}); self-service tools act only on the "
            "requester's own account and devices.",
            "high",
        )
    # 4. A tenant's own rule for this action wins over the built-in policy.
    rule = (facts.tenant_rules or {}).get(tool_name)
    if rule is not None:
        verdict, reason = rule
        return Verdict(
            verdict, reason or f"Tenant policy: {verdict.replace('_', ' ')}.", _risk(tool_name)
        )
    # 5. The built-in policy (seed 000).
    if tool_name in APPROVAL_REQUIRED_ACTIONS:
        return Verdict(
            NEEDS_APPROVAL,
            f"{tool_name} is a privileged action: a reviewer must approve it.",
            "high",
        )
    if tool_name in IDENTITY_REQUIRED_ACTIONS and not facts.identity_verified:
        return Verdict(
            NEEDS_IDENTITY,
            "Password resets need the requester's identity verified (an authenticated session "
            "or a service-desk check) before anything changes.",
            "medium",
        )
    if tool_name == "install_software":
        wanted = str(args.get("software", "")).strip().lower()
        allowed = {name.lower() for name in facts.authorized_software}
        if wanted not in allowed:
            return Verdict(
                NEEDS_APPROVAL,
                f"{args.get('software')!r} is not on the authorised software list: a reviewer must approve it.",
                "medium",
            )
    return Verdict(ALLOW, "Allowed by policy.", _risk(tool_name))


def _on_behalf_verdict(tool_name: str, facts: PolicyFacts) -> Verdict | None:
    """The third-party rule, or None when the ticket is the requester's own or the call
    affects no one known (a read-only diagnostic, a log search)."""
    if not facts.on_behalf_of or facts.target_email is None:
        return None
    target = facts.target_email.strip().lower()
    requester = (facts.subject_email or "").strip().lower()
    beneficiary = (facts.beneficiary_email or "").strip().lower()
    named = facts.on_behalf_of + (f" ({beneficiary})" if beneficiary else "")
    if target == requester and target != beneficiary:
        return Verdict(
            BLOCK,
            f"The ticket asks for this on behalf of {named}, not for the requester "
            f"({requester or 'unknown'}): {tool_name} on the requester's own account or "
            "devices is not what was asked.",
            "high",
        )
    if beneficiary and target == beneficiary:
        return Verdict(
            NEEDS_APPROVAL,
            f"{tool_name} would act for {named}, who did not ask for it: the requester "
            f"{requester or 'unknown'} asked on their behalf. A person who is neither of "
            "them must approve.",
            "high",
        )
    return None


def _risk(tool_name: str) -> str:
    if tool_name in APPROVAL_REQUIRED_ACTIONS:
        return "high"
    if tool_name in IDENTITY_REQUIRED_ACTIONS or tool_name == "install_software":
        return "medium"
    return "low"
