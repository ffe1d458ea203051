"""The built-in tools: directory, endpoint and monitoring actions through the connectors.

``register_builtin_tools()`` (idempotent) puts them in ``agents.tools.registry``. Each tool
names its connector, the argument that designates the person it affects, whether it is
read-only, a strict JSON schema, ``run`` (through the connector, passing the context's
idempotency key) and ``verify`` (reading the connector's state again). Whether a call may run
at all is decided by ``agents.policy`` beforehand; the tools in ``HIGH_RISK_TOOLS`` are the
ones the compliance policy puts behind an approval.
"""

from __future__ import annotations

from typing import Any

from agents.connectors.base import DIRECTORY, ENDPOINT, MONITORING, get_connector
from agents.tools import premises, registry
from agents.tools.base import Tool, ToolContext, ToolError, ToolResult
from agents.tools.premises import Premise
from agents.tools.report import GenerateReport

HIGH_RISK_TOOLS = frozenset(
    {
        "grant_admin_access",
        "delete_user_account",
        "modify_security_group",
        "export_user_data",
        "disable_mfa",
        "access_privileged_system",
    }
)

# --------------------------------------------------------------------------- schema parts

USER_EMAIL = {
    "type": "string",
    "format": "email",
    "pattern": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "maxLength": 254,
    "description": "an e-mail address like name@example.com",
}
DEVICE_ID = {
    "type": "string",
    "pattern": r"^[A-Z]{2,4}-[0-9]{3,6}$",
    "description": "the device's asset tag, like LT-0042",
}
SERVICE = {
    "type": "string",
    "pattern": r"^[a-z0-9][a-z0-9_-]{0,39}$",
    "description": "a service name in lower case, like payments",
}
MINUTES = {
    "type": "integer",
    "minimum": 1,
    "maximum": 1440,
    "description": "how far back to look, in minutes (1-1440)",
}
REASON = {
    "type": "string",
    "minLength": 10,
    "maxLength": 500,
    "description": "why this is needed; the approver reads it",
}
GROUP = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
    "description": "a security group name, like vpn-users",
}
SYSTEM = {
    "type": "string",
    "pattern": r"^[a-z0-9][a-z0-9._-]{0,63}$",
    "description": "a privileged system name in lower case, like prod-db",
}
SOFTWARE = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9 .+_()-]{0,79}$",
    "description": "a software name from the catalogue, like Slack",
}


def schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A strict object schema: every listed field required unless said otherwise, no others."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _ok(answer: dict[str, Any]) -> ToolResult:
    return ToolResult(ok=True, summary=answer["summary"], data=answer.get("data", {}))


# --------------------------------------------------------------------------- bases


class ConnectorTool(Tool):
    """A tool acting through one connector. ``perform`` does the work; connector answers
    such as NotFound (404) or an open circuit (503) come back as a failed ``ToolResult``."""

    def connect(self, ctx: ToolContext):
        return get_connector(self.connector, ctx.tenant)

    def run(self, ctx: ToolContext, args: dict[str, Any]) -> ToolResult:
        try:
            return self.perform(ctx, self.connect(ctx), args)
        except ToolError as exc:
            return exc.to_result()

    def perform(self, ctx: ToolContext, conn, args: dict[str, Any]) -> ToolResult:
        raise NotImplementedError

    def verify(self, ctx: ToolContext, args: dict[str, Any], result: ToolResult) -> bool:
        if not result.ok:
            return False
        try:
            return bool(self.check(ctx, self.connect(ctx), args, result))
        except ToolError:
            return False  # cannot read the state back: not verified

    def check(self, ctx: ToolContext, conn, args: dict[str, Any], result: ToolResult) -> bool:
        return True

    # -- the premise (issue 13): read before acting, compared after ---------------------------

    def precheck(self, ctx: ToolContext, args: dict[str, Any]) -> Premise | None:
        """Whether the call's premise holds in the connector's state (``agents.tools.premises``);
        None: nothing to check, or the state cannot be read (the call runs and is verified)."""
        return self.premise_and_state(ctx, args)[0]

    def premise_and_state(
        self, ctx: ToolContext, args: dict[str, Any]
    ) -> tuple[Premise | None, dict[str, Any] | None]:
        """The premise and the state it was judged on, from one read: the state is also the
        "before" that the call's effect is compared with."""
        try:
            state = self.observe(ctx, args)
        except Exception:  # an unreadable state never blocks a fix; verification still runs
            return None, None
        return (None if state is None else premises.judge(self.name, state, args)), state

    def observe(self, ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any] | None:
        """The target's state, as far as this call could change it; None: nothing to read."""
        return None


