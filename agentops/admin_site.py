"""The Django admin's site, with one change: input the admin cannot use is a 400, not a 500.

Django's admin trusts what an admin sends: an unknown object id in a third-party view
(guardian's permission pages), a foreign key given as ``?user=abc`` to an add form, a value
longer than its column or a required column left out of a form all end in an unhandled
ValueError / DataError / IntegrityError, i.e. a 500 with a traceback. Each admin view (and its
template, rendered here rather than later) runs inside one guard that answers such input with
the styled 400 page and logs the cause for whoever maintains the admin.
"""

from __future__ import annotations

import logging
from functools import wraps

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.core.exceptions import ValidationError
from django.db import DataError, IntegrityError

from agentops.perimeter import bad_request

log = logging.getLogger(__name__)

UNUSABLE_INPUT = (ValueError, ValidationError, DataError, IntegrityError)


class AgentOpsAdminSite(admin.AdminSite):
    site_header = "AgentOps administration"
    site_title = "AgentOps admin"

    def admin_view(self, view, cacheable=False):
        guarded = super().admin_view(view, cacheable)

        @wraps(guarded)
        def inner(request, *args, **kwargs):
            try:
                response = guarded(request, *args, **kwargs)
                if hasattr(response, "render") and not response.is_rendered:
                    response.render()  # render errors (an unusable initial value) land here
            except UNUSABLE_INPUT as exc:
                log.warning("admin refused %s %s: %r", request.method, request.path, exc)
                return bad_request(
                    request, "The administration cannot use that input: check the ids and values."
                )
            return response

        return inner


class AgentOpsAdminConfig(AdminConfig):
    """django.contrib.admin with the site above (INSTALLED_APPS names this instead)."""

    default_site = "agentops.admin_site.AgentOpsAdminSite"
