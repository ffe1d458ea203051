"""The sandbox implementations of the connector interfaces, on this app's tables.

Every effect runs in one transaction: lock the target row (``select_for_update``), look the
idempotency key up in ``Operation`` (after the lock, so a concurrent redelivery waits and then
finds it), apply the change, record the ``Operation``. A key already recorded returns the
recorded result and changes nothing. The deadline is ``SET LOCAL statement_timeout``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from agentops.prepared import prepared
from agents.connectors.base import (
    Conflict,
    Connector,
    DirectoryConnector,
    EndpointConnector,
    MonitoringConnector,
    NotFound,
    deadline_setting,
    session_has_deadline,
)
from agents.connectors.sandbox.models import (
    LATEST_VPN_PROFILE_VERSION,
    AdapterState,
    Device,
    DirectoryUser,
    LogLevel,
    LogLine,
    MetricPoint,
    MfaMethod,
    Operation,
    VpnStatus,
)
from agents.tools.base import ToolError

# How long a privileged-system session granted by access_privileged_system lasts.
PRIVILEGED_SESSION_MINUTES = 60
# How many log lines / metric points / traces a monitoring answer shows.
SAMPLE_LINES = 10
SAMPLE_POINTS = 12
SAMPLE_TRACES = 5
ERROR_LEVELS = (LogLevel.ERROR, LogLevel.CRITICAL)


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _norm_email(value: str) -> str:
    return (value or "").strip().lower()


def _norm_tag(value: str) -> str:
    return (value or "").strip().upper()


def _user_state(user: DirectoryUser) -> dict[str, Any]:
    return {
        "user_email": user.email,
        "display_name": user.display_name,
        "department": user.department,
        "locked": user.locked,
        "failed_login_attempts": user.failed_login_attempts,
        "mfa_enabled": user.mfa_enabled,
        "mfa_method": user.mfa_method,
        "password_changed_at": _iso(user.password_changed_at),
        "must_change_password": user.must_change_password,
        "identity_verified_at": _iso(user.identity_verified_at),
        "is_admin": user.is_admin,
        "groups": list(user.groups),
        "disabled": user.disabled,
    }


def _device_state(device: Device) -> dict[str, Any]:
    return {
        "device_id": device.asset_tag,
        "owner_email": device.owner_email,
        "hostname": device.hostname,
        "model": device.model,
        "os": device.os,
        "vpn_profile_version": device.vpn_profile_version,
        "latest_vpn_profile_version": LATEST_VPN_PROFILE_VERSION,
        "vpn_status": device.vpn_status,
        "installed_software": list(device.installed_software),
        "adapter_state": device.adapter_state,
        "last_diagnostic": device.last_diagnostic,
        "last_diagnostic_at": _iso(device.last_diagnostic_at),
    }


def _result(summary: str, **data: Any) -> dict[str, Any]:
    return {"summary": summary, "data": data}


def _tenant_pk(tenant) -> int:
    return tenant if isinstance(tenant, int) else tenant.pk


# The reads every service-desk run makes, compiled once per process (agentops.prepared). Each
# orders as ``.first()`` would, so the answer is the same one the ORM gave.
@prepared
def _user_by_email(tenant_id: int, email: str):
    return DirectoryUser.objects.for_tenant(tenant_id).filter(email=email).order_by("pk")[:1]


@prepared
def _device_by_tag(tenant_id: int, asset_tag: str):
    return Device.objects.for_tenant(tenant_id).filter(asset_tag=asset_tag).order_by("pk")[:1]


@prepared
def _device_owner(tenant_id: int, asset_tag: str):
    return (
        Device.objects.for_tenant(tenant_id)
        .filter(asset_tag=asset_tag)
        .order_by("pk")
        .values_list("owner_email", flat=True)[:1]
    )


@prepared
def _locked_user(tenant_id: int, email: str):
    return (
        DirectoryUser.objects.for_tenant(tenant_id)
        .select_for_update()
        .filter(email=email)
        .order_by("pk")[:1]
    )


@prepared
def _locked_device(tenant_id: int, asset_tag: str):
    return (
        Device.objects.for_tenant(tenant_id)
        .select_for_update()
        .filter(asset_tag=asset_tag)
        .order_by("pk")[:1]
    )


@prepared
def _operation(tenant_id: int, idempotency_key: str):
    return (
        Operation.objects.for_tenant(tenant_id)
        .filter(idempotency_key=idempotency_key)
        .order_by("pk")[:1]
    )


@prepared
def _devices_of(tenant_id: int, owner_email: str):
    return (
        Device.objects.for_tenant(tenant_id).filter(owner_email=owner_email).order_by("asset_tag")
    )


class SandboxConnector(Connector):
    """Shared parts: the statement-timeout deadline and the idempotent apply."""

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        # SET LOCAL lasts until the end of the transaction. When the caller already has one
        # open, put its value back afterwards (a failed block rolls it back by itself).
        nested = connection.in_atomic_block
        milliseconds = deadline_setting(seconds)
        with transaction.atomic():
            previous = None
            # A worker's session is bounded by this deadline already: nothing to set.
            if not session_has_deadline(milliseconds):
                previous = self._set_deadline(milliseconds, nested=nested)
            outer, self._in_deadline = getattr(self, "_in_deadline", False), True
            try:
                yield
            finally:
                self._in_deadline = outer
            if previous is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])

    @staticmethod
    def _set_deadline(milliseconds: str, *, nested: bool) -> str | None:
        """SET LOCAL the deadline; inside a caller's transaction return the value to put
        back."""
        with connection.cursor() as cursor:
            if not nested:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [milliseconds])
                return None
            # Read the old value and set the new one in one round trip (the materialised
            # CTE is read before the outer row sets the new value).
            cursor.execute(
                "WITH prev AS MATERIALIZED "
                "(SELECT current_setting('statement_timeout') AS value) "
                "SELECT value, set_config('statement_timeout', %s, true) FROM prev",
                [milliseconds],
            )
            return cursor.fetchone()[0]

    def _apply(
        self,
        *,
        operation: str,
        args: dict[str, Any],
        idempotency_key: str,
        lock: Callable[[], Any],
        change: Callable[[Any], dict[str, Any]],
    ) -> dict[str, Any]:
        """Apply ``change`` to the locked target once per idempotency key; see module doc."""
        if not idempotency_key or not idempotency_key.strip():
            raise ToolError(
                f"{operation} needs an idempotency key", error_class="MissingIdempotencyKey"
            )
        # Inside this connector's deadline it needs no savepoint of its own: an error here
        # leaves the deadline's block too, which rolls the whole call back.
        with transaction.atomic(savepoint=not getattr(self, "_in_deadline", False)):
            # 1. Lock the target: a concurrent call with the same key waits here.
            target = lock()
            # 2. Already applied under this key? Then answer as the first time did.
            recorded = _operation.first(_tenant_pk(self.tenant), idempotency_key)
            if recorded is not None:
                if (recorded.connector, recorded.operation, recorded.args) != (
                    self.kind,
                    operation,
                    args,
                ):
                    raise Conflict(
                        f"Idempotency key {idempotency_key!r} was already used for "
                        f"{recorded.connector}.{recorded.operation} with other arguments.",
                        error_class="IdempotencyConflict",
                    )
                return recorded.result
            # 3. Apply and record, in the same transaction. ON CONFLICT instead of catching
            # an IntegrityError: no savepoint needed around the insert.
            result = change(target)
            with connection.cursor() as cursor:
                cursor.execute(
                    f'INSERT INTO "{Operation._meta.db_table}" (tenant_id, idempotency_key, '  # noqa: S608
                    "connector, operation, args, result, created_at) "
                    "VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s) "
                    "ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id",
                    [
                        self.tenant.pk,
                        idempotency_key,
                        self.kind,
                        operation,
                        json.dumps(args, cls=DjangoJSONEncoder),
                        json.dumps(result, cls=DjangoJSONEncoder),
                        timezone.now(),
                    ],
                )
                recorded_now = cursor.fetchone() is not None
            if not recorded_now:
                # The same key, recorded meanwhile for another target: refuse, roll back.
                raise Conflict(
                    f"Idempotency key {idempotency_key!r} was used concurrently by another call.",
                    error_class="IdempotencyConflict",
                )
        return result

    def get_operation(self, idempotency_key: str) -> dict[str, Any] | None:
        recorded = (
            Operation.objects.for_tenant(self.tenant)
            .filter(idempotency_key=idempotency_key)
            .first()
        )
        if recorded is None:
            return None
        return {
            "connector": recorded.connector,
            "operation": recorded.operation,
            "args": recorded.args,
            "result": recorded.result,
            "created_at": _iso(recorded.created_at),
        }


# --------------------------------------------------------------------------- directory


class SandboxDirectoryConnector(SandboxConnector, DirectoryConnector):
    """Accounts in ``DirectoryUser``."""

    def _users(self):
        return DirectoryUser.objects.for_tenant(self.tenant)

    def _locker(self, email: str, *, active: bool = True) -> Callable[[], DirectoryUser]:
        def lock() -> DirectoryUser:
            user = _locked_user.first(_tenant_pk(self.tenant), _norm_email(email))
            if user is None:
                raise NotFound(f"No user with e-mail {_norm_email(email)} in the directory.")
            if active and user.disabled:
                raise Conflict(
                    f"The account {user.email} is disabled (deleted); it cannot be changed.",
                    error_class="AccountDisabled",
                )
            return user

        return lock

    def get_user(self, email: str) -> dict[str, Any] | None:
        user = _user_by_email.first(_tenant_pk(self.tenant), _norm_email(email))
        return _user_state(user) if user else None

    def reset_password(self, email: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(user: DirectoryUser) -> dict[str, Any]:
            was_locked = user.locked
            user.must_change_password = True
            user.password_changed_at = timezone.now()
            user.locked = False
            user.failed_login_attempts = 0
            user.save(
                update_fields=[
                    "must_change_password",
                    "password_changed_at",
                    "locked",
                    "failed_login_attempts",
                    "updated_at",
                ]
            )
            unlocked = " The account was unlocked." if was_locked else ""
            return _result(
                f"Password reset for {user.email}: a temporary password was sent to the user "
                f"out-of-band (registered phone), to be changed at the next sign-in.{unlocked}",
                user_email=user.email,
                must_change_password=True,
                password_changed_at=_iso(user.password_changed_at),
                temporary_password_delivery="out_of_band",  # noqa: S106 (a channel, not a secret)
                unlocked=was_locked,
            )

        return self._apply(
            operation="reset_password",
            args={"user_email": _norm_email(email)},
            idempotency_key=idempotency_key,
            lock=self._locker(email),
            change=change,
        )

    def unlock_account(self, email: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(user: DirectoryUser) -> dict[str, Any]:
            was_locked, attempts = user.locked, user.failed_login_attempts
            user.locked = False
            user.failed_login_attempts = 0
            user.save(update_fields=["locked", "failed_login_attempts", "updated_at"])
            summary = (
                f"Account {user.email} unlocked ({attempts} failed sign-in attempts cleared)."
                if was_locked
                else f"Account {user.email} was not locked; failed attempts reset to 0."
            )
            return _result(
                summary, user_email=user.email, was_locked=was_locked, failed_attempts=attempts
            )

        return self._apply(
            operation="unlock_account",
            args={"user_email": _norm_email(email)},
            idempotency_key=idempotency_key,
            lock=self._locker(email),
            change=change,
        )

    def enable_mfa(self, email: str, method: str, *, idempotency_key: str) -> dict[str, Any]:
        if method not in MfaMethod.values or not method:
            raise ToolError(f"Unknown MFA method {method!r}.", error_class="InvalidArgument")

        def change(user: DirectoryUser) -> dict[str, Any]:
            previous = user.mfa_method if user.mfa_enabled else ""
            user.mfa_enabled = True
            user.mfa_method = method
            user.save(update_fields=["mfa_enabled", "mfa_method", "updated_at"])
            label = MfaMethod(method).label.lower()
            return _result(
                f"MFA enabled for {user.email} with {label}; enrolment instructions were sent.",
                user_email=user.email,
                mfa_method=method,
                previous_method=previous,
            )

        return self._apply(
            operation="enable_mfa",
            args={"user_email": _norm_email(email), "method": method},
            idempotency_key=idempotency_key,
            lock=self._locker(email),
            change=change,
        )

    def disable_mfa(self, email: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(user: DirectoryUser) -> dict[str, Any]:
            previous = user.mfa_method if user.mfa_enabled else ""
            user.mfa_enabled = False
            user.mfa_method = MfaMethod.NONE
            user.save(update_fields=["mfa_enabled", "mfa_method", "updated_at"])
            return _result(
                f"MFA disabled for {user.email}.", user_email=user.email, previous_method=previous
            )

        return self._apply(
            operation="disable_mfa",
            args={"user_email": _norm_email(email)},
            idempotency_key=idempotency_key,
            lock=self._locker(email),
            change=change,
        )

    def grant_admin_access(
        self, email: str, reason: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        def change(user: DirectoryUser) -> dict[str, Any]:
            already = user.is_admin
            user.is_admin = True
            user.save(update_fields=["is_admin", "updated_at"])
            return _result(
                f"{user.email} {'already had' if already else 'was granted'} administrator access.",
                user_email=user.email,
                is_admin=True,
                already_admin=already,
                reason=reason,
            )

        return self._apply(
            operation="grant_admin_access",
            args={"user_email": _norm_email(email), "reason": reason},
            idempotency_key=idempotency_key,
            lock=self._locker(email),
            change=change,
        )

    def delete_user_account(self, email: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(user: DirectoryUser) -> dict[str, Any]:
            removed_groups = list(user.groups)
            # Directories keep a disabled tombstone; sign-in, privileges and groups are gone.
            user.disabled = True
            user.is_admin = False
            user.groups = []
            user.save(update_fields=["disabled", "is_admin", "groups", "updated_at"])
            return _result(
                f"Account {user.email} deleted (disabled, removed from "
                f"{len(removed_groups)} group(s)).",
                user_email=user.email,
                disabled=True,
                removed_groups=removed_groups,
            )

        return self._apply(
            operation="delete_user_account",
            args={"user_email": _norm_email(email)},
            idempotency_key=idempotency_key,
            lock=self._locker(email, active=False),
            change=change,
        )

    def modify_security_group(
        self, email: str, group: str, action: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        if action not in ("add", "remove"):
            raise ToolError(f"Unknown group action {action!r}.", error_class="InvalidArgument")

        def change(user: DirectoryUser) -> dict[str, Any]:
            groups = list(user.groups)
            member_before = group in groups
            if action == "add" and not member_before:
                groups.append(group)
            elif action == "remove" and member_before:
                groups.remove(group)
            user.groups = groups
            user.save(update_fields=["groups", "updated_at"])
            verb = "added to" if action == "add" else "removed from"
            noop = " (no change)" if (action == "add") == member_before else ""
            return _result(
                f"{user.email} {verb} security group {group}{noop}.",
                user_email=user.email,
                group=group,
                action=action,
                groups=groups,
            )

        return self._apply(
            operation="modify_security_group",
            args={"user_email": _norm_email(email), "group": group, "action": action},
            idempotency_key=idempotency_key,
            lock=self._locker(email),
            change=change,
        )

    def export_user_data(self, email: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(user: DirectoryUser) -> dict[str, Any]:
            devices = Device.objects.for_tenant(self.tenant).filter(owner_email=user.email)
            digest = hashlib.sha256(f"{self.tenant.pk}:{idempotency_key}".encode()).hexdigest()
            export_id = "EXP-" + digest[:10].upper()
            # The export itself goes to the data-protection officer's secure store; the
            # result names what it holds, never the personal data.
            return _result(
                f"Data export {export_id} prepared for {user.email}: profile, "
                f"{len(user.groups)} group membership(s), {devices.count()} device(s). "
                "Delivered to the data-protection officer's secure store.",
                user_email=user.email,
                export_id=export_id,
                sections=["profile", "groups", "devices", "sign_in_security"],
                delivered_to="dpo_secure_store",
            )

        return self._apply(
            operation="export_user_data",
            args={"user_email": _norm_email(email)},
            idempotency_key=idempotency_key,
            lock=self._locker(email, active=False),
            change=change,
        )

    def access_privileged_system(
        self, email: str, system: str, reason: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        if not _norm_email(email):
            raise ToolError(
                "access_privileged_system needs the person the session is for.",
                error_class="NoSubject",
            )

        def change(user: DirectoryUser) -> dict[str, Any]:
            group = f"privileged:{system}"
            if group not in user.groups:
                user.groups = [*user.groups, group]
                user.save(update_fields=["groups", "updated_at"])
            expires_at = timezone.now() + timedelta(minutes=PRIVILEGED_SESSION_MINUTES)
            return _result(
                f"Privileged access to {system} granted to {user.email} for "
                f"{PRIVILEGED_SESSION_MINUTES} minutes.",
                user_email=user.email,
                system=system,
                group=group,
                reason=reason,
                expires_at=_iso(expires_at),
            )

        return self._apply(
            operation="access_privileged_system",
            args={"user_email": _norm_email(email), "system": system, "reason": reason},
            idempotency_key=idempotency_key,
            lock=self._locker(email),
            change=change,
        )


# --------------------------------------------------------------------------- endpoint


def diagnose(device: Device) -> list[dict[str, str]]:
    """Findings derived from the device's state, most useful first."""
    findings = []
    if device.adapter_state == AdapterState.DOWN:
        findings.append(
            {
                "code": "adapter_down",
                "severity": "error",
                "detail": "The network adapter is down: no link.",
                "suggested_tool": "reset_network_adapter",
            }
        )
    elif device.adapter_state == AdapterState.FLAPPING:
        findings.append(
            {
                "code": "adapter_flapping",
                "severity": "warning",
                "detail": "The network adapter is flapping (link going up and down repeatedly).",
                "suggested_tool": "reset_network_adapter",
            }
        )
    if device.vpn_profile_outdated:
        findings.append(
            {
                "code": "vpn_profile_outdated",
                "severity": "warning",
                "detail": f"VPN profile v{device.vpn_profile_version} is outdated "
                f"(current: v{LATEST_VPN_PROFILE_VERSION}).",
                "suggested_tool": "push_vpn_config",
            }
        )
    if device.vpn_status == VpnStatus.TIMEOUT:
        findings.append(
            {
                "code": "vpn_timeout",
                "severity": "error",
                "detail": "VPN connection attempts time out during the handshake.",
                "suggested_tool": "push_vpn_config" if device.vpn_profile_outdated else "",
            }
        )
    elif device.vpn_status == VpnStatus.DISCONNECTED:
        findings.append(
            {
                "code": "vpn_disconnected",
                "severity": "info",
                "detail": "VPN is not connected.",
                "suggested_tool": "",
            }
        )
    return findings