class UserTool(ConnectorTool):
    """Acts on one directory account, named by ``user_email``."""

    connector = DIRECTORY
    target_argument = "user_email"

    def perform(self, ctx, conn, args):
        method = getattr(conn, self.name)
        return _ok(method(args["user_email"], idempotency_key=ctx.idempotency_key))

    def check(self, ctx, conn, args, result):
        user = conn.get_user(args["user_email"])
        result.observed = user if user is not None else None
        return user is not None and self.holds(user, args)

    def holds(self, user: dict[str, Any], args: dict[str, Any]) -> bool:
        raise NotImplementedError

    def observe(self, ctx, args):
        email = args.get("user_email") if isinstance(args, dict) else None
        if not isinstance(email, str) or not email:
            return None
        user = self.connect(ctx).get_user(email)
        return user if user is not None else {"user_email": email, "missing": True}


class DeviceTool(ConnectorTool):
    """Acts on one managed device, named by ``device_id``; it affects the device's owner."""

    connector = ENDPOINT
    target_argument = "device_id"

    def target_email(self, ctx: ToolContext, args: dict[str, Any]) -> str | None:
        device_id = args.get("device_id") if isinstance(args, dict) else None
        if not isinstance(device_id, str) or not device_id.strip():
            return None
        return self.connect(ctx).device_owner(device_id)

    def perform(self, ctx, conn, args):
        method = getattr(conn, self.name)
        return _ok(method(args["device_id"], idempotency_key=ctx.idempotency_key))

    def check(self, ctx, conn, args, result):
        device = conn.get_device(args["device_id"])
        result.observed = _observable(device) if device is not None else None
        return device is not None and self.holds(device, args, result)

    def holds(self, device: dict[str, Any], args: dict[str, Any], result: ToolResult) -> bool:
        raise NotImplementedError

    def observe(self, ctx, args):
        device_id = args.get("device_id") if isinstance(args, dict) else None
        if not isinstance(device_id, str) or not device_id:
            return None
        device = self.connect(ctx).get_device(device_id)
        if device is None:
            return {"device_id": device_id, "missing": True}
        return _observable(device)


def _observable(device: dict[str, Any]) -> dict[str, Any]:
    """A device's state as far as a call could change it: what a diagnostic records is
    bookkeeping, not an effect on the device."""
    return {k: v for k, v in device.items() if not k.startswith("last_diagnostic")}


class MonitoringTool(ConnectorTool):
    """Reads logs, metrics or traces; no effect, no target person."""

    connector = MONITORING
    read_only = True


# --------------------------------------------------------------------------- directory


class ResetPassword(UserTool):
    name = "reset_password"
    description = (
        "Reset a user's password. A temporary password is sent to the user out-of-band; they "
        "must change it at the next sign-in. Also unlocks the account. Requires the user's "
        "identity to have been verified."
    )
    input_schema = schema({"user_email": USER_EMAIL})

    def holds(self, user, args):
        return user["must_change_password"] and not user["locked"]


class UnlockAccount(UserTool):
    name = "unlock_account"
    description = "Unlock a locked account and clear its failed sign-in attempts."
    input_schema = schema({"user_email": USER_EMAIL})

    def holds(self, user, args):
        return not user["locked"] and user["failed_login_attempts"] == 0


class EnableMfa(UserTool):
    name = "enable_mfa"
    description = "Enable multi-factor authentication for a user with the given method."
    input_schema = schema(
        {
            "user_email": USER_EMAIL,
            "method": {
                "type": "string",
                "enum": ["authenticator_app", "sms", "hardware_key"],
                "description": "the second factor to enrol",
            },
        }
    )

    def perform(self, ctx, conn, args):
        return _ok(
            conn.enable_mfa(args["user_email"], args["method"], idempotency_key=ctx.idempotency_key)
        )

    def holds(self, user, args):
        return user["mfa_enabled"] and user["mfa_method"] == args["method"]


