"""Who is acting, and which changes their caller already audits: context for signal receivers.

Permission changes are audited wherever they happen (a service, the Django admin, guardian's
shortcuts, a shell): receivers of post_save / post_delete / m2m_changed write the event. They
learn the actor from ``acting_as`` (set for every request by ``agentops.middleware``), and skip
changes whose caller writes a richer event itself (``recorded_by_caller``), so one change never
yields two events.

This module also holds the receivers for the core models: a membership's role, and a user's
Django groups and global permissions (the role groups mirror the roles).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from agentops import audit

_actor: ContextVar[object | None] = ContextVar("audit_actor", default=None)
_recorded: ContextVar[frozenset[str]] = ContextVar("audit_recorded_by_caller", default=frozenset())

# Kinds of change a caller may claim (see ``recorded_by_caller``).
PERMISSION = "permission"  # guardian object-permission rows (tickets, queues)
MEMBERSHIP = "membership"  # Membership rows and the role groups that mirror them


@contextmanager
def acting_as(actor) -> Iterator[None]:
    """Attribute changes audited by signal receivers inside the block to ``actor``."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor():
    return _actor.get()


@contextmanager
def recorded_by_caller(*kinds: str) -> Iterator[None]:
    """The caller records its own audit event for these kinds of change: receivers skip them.

    Keep the block tight around the writes the caller audits: anything else changed inside it
    would go unaudited.
    """
    token = _recorded.set(_recorded.get() | frozenset(kinds))
    try:
        yield
    finally:
        _recorded.reset(token)


def is_recorded_by_caller(kind: str) -> bool:
    return kind in _recorded.get()


# --- receivers for the core models ---------------------------------------------------------


def _membership_pre_save(sender, instance, raw=False, **kwargs) -> None:
    if raw or is_recorded_by_caller(MEMBERSHIP) or instance.pk is None:
        instance._audit_old_role = None
        return
    instance._audit_old_role = (
        sender.objects.filter(pk=instance.pk).values_list("role", flat=True).first()
    )


def _membership_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or is_recorded_by_caller(MEMBERSHIP):
        return
    old = getattr(instance, "_audit_old_role", None)
    if not created and old == instance.role:
        return
    audit.record(
        tenant=instance.tenant,
        actor=current_actor(),
        action="membership.created" if created else "membership.changed",
        target_type="user",
        target_id=instance.user_id,
        target_repr=instance.user.get_username(),
        changes={"role": instance.role if created else {"from": old, "to": instance.role}},
        metadata={"via": "signal"},
    )


def _membership_deleted(sender, instance, origin=None, **kwargs) -> None:
    from agentops.models import Tenant

    if is_recorded_by_caller(MEMBERSHIP) or isinstance(origin, Tenant):
        return  # audited by the caller, or the tenant (and its trail) is going
    tenant = Tenant.objects.filter(pk=instance.tenant_id).first()
    if tenant is None:
        return
    audit.record(
        tenant=tenant,
        actor=current_actor(),
        action="membership.removed",
        target_type="user",
        target_id=instance.user_id,
        target_repr=instance.user.get_username(),
        changes={"role": instance.role},
        metadata={"via": "signal"},
    )


def _user_m2m_changed(kind: str):
    """A receiver for User.groups / User.user_permissions: global, so audited in every tenant
    the user belongs to."""

    def receiver(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
        if action not in ("post_add", "post_remove", "pre_clear") or is_recorded_by_caller(
            MEMBERSHIP
        ):
            return
        from django.contrib.auth import get_user_model

        from agentops.models import Membership

        User = get_user_model()
        if reverse:  # group.user_set.add(user...): the users are in pk_set
            users = list(User.objects.filter(pk__in=pk_set or ()))
            names = [str(instance)]
        else:
            users = [instance]
            related = instance.groups if kind == "groups" else instance.user_permissions
            if action == "pre_clear":
                names = [str(x) for x in related.all()]
            else:
                names = [str(x) for x in model.objects.filter(pk__in=pk_set or ())]
        if not names:
            return
        verb = "added" if action == "post_add" else "removed"
        for user in users:
            memberships = Membership.objects.filter(user=user).select_related("tenant")
            for membership in memberships:
                audit.record(
                    tenant=membership.tenant,
                    actor=current_actor(),
                    action=f"permission.{kind}_{verb}",
                    target_type="user",
                    target_id=user.pk,
                    target_repr=user.get_username(),
                    changes={kind: sorted(names)},
                    metadata={"via": "signal"},
                )

    return receiver


def connect() -> None:
    """Called from AgentopsConfig.ready."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

    from agentops.models import Membership

    User = get_user_model()
    pre_save.connect(_membership_pre_save, sender=Membership, dispatch_uid="audit.membership.pre")
    post_save.connect(_membership_saved, sender=Membership, dispatch_uid="audit.membership.save")
    post_delete.connect(
        _membership_deleted, sender=Membership, dispatch_uid="audit.membership.delete"
    )
    # weak=False: the receivers are closures nothing else holds on to.
    m2m_changed.connect(
        _user_m2m_changed("groups"),
        sender=User.groups.through,
        weak=False,
        dispatch_uid="audit.user.groups",
    )
    m2m_changed.connect(
        _user_m2m_changed("user_permissions"),
        sender=User.user_permissions.through,
        weak=False,
        dispatch_uid="audit.user.user_permissions",
    )
