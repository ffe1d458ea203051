"""Webhook endpoints (secrets set and rotated here) and deliveries (kept redacted, replayable)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse

from agentops.admin import UnscopedAdminMixin
from incidents.intake import webhooks
from incidents.intake.models import WebhookDelivery, WebhookEndpoint, WebhookLink


class WebhookEndpointForm(forms.ModelForm):
    new_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Set or rotate the signing secret (16+ characters). The previous one stays "
        "valid for the hours below, so the sending tool can switch over without a gap.",
    )
    keep_previous_hours = forms.FloatField(initial=24, min_value=0, max_value=24 * 30)

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "provider", "name", "is_active", "default_requester_email"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "tenant", "provider", "is_active", "has_secret", "url"]
    list_filter = ["provider", "is_active", "tenant"]
    readonly_fields = ["public_id", "url", "has_secret", "previous_secret_valid_until"]

    @admin.display(boolean=True)
    def has_secret(self, obj) -> bool:
        return bool(obj.secret)

    @admin.display(description="URL to give the tool")
    def url(self, obj) -> str:
        if obj.pk is None:
            return "(saved first)"
        return reverse("api:receive_webhook", args=[obj.provider, obj.public_id])

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        secret = form.cleaned_data.get("new_secret")
        if secret:
            try:
                webhooks.endpoint_set_secret(
                    endpoint=obj,
                    actor=request.user,
                    secret=secret,
                    keep_previous_hours=form.cleaned_data.get("keep_previous_hours") or 0,
                )
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "tenant", "endpoint", "event_type", "outcome", "ticket_number"]
    list_filter = ["outcome", "endpoint__provider", "tenant"]
    search_fields = ["delivery_id", "event_type", "ticket_number"]
    actions = ["replay"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay the selected deliveries")
    def replay(self, request, queryset):
        done = 0
        for delivery in queryset.order_by("received_at", "id"):
            webhooks.replay_delivery(delivery=delivery, actor=request.user)
            done += 1
        self.message_user(request, f"Replayed {done} deliveries.", messages.SUCCESS)


@admin.register(WebhookLink)
class WebhookLinkAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Which external issue became which ticket (written by the webhook intake only)."""

    list_display = ["external_id", "ticket", "endpoint", "tenant", "created_at"]
    search_fields = ["external_id"]
    list_select_related = ["tenant", "ticket", "endpoint"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