class DisableMfa(UserTool):
    name = "disable_mfa"
    description = "Disable multi-factor authentication for a user. High risk: needs approval."
    input_schema = schema({"user_email": USER_EMAIL})

    def holds(self, user, args):
        return not user["mfa_enabled"]


class GrantAdminAccess(UserTool):
    name = "grant_admin_access"
    description = "Grant a user administrator rights in the directory. High risk: needs approval."
    input_schema = schema({"user_email": USER_EMAIL, "reason": REASON})

    def perform(self, ctx, conn, args):
        return _ok(
            conn.grant_admin_access(
                args["user_email"], args["reason"], idempotency_key=ctx.idempotency_key
            )
        )

    def holds(self, user, args):
        return user["is_admin"]


class DeleteUserAccount(UserTool):
    name = "delete_user_account"
    description = (
        "Delete a user's account (disable it and remove its groups and privileges). "
        "High risk: needs approval."
    )
    input_schema = schema({"user_email": USER_EMAIL})

    def holds(self, user, args):
        return user["disabled"] and not user["is_admin"] and not user["groups"]


class ModifySecurityGroup(UserTool):
    name = "modify_security_group"
    description = "Add a user to, or remove them from, a security group. High risk: needs approval."
    input_schema = schema(
        {
            "user_email": USER_EMAIL,
            "group": GROUP,
            "action": {
                "type": "string",
                "enum": ["add", "remove"],
                "description": "add to or remove from the group",
            },
        }
    )

    def perform(self, ctx, conn, args):
        return _ok(
            conn.modify_security_group(
                args["user_email"],
                args["group"],
                args["action"],
                idempotency_key=ctx.idempotency_key,
            )
        )

    def holds(self, user, args):
        return (args["group"] in user["groups"]) == (args["action"] == "add")


class ExportUserData(UserTool):
    name = "export_user_data"
    description = (
        "Export everything the directory holds about a user to the data-protection officer's "
        "secure store (subject access request). High risk: needs approval."
    )
    input_schema = schema({"user_email": USER_EMAIL})

    def check(self, ctx, conn, args, result):
        recorded = conn.get_operation(ctx.idempotency_key)
        return recorded is not None and recorded["operation"] == self.name

    def observe(self, ctx, args):
        return None  # its effect is an export, not a change of the account: nothing to compare


class AccessPrivilegedSystem(ConnectorTool):
    name = "access_privileged_system"
    description = (
        "Open a time-limited privileged session on a production or security system for the "
        "person the run works for. High risk: needs approval."
    )
    connector = DIRECTORY
    input_schema = schema({"system": SYSTEM, "reason": REASON})

    def target_email(self, ctx: ToolContext, args: dict[str, Any]) -> str | None:
        email = ctx.subject_email or getattr(ctx.actor, "email", "") or ""
        return email.strip().lower() or None

    def perform(self, ctx, conn, args):
        return _ok(
            conn.access_privileged_system(
                self.target_email(ctx, args) or "",
                args["system"],
                args["reason"],
                idempotency_key=ctx.idempotency_key,
            )
        )

    def check(self, ctx, conn, args, result):
        user = conn.get_user(result.data.get("user_email", ""))
        return user is not None and f"privileged:{args['system']}" in user["groups"]


# --------------------------------------------------------------------------- endpoint


class PushVpnConfig(DeviceTool):
    name = "push_vpn_config"
    description = (
        "Push the current VPN profile to a device and reconnect its VPN. Fixes VPN timeouts "
        "caused by an outdated profile."
    )
    input_schema = schema({"device_id": DEVICE_ID})

    def holds(self, device, args, result):
        return (
            device["vpn_profile_version"] == device["latest_vpn_profile_version"]
            and device["vpn_status"] == "connected"
        )


class InstallSoftware(DeviceTool):
    name = "install_software"
    description = "Install a software package from the catalogue on a device."
    input_schema = schema({"device_id": DEVICE_ID, "software": SOFTWARE})

    def perform(self, ctx, conn, args):
        return _ok(
            conn.install_software(
                args["device_id"], args["software"], idempotency_key=ctx.idempotency_key
            )
        )

    def holds(self, device, args, result):
        return args["software"] in device["installed_software"]