class SandboxEndpointConnector(SandboxConnector, EndpointConnector):
    """Devices in ``Device``."""

    def _devices(self):
        return Device.objects.for_tenant(self.tenant)

    def _locker(self, device_id: str) -> Callable[[], Device]:
        def lock() -> Device:
            device = _locked_device.first(_tenant_pk(self.tenant), _norm_tag(device_id))
            if device is None:
                raise NotFound(f"No managed device with asset tag {_norm_tag(device_id)}.")
            return device

        return lock

    def get_device(self, device_id: str) -> dict[str, Any] | None:
        device = _device_by_tag.first(_tenant_pk(self.tenant), _norm_tag(device_id))
        return _device_state(device) if device else None

    def device_owner(self, device_id: str) -> str | None:
        return _device_owner.first(_tenant_pk(self.tenant), _norm_tag(device_id))

    def list_devices(self, owner_email: str) -> list[dict[str, Any]]:
        owned = _devices_of(_tenant_pk(self.tenant), _norm_email(owner_email))
        return [_device_state(device) for device in owned]

    def push_vpn_config(self, device_id: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(device: Device) -> dict[str, Any]:
            previous = device.vpn_profile_version
            device.vpn_profile_version = LATEST_VPN_PROFILE_VERSION
            # The new profile connects only if the device has a network link.
            if device.adapter_state == AdapterState.DOWN:
                device.vpn_status = VpnStatus.DISCONNECTED
                outcome = "but the VPN cannot connect: the network adapter is down"
            else:
                device.vpn_status = VpnStatus.CONNECTED
                outcome = "and the VPN connected"
            device.save(update_fields=["vpn_profile_version", "vpn_status", "updated_at"])
            return _result(
                f"VPN profile v{LATEST_VPN_PROFILE_VERSION} pushed to {device.asset_tag} "
                f"(was v{previous}), {outcome}.",
                device_id=device.asset_tag,
                previous_version=previous,
                vpn_profile_version=device.vpn_profile_version,
                vpn_status=device.vpn_status,
            )

        return self._apply(
            operation="push_vpn_config",
            args={"device_id": _norm_tag(device_id)},
            idempotency_key=idempotency_key,
            lock=self._locker(device_id),
            change=change,
        )

    def install_software(
        self, device_id: str, software: str, *, idempotency_key: str
    ) -> dict[str, Any]:
        def change(device: Device) -> dict[str, Any]:
            installed = list(device.installed_software)
            already = software in installed
            if not already:
                installed.append(software)
                device.installed_software = installed
                device.save(update_fields=["installed_software", "updated_at"])
            return _result(
                f"{software} {'was already installed on' if already else 'installed on'} "
                f"{device.asset_tag}.",
                device_id=device.asset_tag,
                software=software,
                already_installed=already,
                installed_software=installed,
            )

        return self._apply(
            operation="install_software",
            args={"device_id": _norm_tag(device_id), "software": software},
            idempotency_key=idempotency_key,
            lock=self._locker(device_id),
            change=change,
        )

    def reset_network_adapter(self, device_id: str, *, idempotency_key: str) -> dict[str, Any]:
        def change(device: Device) -> dict[str, Any]:
            previous = device.adapter_state
            device.adapter_state = AdapterState.UP
            device.save(update_fields=["adapter_state", "updated_at"])
            return _result(
                f"Network adapter of {device.asset_tag} reset (was {previous}, now up).",
                device_id=device.asset_tag,
                previous_state=previous,
                adapter_state=device.adapter_state,
            )

        return self._apply(
            operation="reset_network_adapter",
            args={"device_id": _norm_tag(device_id)},
            idempotency_key=idempotency_key,
            lock=self._locker(device_id),
            change=change,
        )

    def run_diagnostic(self, device_id: str) -> dict[str, Any]:
        with transaction.atomic():
            device = self._locker(device_id)()
            findings = diagnose(device)
            now = timezone.now()
            device.last_diagnostic = {"findings": findings, "checked_at": _iso(now)}
            device.last_diagnostic_at = now
            device.save(update_fields=["last_diagnostic", "last_diagnostic_at", "updated_at"])
        if findings:
            listing = "; ".join(f["detail"] for f in findings)
            summary = f"Diagnostic of {device.asset_tag}: {len(findings)} finding(s): {listing}"
        else:
            summary = f"Diagnostic of {device.asset_tag}: healthy, no findings."
        return _result(
            summary,
            device_id=device.asset_tag,
            healthy=not findings,
            findings=findings,
            checked_at=_iso(now),
            state=_device_state(device),
        )


# --------------------------------------------------------------------------- monitoring


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


class SandboxMonitoringConnector(SandboxConnector, MonitoringConnector):
    """Logs in ``LogLine``, metric series in ``MetricPoint``; traces derived from logs."""

    def _window(self, minutes: int):
        return timezone.now() - timedelta(minutes=minutes)

    def _logs(self, service: str):
        lines = LogLine.objects.for_tenant(self.tenant).filter(service=service)
        if not lines.exists():
            known = sorted(
                set(LogLine.objects.for_tenant(self.tenant).values_list("service", flat=True))
            )
            raise NotFound(
                f"No logs for service {service!r}. Known services: {', '.join(known) or 'none'}."
            )
        return lines

    def list_services(self, minutes: int) -> dict[str, Any]:
        since = self._window(minutes)
        rows = list(
            LogLine.objects.for_tenant(self.tenant)
            .filter(created_at__gte=since)
            .order_by()
            .values("service")
            .annotate(lines=Count("id"), errors=Count("id", filter=Q(level__in=ERROR_LEVELS)))
            .order_by("service")
        )
        quiet = sorted(
            set(MetricPoint.objects.for_tenant(self.tenant).values_list("service", flat=True))
            - {r["service"] for r in rows}
        )
        services = rows + [{"service": name, "lines": 0, "errors": 0} for name in quiet]
        listed = ", ".join(f"{r['service']} ({r['errors']} errors)" for r in services)
        return _result(
            f"{len(services)} monitored service(s) in the last {minutes} min: {listed or 'none'}.",
            minutes=minutes,
            services=services,
        )

    def search_logs(
        self, service: str, query: str, minutes: int, level: str = ""
    ) -> dict[str, Any]:
        lines = self._logs(service).filter(created_at__gte=self._window(minutes))
        if level:
            order = [choice for choice, _ in LogLevel.choices]
            lines = lines.filter(level__in=order[order.index(level) :])
        for term in query.split():
            lines = lines.filter(message__icontains=term)
        by_level = dict(
            lines.order_by().values("level").annotate(n=Count("id")).values_list("level", "n")
        )
        total = sum(by_level.values())
        errors = sum(by_level.get(level, 0) for level in ERROR_LEVELS)
        sample = [
            {
                "at": _iso(line.created_at),
                "level": line.level,
                "message": line.message[:300],
                "trace_id": line.trace_id,
            }
            for line in lines.order_by("-created_at", "-id")[:SAMPLE_LINES]
        ]
        matching = f" matching {query!r}" if query.strip() else ""
        return _result(
            f"{service}: {total} log line(s){matching} in the last {minutes} min, "
            f"{errors} error(s).",
            service=service,
            query=query,
            minutes=minutes,
            total=total,
            errors=errors,
            by_level=by_level,
            lines=sample,
        )

    def query_metrics(self, service: str, metric: str, minutes: int) -> dict[str, Any]:
        series = MetricPoint.objects.for_tenant(self.tenant).filter(service=service, metric=metric)
        if not series.exists():
            known = sorted(
                set(
                    MetricPoint.objects.for_tenant(self.tenant)
                    .filter(service=service)
                    .values_list("metric", flat=True)
                )
            )
            raise NotFound(
                f"No metric {metric!r} for service {service!r}. "
                f"Known metrics for it: {', '.join(known) or 'none'}."
            )
        points = list(
            series.filter(at__gte=self._window(minutes)).order_by("at").values_list("at", "value")
        )
        values = [value for _, value in points]
        if not values:
            return _result(
                f"{service}.{metric}: no samples in the last {minutes} min.",
                service=service,
                metric=metric,
                minutes=minutes,
                count=0,
                points=[],
            )
        step = max(1, math.ceil(len(points) / SAMPLE_POINTS))
        sample = points[::step]
        if sample[-1] is not points[-1]:
            sample.append(points[-1])
        half = values[: max(1, len(values) // 2)]
        baseline = sum(half) / len(half)
        latest = values[-1]
        change = ((latest - baseline) / baseline * 100) if baseline else 0.0
        return _result(
            f"{service}.{metric} over the last {minutes} min: latest {latest:g}, "
            f"min {min(values):g}, max {max(values):g}, avg {sum(values) / len(values):.4g} "
            f"({change:+.0f}% vs the first half of the window).",
            service=service,
            metric=metric,
            minutes=minutes,
            count=len(values),
            latest=latest,
            min=min(values),
            max=max(values),
            avg=round(sum(values) / len(values), 4),
            p95=_percentile(values, 0.95),
            change_pct=round(change, 1),
            points=[{"at": _iso(at), "value": value} for at, value in sample],
        )

    def get_deploys(self, service: str, minutes: int) -> dict[str, Any]:
        from agents.connectors.sandbox import operations

        return operations.get_deploys(self.tenant, service, minutes)

    def get_traces(self, service: str, minutes: int) -> dict[str, Any]:
        from agents.connectors.sandbox import operations

        recorded = operations.span_traces(self.tenant, service, minutes)
        if recorded is not None:  # real spans beat traces derived from log lines
            return recorded
        spans = (
            self._logs(service).filter(created_at__gte=self._window(minutes)).exclude(trace_id="")
        )
        traces = list(
            spans.order_by()
            .values("trace_id")
            .annotate(
                spans=Count("id"),
                latency_ms=Max("latency_ms"),
                errors=Count("id", filter=Q(level__in=ERROR_LEVELS)),
                last_at=Max("created_at"),
            )
        )
        failed = sorted(
            (t for t in traces if t["errors"]), key=lambda t: t["last_at"], reverse=True
        )
        latencies = [t["latency_ms"] for t in traces if t["latency_ms"] is not None]
        slowest = sorted(traces, key=lambda t: t["latency_ms"] or 0, reverse=True)[:SAMPLE_TRACES]
        failed_ids = [t["trace_id"] for t in failed[:SAMPLE_TRACES]]
        first_errors = {}
        for line in spans.filter(trace_id__in=failed_ids, level__in=ERROR_LEVELS).order_by(
            "created_at"
        ):
            first_errors.setdefault(line.trace_id, line.message[:200])
        p95 = _percentile(latencies, 0.95)
        return _result(
            f"{service}: {len(traces)} trace(s) in the last {minutes} min, {len(failed)} with "
            f"errors, p95 latency {p95 if p95 is not None else '—'} ms.",
            service=service,
            minutes=minutes,
            traces=len(traces),
            error_traces=len(failed),
            p95_latency_ms=p95,
            slowest=[
                {"trace_id": t["trace_id"], "latency_ms": t["latency_ms"], "spans": t["spans"]}
                for t in slowest
            ],
            failing=[
                {"trace_id": trace_id, "first_error": first_errors.get(trace_id, "")}
                for trace_id in failed_ids
            ],
        )
