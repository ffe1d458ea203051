from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The requester portal, and what requesters are told: notification rules, the digest."""

    name = "incidents.portal"
    label = "portal"
    verbose_name = "Requester portal"
    default_auto_field = "django.db.models.BigAutoField"
