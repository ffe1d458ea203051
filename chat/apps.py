from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = "Chat assistant"
    default_auto_field = "django.db.models.BigAutoField"
