"""Does a call's premise hold? Read from the connector's state before a tool acts (issue 13).

A fix whose premise is false changes nothing the requester complained about: unlocking an
account that is not locked, pushing a VPN profile the device already has, resetting a network
adapter that is up. ``ConnectorTool.precheck`` reads the target's state (``observe``) and asks
``judge`` here; the pipeline does not count such a call as a resolution and tells the requester
what the state shows instead. One function per tool, each reading only the state it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Premise:
    """``holds`` False: acting would change nothing that matters. ``finding`` says what the
    state shows, in plain words the requester may read."""

    holds: bool
    finding: str
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"holds": self.holds, "finding": self.finding, "facts": self.facts}


Judge = Callable[[dict[str, Any], dict[str, Any]], Premise]
_JUDGES: dict[str, Judge] = {}


def premise_of(tool_name: str) -> Callable[[Judge], Judge]:
    def register(fn: Judge) -> Judge:
        _JUDGES[tool_name] = fn
        return fn

    return register


def judge(tool_name: str, state: dict[str, Any], args: dict[str, Any]) -> Premise | None:
    """The premise of ``tool_name`` on ``state``; None when the tool has none to check."""
    if state.get("missing"):
        what = state.get("user_email") or state.get("device_id") or "target"
        return Premise(False, f"{what} is not known to the directory or device management.")
    fn = _JUDGES.get(tool_name)
    return fn(state, args) if fn is not None else None


def changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool | None:
    """Whether the target's state differs after the call; None when either side is unknown."""
    if before is None or after is None:
        return None
    return before != after


def _attempts(user: dict[str, Any]) -> str:
    count = user.get("failed_login_attempts") or 0
    return f"{count} failed sign-in attempt{'s' if count != 1 else ''} on record"


# --------------------------------------------------------------------------- directory


@premise_of("unlock_account")
def _unlock(user, args):
    if user["locked"]:
        return Premise(True, f"The account {user['user_email']} is locked ({_attempts(user)}).")
    return Premise(
        False,
        f"Your account {user['user_email']} is not locked ({_attempts(user)}), so unlocking "
        "it would change nothing. If signing in still fails, the password or the second "
        "factor is the likelier cause.",
        {"locked": False, "failed_login_attempts": user.get("failed_login_attempts", 0)},
    )


@premise_of("enable_mfa")
def _enable_mfa(user, args):
    if user["mfa_enabled"] and user["mfa_method"] == args.get("method"):
        return Premise(False, f"Multi-factor sign-in ({user['mfa_method']}) is already on.")
    return Premise(True, "Multi-factor sign-in is not on with that method yet.")


@premise_of("disable_mfa")
def _disable_mfa(user, args):
    if not user["mfa_enabled"]:
        return Premise(False, "Multi-factor sign-in is already off for this account.")
    return Premise(True, "Multi-factor sign-in is on.")


@premise_of("grant_admin_access")
def _grant_admin(user, args):
    if user["is_admin"]:
        return Premise(False, f"{user['user_email']} already has administrator rights.")
    return Premise(True, f"{user['user_email']} has no administrator rights yet.")


@premise_of("delete_user_account")
def _delete_user(user, args):
    if user["disabled"] and not user["is_admin"] and not user["groups"]:
        return Premise(False, f"The account {user['user_email']} is already deleted.")
    return Premise(True, f"The account {user['user_email']} is active.")


@premise_of("modify_security_group")
def _modify_group(user, args):
    member = args.get("group") in user["groups"]
    if member == (args.get("action") == "add"):
        where = "already in" if member else "not in"
        return Premise(False, f"{user['user_email']} is {where} the group {args.get('group')}.")
    return Premise(True, f"The group membership of {user['user_email']} would change.")


# --------------------------------------------------------------------------- endpoint


@premise_of("push_vpn_config")
def _push_vpn(device, args):
    current, latest = device["vpn_profile_version"], device["latest_vpn_profile_version"]
    if current != latest:
        return Premise(
            True,
            f"The VPN profile on {device['device_id']} is outdated (v{current}, current v{latest}).",
        )
    return Premise(
        False,
        f"The VPN profile on {device['device_id']} is already current (v{current}) and the VPN "
        f"is {device['vpn_status']}: pushing it again would change nothing.",
        {"vpn_profile_version": current, "vpn_status": device["vpn_status"]},
    )


@premise_of("install_software")
def _install(device, args):
    if args.get("software") in device["installed_software"]:
        return Premise(
            False, f"{args.get('software')} is already installed on {device['device_id']}."
        )
    return Premise(True, f"{args.get('software')} is not installed on {device['device_id']}.")


@premise_of("reset_network_adapter")
def _reset_adapter(device, args):
    if device["adapter_state"] != "up":
        return Premise(
            True, f"The network adapter of {device['device_id']} is {device['adapter_state']}."
        )
    return Premise(
        False,
        f"The network adapter of {device['device_id']} is up and healthy: the fault is not on "
        "this device, so resetting it would change nothing.",
        {"adapter_state": "up"},
    )
