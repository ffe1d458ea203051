from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from agentops import quotas, services
from agentops.models import (
    ApiToken,
    AuditEvent,
    Membership,
    Notification,
    QuotaWarning,
    Sequence,
    Tenant,
    TenantLimits,
    UsageRecord,
)


class UnscopedAdminMixin:
    """Admins work across tenants; the admin reads tenant-owned tables explicitly unscoped."""

    def get_queryset(self, request):
        return self.model.objects.unscoped("django admin").select_related("tenant")


class MembershipFormSet(forms.BaseInlineFormSet):
    """New members must fit the tenant's user limit (agentops.quotas): said on the form."""

    def clean(self):
        super().clean()
        if self.instance.pk is None:
            return
        adding = sum(
            1
            for f in self.forms
            if f.has_changed()
            and getattr(f, "cleaned_data", None)
            and not f.cleaned_data.get("DELETE")
            and f.instance.pk is None
        )
        if adding:
            try:
                quotas.check_users(self.instance, adding=adding)
            except quotas.QuotaExceeded as exc:
                raise ValidationError(str(exc)) from None


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "tenant", "role"]

    def clean(self):
        data = super().clean()
        tenant, user = data.get("tenant"), data.get("user")
        if tenant and user and not Membership.objects.filter(tenant=tenant, user=user).exists():
            try:
                quotas.check_users(tenant)
            except quotas.QuotaExceeded as exc:
                raise ValidationError(str(exc)) from None
        return data


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    autocomplete_fields = ["user"]
    fields = ["user", "role"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "tier", "is_active", "created_at"]
    list_filter = ["tier", "is_active"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        # Memberships go through the service (role groups, audit); removals too.
        for inline_form in formset.forms:
            if not inline_form.has_changed() or not inline_form.cleaned_data:
                continue
            data = inline_form.cleaned_data
            if data.get("DELETE") and inline_form.instance.pk:
                services.membership_remove(membership=inline_form.instance, actor=request.user)
            elif not data.get("DELETE"):
                services.membership_set(
                    tenant=form.instance, user=data["user"], role=data["role"], actor=request.user
                )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug"]
    autocomplete_fields = ["user", "tenant"]
    readonly_fields = ["created_at"]

    def save_model(self, request, obj, form, change):
        # Through the service: keeps role groups in sync and writes the audit event.
        saved = services.membership_set(
            tenant=obj.tenant, user=obj.user, role=obj.role, actor=request.user
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        services.membership_remove(membership=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            services.membership_remove(membership=membership, actor=request.user)


@admin.register(Sequence)
class SequenceAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["tenant", "name", "value"]
    list_filter = ["tenant"]
    search_fields = ["name"]
    readonly_fields = ["tenant", "name", "value"]


@admin.register(ApiToken)
class ApiTokenAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "prefix",
        "user",
        "tenant",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = [
        "tenant",
        ("revoked_at", admin.EmptyFieldListFilter),
        ("expires_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = [
        "name",
        "user",
        "tenant",
        "prefix",
        "token_hash",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        # Only the expiry is editable here; it goes through the audited service.
        token = ApiToken.objects.unscoped("django admin").get(pk=obj.pk)
        services.api_token_set_expiry(
            token=token, expires_at=form.cleaned_data.get("expires_at"), actor=request.user
        )

    def has_add_permission(self, request):
        return (
            False  # tokens are created with `manage.py create_api_token` (the secret is shown once)
        )

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            services.api_token_revoke(token=token, actor=request.user)
        messages.success(request, "Revoked.")


@admin.register(AuditEvent)
class AuditEventAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "target_repr",
    ]
    list_filter = ["tenant", "action", "target_type"]
    search_fields = ["actor_label", "action", "target_id", "target_repr"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """In-console notifications (agentops.notifications.notify writes them); read-only here."""

    list_display = ["created_at", "tenant", "user", "verb", "title", "read_at"]
    list_filter = ["tenant", "verb", ("read_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "user__username"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(TenantLimits)
class TenantLimitsAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Per-tenant overrides of the tier's limits (agentops.quotas); empty fields follow the tier."""

    list_display = ["tenant", "runs_per_month", "tokens_per_month", "api_requests_per_minute"]

    def save_model(self, request, obj, form, change):
        from agentops import quotas

        values = {name: form.cleaned_data.get(name) for name in form.changed_data}
        values.pop("tenant", None)
        saved = quotas.limits_set(tenant=obj.tenant, actor=request.user, **values)
        obj.pk = saved.pk


class ReadOnlyAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Rows written only by services (metering, warnings): looked at here, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "tenant", "metric", "quantity", "blueprint", "model", "key"]
    list_filter = ["metric", "tenant"]


@admin.register(QuotaWarning)
class QuotaWarningAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "tenant", "metric", "period", "threshold"]
