"""The sandbox connector's state: a directory, managed devices, logs, metrics, operations.

These tables stand in for the external systems a real deployment connects to (an identity
provider, an endpoint manager, a monitoring stack). Tools change them through
``agents.connectors.sandbox.connector`` only, so the demo and the tests see real effects.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from agentops.tenancy import TenantOwned

# The VPN profile version the endpoint manager currently distributes (push_vpn_config).
LATEST_VPN_PROFILE_VERSION = 7


class MfaMethod(models.TextChoices):
    NONE = "", "None"
    AUTHENTICATOR_APP = "authenticator_app", "Authenticator app"
    SMS = "sms", "SMS"
    HARDWARE_KEY = "hardware_key", "Hardware key"


class VpnStatus(models.TextChoices):
    CONNECTED = "connected", "Connected"
    TIMEOUT = "timeout", "Timing out"
    DISCONNECTED = "disconnected", "Disconnected"


class AdapterState(models.TextChoices):
    UP = "up", "Up"
    FLAPPING = "flapping", "Flapping"
    DOWN = "down", "Down"


class LogLevel(models.TextChoices):
    DEBUG = "debug", "Debug"
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
    CRITICAL = "critical", "Critical"


class DirectoryUser(TenantOwned):
    """An account in the tenant's (sandbox) identity directory, with its security state.

    ``email`` is stored lower-case and is unique per tenant; tools address people by it.
    """

    email = models.EmailField()
    display_name = models.CharField(max_length=150)
    department = models.CharField(max_length=80, blank=True)
    locked = models.BooleanField(default=False)
    failed_login_attempts = models.PositiveIntegerField(default=0)
    mfa_enabled = models.BooleanField(default=False)
    mfa_method = models.CharField(
        max_length=20, choices=MfaMethod.choices, blank=True, default=MfaMethod.NONE
    )
    password_changed_at = models.DateTimeField(default=timezone.now)
    must_change_password = models.BooleanField(default=False)
    identity_verified_at = models.DateTimeField(null=True, blank=True)
    is_admin = models.BooleanField(default=False)
    groups = models.JSONField(default=list, blank=True)
    disabled = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "email"], name="sandbox_directoryuser_unique_tenant_email"
            )
        ]
        ordering = ["display_name", "email"]

    def __str__(self) -> str:
        return f"{self.display_name} <{self.email}>"

    def save(self, *args, **kwargs):
        self.email = (self.email or "").strip().lower()
        super().save(*args, **kwargs)


class Device(TenantOwned):
    """A managed endpoint (laptop, desktop …) identified by its asset tag, e.g. ``LT-0042``."""

    asset_tag = models.CharField(max_length=20)
    owner_email = models.EmailField()
    hostname = models.CharField(max_length=63)
    model = models.CharField(max_length=80, blank=True)
    os = models.CharField(max_length=80, blank=True)
    vpn_profile_version = models.PositiveIntegerField(default=LATEST_VPN_PROFILE_VERSION)
    vpn_status = models.CharField(
        max_length=20, choices=VpnStatus.choices, default=VpnStatus.DISCONNECTED
    )
    installed_software = models.JSONField(default=list, blank=True)
    adapter_state = models.CharField(
        max_length=20, choices=AdapterState.choices, default=AdapterState.UP
    )
    last_diagnostic = models.JSONField(default=dict, blank=True)
    last_diagnostic_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "asset_tag"], name="sandbox_device_unique_tenant_asset_tag"
            )
        ]
        indexes = [models.Index(fields=["tenant", "owner_email"], name="sandbox_device_owner")]
        ordering = ["asset_tag"]

    def __str__(self) -> str:
        return f"{self.asset_tag} ({self.hostname})"

    def save(self, *args, **kwargs):
        self.owner_email = (self.owner_email or "").strip().lower()
        self.asset_tag = (self.asset_tag or "").strip().upper()
        super().save(*args, **kwargs)

    @property
    def vpn_profile_outdated(self) -> bool:
        return self.vpn_profile_version < LATEST_VPN_PROFILE_VERSION


class LogLine(TenantOwned):
    """One log line of a monitored service; ``trace_id``/``latency_ms`` let traces be derived."""

    service = models.CharField(max_length=40)
    level = models.CharField(max_length=10, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField(max_length=2000)
    trace_id = models.CharField(max_length=32, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "service", "created_at"], name="sandbox_logline_service_time"
            )
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%H:%M:%S} {self.service} {self.level}: {self.message[:60]}"


class MetricPoint(TenantOwned):
    """One sample of a service metric (``latency_p95_ms``, ``error_rate``, ``requests_per_min``)."""

    service = models.CharField(max_length=40)
    metric = models.CharField(max_length=60)
    value = models.FloatField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(
                fields=["tenant", "service", "metric", "at"], name="sandbox_metric_series_time"
            )
        ]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.service}.{self.metric}={self.value:g} @ {self.at:%H:%M}"


class Operation(TenantOwned):
    """The connector's own record of an applied operation, keyed by the caller's idempotency key.

    Applying an operation whose key is already recorded returns ``result`` and changes nothing:
    that is how a redelivered task never applies a tool twice. Written in the same transaction
    as the change it records.
    """

    idempotency_key = models.CharField(max_length=200)
    connector = models.CharField(max_length=20)
    operation = models.CharField(max_length=60)
    args = models.JSONField(default=dict)
    result = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"], name="sandbox_operation_unique_tenant_key"
            )
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.connector}.{self.operation} [{self.idempotency_key}]"


class MonitoredService(TenantOwned):
    """A service the (sandbox) monitoring stack watches, with what operations can change.

    ``fault`` is the fault currently injected (``{}`` when healthy): its ``kind``, since when,
    which remediation clears it, and anything the generator needs to keep writing consistent
    logs, metrics and spans. Remediations change this row; the generator reads it.
    """

    name = models.CharField(max_length=40)
    owner_team = models.CharField(max_length=80, blank=True)
    replicas = models.PositiveIntegerField(default=2)
    version = models.CharField(max_length=40, default="1.0.0")
    depends_on = models.JSONField(default=list, blank=True)
    region = models.CharField(max_length=40, default="eu-west-1")
    standby_region = models.CharField(max_length=40, blank=True)
    fault = models.JSONField(default=dict, blank=True)
    restarted_at = models.DateTimeField(null=True, blank=True)
    cache_cleared_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="sandbox_monitoredservice_unique_tenant_name"
            )
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} {self.version} ×{self.replicas} ({self.region})"


class Deploy(TenantOwned):
    """One deploy (or rollback) of a monitored service: the history get_deploys reads."""

    service = models.CharField(max_length=40)
    version = models.CharField(max_length=40)
    at = models.DateTimeField(default=timezone.now)
    author = models.CharField(max_length=80, blank=True)
    summary = models.CharField(max_length=300, blank=True)
    rollback = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["tenant", "service", "at"], name="sandbox_deploy_time")]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.service} {self.version} @ {self.at:%H:%M}"


class Span(TenantOwned):
    """One span of a request trace: which service did which operation, how long, and whether
    it failed. A span whose ``service`` differs from its parent's is a call downstream."""

    trace_id = models.CharField(max_length=32)
    span_id = models.CharField(max_length=16)
    parent_id = models.CharField(max_length=16, blank=True)
    service = models.CharField(max_length=40)
    operation = models.CharField(max_length=80)
    duration_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "service", "at"], name="sandbox_span_service_time"),
            models.Index(fields=["tenant", "trace_id"], name="sandbox_span_trace"),
        ]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return (
            f"{self.trace_id}/{self.span_id} {self.service}.{self.operation} {self.duration_ms}ms"
        )
