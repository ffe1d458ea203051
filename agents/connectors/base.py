"""Connector interfaces, the factory that picks an implementation per tenant, and the guard.

Tools never talk to an external system directly: they ask ``get_connector(kind, tenant)``
for a connector and call its methods. Every call then goes through ``GuardedConnector``:

1. ``CircuitBreaker(f"connector:{kind}")`` — after repeated failures the connector is given
   time to recover and calls fail fast with ``ConnectorUnavailable`` (503, retryable);
2. a deadline of ``CONNECTOR_TIMEOUT_SECONDS`` — each implementation enforces it its own way
   (the sandbox: ``SET LOCAL statement_timeout`` inside the call's transaction; an HTTP
   connector: its client's timeout). A timeout is a ``ConnectorUnavailable`` (504, retryable);
3. business answers (unknown user → ``NotFound``, a reused idempotency key →
   ``IdempotencyConflict``) are ``ToolError``s: the connector worked, the breaker stays closed.

Effect methods take ``idempotency_key``: a connector must not apply the same key twice, and
returns the recorded result when asked again. Results are JSON-able dicts
``{"summary": str, "data": dict}``.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.utils.module_loading import import_string

from agents.resilience import CircuitBreaker, CircuitOpen
from agents.tools.base import ToolError

logger = logging.getLogger(__name__)

# Longest a single connector call may take, in seconds (setting-like; tests patch it).
CONNECTOR_TIMEOUT_SECONDS = 5.0


def deadline_setting(seconds: float | None = None) -> str:
    """``seconds`` (default: the connectors' deadline) as a ``statement_timeout`` value."""
    if seconds is None:
        seconds = CONNECTOR_TIMEOUT_SECONDS
    return f"{max(1, math.ceil(seconds * 1000))}ms"


def session_has_deadline(value: str) -> bool:
    """Whether this connection's session already bounds statements by ``value`` (a worker
    sets it once per connection, ``agents.tasks.asynchronous_commit``)."""
    from django.db import connection

    marker = getattr(connection, "_agentops_session_timeout", (None,))
    return marker[0] is not None and marker[0] is connection.connection and marker[1] == value


# Consecutive failures that open a connector's breaker, and how long it then stays open.
BREAKER_THRESHOLD = 5
BREAKER_COOLDOWN_SECONDS = 30.0

DIRECTORY = "directory"
ENDPOINT = "endpoint"
MONITORING = "monitoring"
OPERATIONS = "operations"

# Implementations by kind and backend name. The seam for real connectors: add
# ("directory", "entra_id"): "agents.connectors.entra.EntraDirectoryConnector" here and let
# ``connector_backend_for`` return "entra_id" for the tenants configured to use it.
CONNECTOR_BACKENDS: dict[tuple[str, str], str] = {
    (DIRECTORY, "sandbox"): "agents.connectors.sandbox.connector.SandboxDirectoryConnector",
    (ENDPOINT, "sandbox"): "agents.connectors.sandbox.connector.SandboxEndpointConnector",
    (MONITORING, "sandbox"): "agents.connectors.sandbox.connector.SandboxMonitoringConnector",
    (OPERATIONS, "sandbox"): "agents.connectors.sandbox.operations.SandboxOperationsConnector",
}


# --------------------------------------------------------------------------- errors


class NotFound(ToolError):
    """The user, device or series does not exist in this tenant's system."""

    def __init__(self, message: str):
        super().__init__(message, status_code=404, error_class="NotFound")


class Conflict(ToolError):
    """The request cannot apply to the object's current state (e.g. a disabled account)."""

    def __init__(self, message: str, *, error_class: str = "Conflict"):
        super().__init__(message, status_code=409, error_class=error_class)


class ConnectorUnavailable(ToolError):
    """The external system failed, timed out or its breaker is open. Retry later may help."""

    def __init__(self, message: str, *, status_code: int = 503, error_class: str = "Unavailable"):
        super().__init__(message, status_code=status_code, error_class=error_class, retryable=True)


# --------------------------------------------------------------------------- interfaces


class Connector:
    """Base of every connector implementation: bound to one tenant."""

    kind: str = ""

    def __init__(self, tenant):
        if tenant is None:
            raise ValueError(f"a {self.kind} connector needs a tenant")
        self.tenant = tenant

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Bound the calls made inside the block to ``seconds``; raise on expiry.

        Implementations override this with their transport's own timeout mechanism.
        """
        yield


class DirectoryConnector(Connector, ABC):
    """Identity directory: accounts, passwords, MFA, groups and privileges."""

    kind = DIRECTORY

    @abstractmethod
    def get_user(self, email: str) -> dict[str, Any] | None:
        """The account's current state, or None if unknown."""

    @abstractmethod
    def reset_password(self, email: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def unlock_account(self, email: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def enable_mfa(self, email: str, method: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def disable_mfa(self, email: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def grant_admin_access(
        self, email: str, reason: str, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    def delete_user_account(self, email: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def modify_security_group(
        self, email: str, group: str, action: str, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    def export_user_data(self, email: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def access_privileged_system(
        self, email: str, system: str, reason: str, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    def get_operation(self, idempotency_key: str) -> dict[str, Any] | None:
        """The recorded operation for this key ({"operation", "args", "result"}), or None."""


class EndpointConnector(Connector, ABC):
    """Endpoint management: devices, VPN profiles, software, network adapters, diagnostics."""

    kind = ENDPOINT

    @abstractmethod
    def get_device(self, device_id: str) -> dict[str, Any] | None:
        """The device's current state, or None if unknown."""

    @abstractmethod
    def device_owner(self, device_id: str) -> str | None:
        """The owner's e-mail, or None if the device is unknown."""

    @abstractmethod
    def list_devices(self, owner_email: str) -> list[dict[str, Any]]:
        """The devices a person owns (their state, as ``get_device``), by asset tag."""

    @abstractmethod
    def push_vpn_config(self, device_id: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def install_software(
        self, device_id: str, software: str, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    def reset_network_adapter(self, device_id: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def run_diagnostic(self, device_id: str) -> dict[str, Any]:
        """Read-only check of the device; records the findings as its last diagnostic."""


class MonitoringConnector(Connector, ABC):
    """Monitoring: logs, metric series and traces of the tenant's services (read-only)."""

    kind = MONITORING

    @abstractmethod
    def list_services(self, minutes: int) -> dict[str, Any]:
        """The monitored services, each with its log volume and errors in the window."""

    @abstractmethod
    def search_logs(
        self, service: str, query: str, minutes: int, level: str = ""
    ) -> dict[str, Any]:
        """Log lines of one service in the window: every query word, at ``level`` or worse."""

    @abstractmethod
    def query_metrics(self, service: str, metric: str, minutes: int) -> dict[str, Any]: ...

    @abstractmethod
    def get_traces(self, service: str, minutes: int) -> dict[str, Any]: ...

    @abstractmethod
    def get_deploys(self, service: str, minutes: int) -> dict[str, Any]:
        """The service's deploys and rollbacks in the window, and its current shape
        (version, replicas, region, standby region, dependencies, dependents)."""


class OperationsConnector(Connector, ABC):
    """Remediation on running services: restart, scale, roll back, clear caches, fail over.
    Every effect takes an idempotency key; ``get_service`` reads the state back."""

    kind = OPERATIONS

    @abstractmethod
    def get_service(self, service: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def restart_service(self, service: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def scale_service(
        self, service: str, replicas: int, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    def rollback_deploy(
        self, service: str, to_version: str, *, idempotency_key: str
    ) -> dict[str, Any]: ...

    @abstractmethod
    def clear_cache(self, service: str, *, idempotency_key: str) -> dict[str, Any]: ...

    @abstractmethod
    def failover(self, service: str, region: str, *, idempotency_key: str) -> dict[str, Any]: ...


# --------------------------------------------------------------------------- guard


def _is_timeout(exc: BaseException) -> bool:
    """A database statement timeout (SQLSTATE 57014) or a transport timeout."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, TimeoutError) or getattr(exc, "sqlstate", None) == "57014":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class GuardedConnector:
    """Wraps a connector so that every public method call is behind the breaker and deadline.

    Attribute access is forwarded: ``guarded.unlock_account(...)`` calls the implementation's
    ``unlock_account`` through ``call``. ``impl`` is the wrapped implementation.
    """

    def __init__(self, impl: Connector):
        self.impl = impl
        self.kind = impl.kind
        self.breaker = CircuitBreaker(
            f"connector:{impl.kind}",
            threshold=BREAKER_THRESHOLD,
            cooldown=BREAKER_COOLDOWN_SECONDS,
        )

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.impl, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, lambda: getattr(self.impl, name)(*args, **kwargs))

        guarded.__name__ = name
        return guarded

    def call(self, name: str, fn: Callable[[], Any]) -> Any:
        label = f"{self.kind} connector ({name})"
        try:
            seen = self.breaker.before_call()
        except CircuitOpen as exc:
            raise ConnectorUnavailable(
                f"The {self.kind} connector is unavailable after repeated failures; "
                f"retry in {max(exc.retry_in, 0):.0f}s.",
                error_class="CircuitOpen",
            ) from exc
        # Nothing to reset on a clean breaker: a success then costs no Redis write.
        clean = seen.failures == 0 and seen.opened_at is None
        try:
            with self.impl.deadline(CONNECTOR_TIMEOUT_SECONDS):
                result = fn()
        except ToolError:
            # The system answered (not found, conflict …): it is healthy.
            if not clean:
                self.breaker.record_success()
            raise
        except Exception as exc:
            self.breaker.record_failure(exc)
            if _is_timeout(exc):
                raise ConnectorUnavailable(
                    f"The {label} did not answer within {CONNECTOR_TIMEOUT_SECONDS:g}s.",
                    status_code=504,
                    error_class="Timeout",
                ) from exc
            logger.exception("%s failed", label)
            raise ConnectorUnavailable(
                f"The {label} failed: {type(exc).__name__}.",
                status_code=502,
                error_class="ConnectorError",
            ) from exc
        if not clean:
            self.breaker.record_success()
        return result


# --------------------------------------------------------------------------- factory


def connector_backend_for(tenant, kind: str) -> str:
    """Which implementation serves this tenant for this kind. Per-tenant configuration
    (e.g. a ``ConnectorConfig`` row naming "entra_id" with its credentials) plugs in here;
    until then every tenant uses the built-in sandbox."""
    return "sandbox"


def get_connector(kind: str, tenant) -> GuardedConnector:
    """The tenant's connector of this kind (``directory``, ``endpoint``, ``monitoring``),
    wrapped in its circuit breaker and timeout."""
    kinds = sorted({k for k, _ in CONNECTOR_BACKENDS})
    if kind not in kinds:
        raise KeyError(f"unknown connector kind {kind!r}; known kinds: {', '.join(kinds)}")
    backend = connector_backend_for(tenant, kind)
    try:
        path = CONNECTOR_BACKENDS[(kind, backend)]
    except KeyError:
        raise KeyError(f"no {kind!r} connector named {backend!r}") from None
    return GuardedConnector(import_string(path)(tenant))
