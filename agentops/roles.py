"""Django groups that mirror the tenant roles, with the model permissions each role holds.

Tenant-scoped rules (which tickets a requester sees) live in the access gates; the groups
give the Django admin and guardian the matching global model permissions.
"""

from __future__ import annotations

from django.apps import apps

from agentops.models import Role

ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.REQUESTER: ["incidents.add_ticket", "incidents.add_comment"],
    Role.AGENT: [
        "incidents.view_ticket",
        "incidents.add_ticket",
        "incidents.change_ticket",
        "incidents.view_comment",
        "incidents.add_comment",
    ],
    Role.REVIEWER: [
        "incidents.view_ticket",
        "incidents.view_comment",
        "incidents.add_comment",
    ],
    Role.ADMIN: [
        "incidents.view_ticket",
        "incidents.add_ticket",
        "incidents.change_ticket",
        "incidents.view_comment",
        "incidents.add_comment",
        "agentops.view_membership",
        "agentops.add_membership",
        "agentops.change_membership",
        "agentops.view_auditevent",
    ],
    Role.AUDITOR: [
        "incidents.view_ticket",
        "incidents.view_comment",
        "agentops.view_auditevent",
    ],
}


def ensure_role_groups(sender=None, **kwargs) -> None:
    """post_migrate hook: create/refresh the role groups once every app's permissions exist."""
    if sender is not None and sender is not list(apps.get_app_configs())[-1]:
        return
    from django.contrib.auth.models import Group, Permission

    using = kwargs.get("using", "default")
    for role, perm_names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=role)
        wanted = []
        for name in perm_names:
            app_label, codename = name.split(".")
            perm = (
                Permission.objects.using(using)
                .filter(content_type__app_label=app_label, codename=codename)
                .first()
            )
            if perm is not None:
                wanted.append(perm)
        group.permissions.set(wanted)
