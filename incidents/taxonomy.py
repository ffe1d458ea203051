"""The tenant's own ticket taxonomy: categories and subcategories (``TicketCategory``).

Every tenant starts with the nine built-in ``Category`` values (seeded by the migration for
existing tenants and on creation for new ones; a tenant with no rows at all reads the nine, so
nothing breaks before seeding). Tenants add, rename, nest and retire categories in the admin;
``manage.py import_tickets`` adds the labels of imported history.

Readers: ``categories_for`` (what triage and the forms offer), ``values_for``, ``choices_for``,
``label_for``, ``known`` / ``normalise``. Writers: ``seed_defaults``, ``ensure_categories``,
``check_category`` (the validation every ticket write goes through).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import post_save
from django.utils.text import slugify

from agentops.prepared import prepared
from incidents.models import CATEGORY_MAX, Category, TicketCategory

FALLBACK = Category.OTHER  # where triage puts what fits nothing, when the tenant has it
PATH_SEPARATOR = " / "


@dataclass(frozen=True)
class CategoryDef:
    """One category as the rest of the code reads it (no model instance)."""

    value: str
    name: str
    parent: str = ""  # the parent's value, for a subcategory
    description: str = ""
    active: bool = True

    @property
    def label(self) -> str:
        return self.name


def _tenant_id(tenant) -> int:
    return getattr(tenant, "pk", tenant)


def _defaults() -> list[CategoryDef]:
    return [CategoryDef(value=str(v), name=str(label)) for v, label in Category.choices]


# Inside ``memoised()``: tenant id -> all its categories (inactive too), read once.
_memo: ContextVar[dict[int, list[CategoryDef]] | None] = ContextVar("taxonomy_memo", default=None)


@contextmanager
def memoised() -> Iterator[None]:
    """Read each tenant's categories once in this block (a triage step offers them to the
    model, normalises its answer and checks the ticket's new category: three reads)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def categories_for(tenant, *, include_inactive: bool = False) -> list[CategoryDef]:
    """The tenant's categories, parents before their children, in the admin's order."""
    memo = _memo.get()
    if memo is None:
        return _read(tenant, include_inactive=include_inactive)
    key = _tenant_id(tenant)
    if key not in memo:
        memo[key] = _read(tenant, include_inactive=True)
    return memo[key] if include_inactive else [c for c in memo[key] if c.active]


# Compiled once per process (agentops.prepared): triage reads the tree on every run.
@prepared
def _all_rows(tenant_id: int):
    return (
        TicketCategory.objects.for_tenant(tenant_id)
        .select_related("parent")
        .order_by("position", "name", "id")
    )


@prepared
def _active_rows(tenant_id: int):
    return (
        TicketCategory.objects.for_tenant(tenant_id)
        .select_related("parent")
        .filter(is_active=True)
        .order_by("position", "name", "id")
    )


@prepared
def _any_row(tenant_id: int):
    return TicketCategory.objects.for_tenant(tenant_id).order_by("pk").values_list("pk")[:1]


def _read(tenant, *, include_inactive: bool) -> list[CategoryDef]:
    tenant_id = _tenant_id(tenant)
    rows = _all_rows(tenant_id) if include_inactive else _active_rows(tenant_id)
    if not rows:
        exists = include_inactive is False and bool(_any_row(tenant_id))
        return [] if exists else _defaults()
    defs = {
        r.pk: CategoryDef(
            value=r.value,
            name=r.name,
            parent=r.parent.value if r.parent_id else "",
            description=r.description,
            active=r.is_active,
        )
        for r in rows
    }
    children: dict[str, list[CategoryDef]] = {}
    for r in rows:
        children.setdefault(defs[r.pk].parent, []).append(defs[r.pk])
    ordered: list[CategoryDef] = []

    def walk(parent: str, depth: int) -> None:
        for child in children.get(parent, []):
            ordered.append(child)
            if depth < 5:  # the admin keeps trees shallow; this keeps a cycle harmless
                walk(child.value, depth + 1)

    walk("", 0)
    # A child whose parent is inactive is still offered, after the tree.
    ordered += [d for d in defs.values() if d not in ordered]
    return ordered


def values_for(tenant) -> list[str]:
    return [c.value for c in categories_for(tenant)]


def labels_for(tenant) -> dict[str, str]:
    """value → name, inactive categories too (tickets keep them), with "Parent / Child"."""
    cats = categories_for(tenant, include_inactive=True)
    names = {c.value: c.name for c in cats}
    return {
        c.value: f"{names[c.parent]}{PATH_SEPARATOR}{c.name}" if c.parent in names else c.name
        for c in cats
    }


def choices_for(tenant, *, blank: str | None = None) -> list[tuple[str, str]]:
    """(value, label) pairs for a form's select: the active categories, children indented."""
    labels = labels_for(tenant)
    choices = [(c.value, labels.get(c.value, c.name)) for c in categories_for(tenant)]
    return [("", blank), *choices] if blank is not None else choices


def filter_choices_for(tenant, *, blank: str = "Any") -> list[tuple[str, str]]:
    """(value, label) pairs for a list filter, from one query: the active categories, then the
    retired ones (tickets keep them, so people still filter by them), marked so."""
    cats = categories_for(tenant, include_inactive=True)
    names = {c.value: c.name for c in cats}

    def label(c: CategoryDef) -> str:
        name = f"{names[c.parent]}{PATH_SEPARATOR}{c.name}" if c.parent in names else c.name
        return name if c.active else f"{name} (retired)"

    active = [(c.value, label(c)) for c in cats if c.active]
    retired = [(c.value, label(c)) for c in cats if not c.active]
    return [("", blank), *active, *retired]