class RunDiagnostic(DeviceTool):
    name = "run_diagnostic"
    description = (
        "Run a read-only diagnostic on a device: network adapter, VPN profile and connection. "
        "Returns findings with the tool that would fix each."
    )
    input_schema = schema({"device_id": DEVICE_ID})
    read_only = True

    def perform(self, ctx, conn, args):
        return _ok(conn.run_diagnostic(args["device_id"]))

    def holds(self, device, args, result):
        return device["last_diagnostic_at"] is not None and device["last_diagnostic"].get(
            "checked_at"
        ) == result.data.get("checked_at")


class ResetNetworkAdapter(DeviceTool):
    name = "reset_network_adapter"
    description = "Reset a device's network adapter (fixes a flapping or down link)."
    input_schema = schema({"device_id": DEVICE_ID})

    def holds(self, device, args, result):
        return device["adapter_state"] == "up"


# --------------------------------------------------------------------------- monitoring


class SearchLogs(MonitoringTool):
    name = "search_logs"
    description = (
        "Search a service's logs of the last minutes. Returns counts by level and the latest "
        "matching lines. Every word of the query must appear; an empty query matches all."
    )
    input_schema = schema(
        {
            "service": SERVICE,
            "query": {
                "type": "string",
                "maxLength": 200,
                "description": "words to look for in the messages",
            },
            "minutes": MINUTES,
            "level": {
                "type": "string",
                "enum": ["debug", "info", "warning", "error", "critical"],
                "description": "only lines at this level or worse (optional)",
            },
        },
        required=["service", "query", "minutes"],
    )

    def perform(self, ctx, conn, args):
        return _ok(
            conn.search_logs(args["service"], args["query"], args["minutes"], args.get("level", ""))
        )


class ListServices(MonitoringTool):
    name = "list_services"
    description = (
        "List the monitored services with their log volume and error count over the last "
        "minutes: where to look first when no service is named."
    )
    input_schema = schema({"minutes": MINUTES})

    def perform(self, ctx, conn, args):
        return _ok(conn.list_services(args["minutes"]))


class QueryMetrics(MonitoringTool):
    name = "query_metrics"
    description = (
        "Read a service metric over the last minutes (e.g. latency_p95_ms, error_rate, "
        "requests_per_min): latest, min, max, average, change and a few points."
    )
    input_schema = schema(
        {
            "service": SERVICE,
            "metric": {
                "type": "string",
                "pattern": r"^[a-z][a-z0-9_]{0,59}$",
                "description": "a metric name in snake_case, like error_rate",
            },
            "minutes": MINUTES,
        }
    )

    def perform(self, ctx, conn, args):
        return _ok(conn.query_metrics(args["service"], args["metric"], args["minutes"]))


class GetTraces(MonitoringTool):
    name = "get_traces"
    description = (
        "Summarise a service's request traces of the last minutes: how many, how many "
        "failed, p95 latency, the slowest and the failing ones with their first error."
    )
    input_schema = schema({"service": SERVICE, "minutes": MINUTES})

    def perform(self, ctx, conn, args):
        return _ok(conn.get_traces(args["service"], args["minutes"]))


BUILTIN_TOOLS: tuple[type[Tool], ...] = (
    ResetPassword,
    UnlockAccount,
    EnableMfa,
    PushVpnConfig,
    InstallSoftware,
    RunDiagnostic,
    ResetNetworkAdapter,
    ListServices,
    SearchLogs,
    QueryMetrics,
    GetTraces,
    GenerateReport,
    GrantAdminAccess,
    DeleteUserAccount,
    ModifySecurityGroup,
    ExportUserData,
    DisableMfa,
    AccessPrivilegedSystem,
)


def register_builtin_tools() -> list[str]:
    """Register every built-in tool (idempotent); return their names."""
    from agents.tools.operations import OPERATIONS_TOOLS  # get_deploys and the remediations

    classes = BUILTIN_TOOLS + OPERATIONS_TOOLS
    for tool_class in classes:
        registry.register(tool_class())
    return [tool_class.name for tool_class in classes]
