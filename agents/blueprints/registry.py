"""The blueprint registry, and what each tenant makes of it.

Blueprints register at startup (``register``); a tenant's admin enables or disables each one,
overrides its config (``default_config`` keys only) and narrows its tools
(``BlueprintSetting`` in the Django admin). ``for_tenant`` gives the effective view the engine,
the API and the console use: enabled, config, allowed tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentops.prepared import prepared
from agents.blueprints.base import Blueprint

_REGISTRY: dict[str, Blueprint] = {}


def register(blueprint: Blueprint) -> Blueprint:
    missing = [s for s in blueprint.transitions if s not in blueprint.states]
    if blueprint.initial not in blueprint.states or missing:
        raise ValueError(f"Blueprint {blueprint.name}: initial/transition states must be declared")
    unknown = [t for t in blueprint.approval_tools if t not in blueprint.tools]
    if unknown:
        raise ValueError(f"Blueprint {blueprint.name}: approval_tools not declared: {unknown}")
    _REGISTRY[blueprint.name] = blueprint
    return blueprint


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> Blueprint:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LookupError(f"No blueprint named {name!r} is registered") from None


def all_blueprints() -> list[Blueprint]:
    return sorted(_REGISTRY.values(), key=lambda b: b.name)


@dataclass(frozen=True)
class TenantBlueprint:
    """A blueprint as one tenant has it: enabled or not, its config, the tools it may call."""

    blueprint: Blueprint
    enabled: bool
    config: dict[str, Any]
    tools: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.blueprint.name


@prepared  # (every run started asks)
def _setting_of(tenant_id: int, name: str):
    from agents.models import BlueprintSetting

    return BlueprintSetting.objects.for_tenant(tenant_id).filter(blueprint=name).order_by("pk")[:1]


def for_tenant(tenant, name: str) -> TenantBlueprint:
    """The effective settings of one blueprint for ``tenant`` (LookupError: not registered)."""

    bp = get(name)
    setting = _setting_of.first(tenant.pk, name)
    return _effective(bp, setting, _tier_allows(tenant))


def all_for_tenant(tenant) -> list[TenantBlueprint]:
    from agents.models import BlueprintSetting

    settings = {s.blueprint: s for s in BlueprintSetting.objects.for_tenant(tenant)}
    allows = _tier_allows(tenant)
    return [_effective(bp, settings.get(bp.name), allows) for bp in all_blueprints()]


def tier_excludes(tenant, name: str) -> str:
    """Words when the tenant's tier leaves blueprint ``name`` out (whatever its setting), else ""."""
    allows = _tier_allows(tenant)
    if allows is None or name in allows:
        return ""
    return f"not in the {tenant.get_tier_display()} tier"


def _tier_allows(tenant):
    """The blueprints the tenant's tier includes (None: all), from ``agentops.quotas``."""
    from agentops import quotas

    return quotas.limits_for(tenant).blueprints


def _effective(bp: Blueprint, setting, tier_allows=None) -> TenantBlueprint:
    config = dict(bp.default_config)
    tools = tuple(bp.tools)
    enabled = bp.enabled_by_default
    if setting is not None:
        enabled = setting.enabled
        config.update({k: v for k, v in (setting.config or {}).items() if k in bp.default_config})
        if setting.allowed_tools:  # a tenant narrows the declared tools, never widens them
            tools = tuple(t for t in bp.tools if t in set(setting.allowed_tools))
    if tier_allows is not None and bp.name not in tier_allows:
        enabled = False  # the tier does not include it, whatever the tenant's admin set
    return TenantBlueprint(blueprint=bp, enabled=enabled, config=config, tools=tools)


def validate_setting(name: str, config: Any, allowed_tools: Any) -> dict[str, list[str]]:
    """Problems with an admin's settings for blueprint ``name``, by field (empty: valid)."""
    errors: dict[str, list[str]] = {}
    try:
        bp = get(name)
    except LookupError:
        return {"blueprint": [f"No blueprint named {name!r} is registered."]}
    if not isinstance(config, dict):
        errors["config"] = ["Give a JSON object."]
    else:
        for key, value in config.items():
            if key not in bp.default_config:
                known = ", ".join(sorted(bp.default_config)) or "none"
                errors.setdefault("config", []).append(f"Unknown setting {key!r} (known: {known}).")
                continue
            default = bp.default_config[key]
            kind = (int, float) if isinstance(default, int | float) else type(default)
            if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kind):
                errors.setdefault("config", []).append(
                    f"{key} must be a {type(default).__name__} like {default!r}."
                )
            elif isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
                errors.setdefault("config", []).append(f"{key} must be greater than 0.")
    if not isinstance(allowed_tools, list) or not all(isinstance(t, str) for t in allowed_tools):
        errors["allowed_tools"] = ["Give a JSON list of tool names."]
    else:
        undeclared = [t for t in allowed_tools if t not in bp.tools]
        if undeclared:
            errors["allowed_tools"] = [
                f"{name} does not declare {', '.join(undeclared)}; it may use only: "
                f"{', '.join(bp.tools) or 'no tools'}."
            ]
    return errors


def save_setting(*, tenant, actor, blueprint: str, enabled: bool, config, allowed_tools):
    """Create or change a tenant's settings for one blueprint: validated, audited."""
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from agentops import audit
    from agents.models import BlueprintSetting

    errors = validate_setting(blueprint, config, allowed_tools)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        setting, created = BlueprintSetting.objects.for_tenant(tenant).update_or_create(
            tenant=tenant,
            blueprint=blueprint,
            defaults={"enabled": enabled, "config": config, "allowed_tools": allowed_tools},
        )
        audit.record(
            tenant=tenant,
            actor=actor,
            action="blueprint.settings_changed",
            target_type="blueprint",
            target_id=blueprint,
            target_repr=blueprint,
            changes={"enabled": enabled, "config": config, "allowed_tools": allowed_tools},
            metadata={"created": created},
        )
    return setting