def label_for(tenant, value: str) -> str:
    if not value:
        return ""
    return labels_for(tenant).get(value, value)


def known(tenant, value: str) -> bool:
    """Whether ``value`` is an active category of the tenant."""
    return bool(value) and value in set(values_for(tenant))


def normalise(tenant, value: str | None) -> str:
    """``value`` when the tenant has it (exactly, or by its name or case), else the tenant's
    fallback category ("other") when it has one, else "" (no category)."""
    value = str(value or "").strip()[:CATEGORY_MAX]
    cats = categories_for(tenant)
    by_value = {c.value: c.value for c in cats}
    if value in by_value:
        return value
    folded = {c.value.casefold(): c.value for c in cats} | {
        c.name.casefold(): c.value for c in cats
    }
    if value.casefold() in folded:
        return folded[value.casefold()]
    return FALLBACK.value if FALLBACK.value in by_value else ""


def check_category(tenant, value: str) -> None:
    """Raise ValidationError unless ``value`` is blank or a category of the tenant (an
    inactive one is kept on the tickets that have it, so it passes)."""
    if not value:
        return
    values = {c.value for c in categories_for(tenant, include_inactive=True)}
    if value not in values:
        raise ValidationError({"category": f"Unknown category {value!r}."})


SCHEMA_NAMES_MAX = 2000  # characters of "value (name)" pairs a tool's schema lists


def with_categories(tenant, schema: dict) -> dict:
    """A copy of a tool's JSON schema whose ``category`` is one of the tenant's active
    categories (the enum), described with their names so the model can choose by meaning."""
    properties = dict(schema.get("properties", {}))
    if "category" not in properties:
        return schema
    labels = labels_for(tenant)
    values = values_for(tenant)
    named = ", ".join(f"{v} ({labels.get(v, v)})" for v in values)
    if len(named) > SCHEMA_NAMES_MAX:
        named = named[: SCHEMA_NAMES_MAX - 1].rsplit(", ", 1)[0] + ", …"
    properties["category"] = {
        **properties["category"],
        "enum": values or [""],
        "description": f"One of this organisation's ticket categories: {named}.",
    }
    return {**schema, "properties": properties}


def triage_tool(tenant, tool):
    """The triage tool with the tenant's categories as its ``category`` enum."""
    return replace(tool, input_schema=with_categories(tenant, tool.input_schema))


# --------------------------------------------------------------------------- writing


@transaction.atomic
def seed_defaults(tenant) -> int:
    """Give the tenant the nine built-in categories it does not have; returns how many."""
    have = set(
        TicketCategory.objects.for_tenant(_tenant_id(tenant)).values_list("value", flat=True)
    )
    new = [
        TicketCategory(tenant_id=_tenant_id(tenant), value=d.value, name=d.name, position=i)
        for i, d in enumerate(_defaults())
        if d.value not in have
    ]
    TicketCategory.objects.bulk_create(new, ignore_conflicts=True)
    return len(new)


def _split(label: str) -> list[str]:
    """ "Hardware / Laptop" or "Hardware > Laptop" → ["Hardware", "Laptop"]."""
    for sep in (" / ", " > "):  # spaced only: "TCP/IP" is one label
        if sep in label:
            return [p.strip() for p in label.split(sep) if p.strip()]
    return [label.strip()]


@transaction.atomic
def ensure_categories(tenant, labels: Iterable[str]) -> dict[str, str]:
    """Make every label a category of the tenant (labels of imported history); returns
    label → the value tickets store. A label already a value (or a name) maps to it; a new
    one becomes a category whose value is the label itself (the tenant's words, up to
    CATEGORY_MAX), and "Parent / Child" a subcategory of its parent."""
    tenant_id = _tenant_id(tenant)
    if not TicketCategory.objects.for_tenant(tenant_id).exists():
        seed_defaults(tenant_id)
    rows = {c.value: c for c in TicketCategory.objects.for_tenant(tenant_id)}
    by_name = {c.name.casefold(): c for c in rows.values()}
    mapping: dict[str, str] = {}
    for raw in labels:
        label = str(raw or "").strip()[:CATEGORY_MAX]
        if not label or label in mapping:
            continue
        found = rows.get(label) or by_name.get(label.casefold())
        if found is None:
            parent = None
            parts = _split(label)
            if len(parts) > 1:
                parent_label = parts[0][:CATEGORY_MAX]
                parent = rows.get(parent_label) or by_name.get(parent_label.casefold())
                if parent is None:
                    parent = TicketCategory.objects.create(
                        tenant_id=tenant_id, value=parent_label, name=parent_label
                    )
                    rows[parent.value] = by_name[parent.name.casefold()] = parent
            found = TicketCategory.objects.create(
                tenant_id=tenant_id,
                value=label,
                name=parts[-1][:200] if parent is not None else label[:200],
                parent=parent,
                position=len(rows),
            )
            rows[found.value] = found
            by_name.setdefault(found.name.casefold(), found)
        mapping[label] = found.value
        mapping.setdefault(str(raw), found.value)
    return mapping


def suggested_value(name: str) -> str:
    """A value for a category named in the admin without one: its slug."""
    return slugify(name)[:CATEGORY_MAX]


def _seed_new_tenant(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        seed_defaults(instance.pk)


def register() -> None:
    """Seed each new tenant's taxonomy, and make imported history's category labels the
    tenant's categories (called from IncidentsConfig.ready)."""
    from agentops.models import Tenant
    from knowledge import history

    history.register_label_mapper("category", ensure_categories)

    post_save.connect(_seed_new_tenant, sender=Tenant, dispatch_uid="incidents.taxonomy.seed")
