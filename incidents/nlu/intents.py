"""What each service-desk intent means for the agent: its label, the tools that fix it in
order, the plan in words, and whether a person owns it.

The classifier (``incidents.nlu.model``) says which intent a ticket is; this table is the
domain's own knowledge of what to do about it. Tool names are candidates per step: the first
one the run is offered is used.
"""

from __future__ import annotations

from agents.llm.offline import Intent

CATALOGUE: tuple[Intent, ...] = (
    Intent(
        "account_locked",
        "locked account",
        "access",
        steps=(("unlock_account",),),
        plan="Check that the account is locked, then unlock it and clear the failed sign-ins.",
        targets_account=True,
    ),
    Intent(
        "password_reset",
        "password reset",
        "access",
        steps=(("reset_password",),),
        plan="Verify the requester's identity, then reset the password with a temporary one.",
        targets_account=True,
    ),
    Intent(
        "mfa_enroll",
        "MFA enrolment",
        "security",
        steps=(("enable_mfa", "reset_mfa"),),
        plan="Re-enrol MFA for the requester with the authenticator app.",
        targets_account=True,
    ),
    Intent(
        "mfa_disable",
        "request to disable MFA",
        "security",
        steps=(("disable_mfa",),),
        plan="Propose disable_mfa for the requester; policy requires a reviewer's approval.",
        needs_approval=True,
        targets_account=True,
    ),
    Intent(
        "vpn",
        "VPN connection problem",
        "network",
        steps=(("push_vpn_config",),),
        plan="Check the device's VPN profile; push the current one if it is outdated.",
    ),
    Intent(
        "wifi_device",
        "Wi-Fi / network adapter problem on one device",
        "network",
        steps=(("run_diagnostic",), ("reset_network_adapter",)),
        plan="Run a diagnostic on the requester's device, then reset its network adapter.",
    ),
    Intent(
        "device_fault",
        "fault on one device",
        "hardware",
        steps=(("run_diagnostic",),),
        plan="Run a diagnostic on the requester's device first; tell the requester what it found.",
    ),
    Intent(
        "software_install",
        "software installation",
        "software",
        steps=(("install_software", "deploy_software"),),
        plan="Install the requested software from the catalogue on the requester's device.",
        requires_product=True,
    ),
    Intent(
        "security_group",
        "security group change",
        "access",
        steps=(("modify_security_group",),),
        plan="Propose the group change; policy requires a reviewer's approval.",
        needs_approval=True,
    ),
    Intent(
        "admin_rights",
        "administrator rights request",
        "access",
        steps=(("grant_admin_access",),),
        plan="Propose grant_admin_access; policy requires a reviewer's approval.",
        needs_approval=True,
    ),
    Intent(
        "export_data",
        "personal data export",
        "security",
        escalate=True,
        needs_approval=True,
        steps=(("export_user_data",),),
        plan="Data-protection requests go to the DPO.",
    ),
    Intent(
        "delete_account",
        "account deletion",
        "access",
        escalate=True,
        needs_approval=True,
        steps=(("delete_user_account",),),
        plan="Leavers follow the leaver process.",
    ),
    Intent(
        "privileged_access",
        "privileged system access",
        "security",
        needs_approval=True,
        steps=(("access_privileged_system",),),
        plan="Propose access_privileged_system; policy requires a reviewer's approval.",
    ),
    Intent(
        "access_request",
        "access request",
        "access",
        escalate=True,
        plan="Route to the resource owner for approval of the access.",
    ),
    Intent(
        "security_incident",
        "possible security incident",
        "security",
        escalate=True,
        plan="Escalate to the security team: contain first, then investigate.",
    ),
    Intent(
        "outage",
        "outage affecting many people",
        "infrastructure",
        # Read-only evidence for the people who own it, where monitoring tools are offered.
        steps=(("query_metrics",), ("search_logs",), ("get_traces",), ("generate_report",)),
        plan="Open an incident for the people who own the service; no single-device fix.",
        escalate=True,
        sequential=True,
    ),
    Intent(
        "investigate",
        "service degradation",
        "infrastructure",
        steps=(("query_metrics",), ("search_logs",), ("get_traces",), ("generate_report",)),
        plan="Investigate: metrics, then logs and traces of the affected service; escalate to on-call.",
        escalate=True,
        sequential=True,
    ),
    Intent(
        "howto",
        "how-to question",
        "other",
        plan="Answer from the knowledge base with the article that covers it.",
    ),
    Intent(
        "non_it",
        "request for another team",
        "other",
        plan="Not an IT matter: point the requester to the right team.",
    ),
    Intent(
        "hardware_request",
        "hardware repair or request",
        "hardware",
        escalate=True,
        plan="Hand to desk-side support to inspect, repair or order the hardware.",
    ),
    Intent(
        "email_issue",
        "e-mail problem",
        "email",
        escalate=True,
        plan="Check the mailbox and client configuration with the messaging team.",
    ),
    Intent(
        "app_issue",
        "business application problem",
        "application",
        escalate=True,
        plan="Hand to the application team with the error details.",
    ),
    Intent(
        "onboarding",
        "new-starter onboarding",
        "other",
        escalate=True,
        plan="Hand to the service desk: a new starter needs equipment and accounts.",
    ),
    Intent(
        "junk",
        "unclear request",
        "other",
        escalate=True,
        plan="The request is unclear: ask the requester what they need.",
    ),
)
BY_NAME = {intent.name: intent for intent in CATALOGUE}
GUARDED_TOOLS = frozenset(
    step[0] for intent in CATALOGUE if intent.needs_approval for step in intent.steps
)
