from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from agentops import audit
from agentops.admin import UnscopedAdminMixin
from agentops.models import Membership
from approvals import services
from approvals.models import (
    ApprovalRequest,
    ApprovalSettings,
    EscalationPolicy,
    EscalationRule,
    ReviewerAvailability,
    SlackApprovalMessage,
    SlackConnection,
    SlackUserLink,
)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Approval requests are decided in the console (four-eyes, race-free); read-only here."""

    list_display = [
        "created_at",
        "tenant",
        "action",
        "subject_repr",
        "priority",
        "status",
        "requested_by_label",
        "assigned_to",
        "decided_by",
        "sla_due",
        "breached_at",
        "escalation_level",
    ]
    list_filter = ["tenant", "status", "priority", "action"]
    search_fields = ["action", "subject_repr", "subject_id", "reason", "comment", "scope"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ApprovalRequest._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _Audited:
    """Configuration edits leave an audit event in the tenant's chain."""

    audit_action = "approval.settings_changed"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit.record(
            tenant=obj.tenant,
            actor=request.user,
            action=self.audit_action,
            target_type=obj._meta.model_name,
            target_id=obj.pk,
            target_repr=str(obj),
            changes={name: str(form.cleaned_data.get(name)) for name in form.changed_data},
        )


class TenantMemberForm(forms.ModelForm):
    """The reviewer must belong to the tenant (uniqueness: TenantUniqueValidation)."""

    def clean(self):
        data = super().clean()
        tenant, user = data.get("tenant"), data.get("user")
        if tenant and user and not Membership.objects.filter(user=user, tenant=tenant).exists():
            self.add_error("user", "Not a member of this tenant.")
        return data


@admin.register(ApprovalSettings)
class ApprovalSettingsAdmin(_Audited, UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["tenant", "sla_hours", "expiry_factor"]
    list_filter = ["tenant"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        original_clean = form.clean

        def clean(self):
            data = original_clean(self)
            hours = data.get("sla_hours")
            if not isinstance(hours, dict) or any(
                not isinstance(v, int | float) or v <= 0 for v in hours.values()
            ):
                raise ValidationError(
                    {"sla_hours": 'A JSON object of positive hours: {"high": 4}.'}
                )
            unknown = set(hours) - set(ApprovalRequest.Priority.values)
            if unknown:
                raise ValidationError({"sla_hours": f"Unknown priorities: {sorted(unknown)}"})
            return data

        form.clean = clean
        return form


class EscalationRuleForm(forms.ModelForm):
    class Meta:
        model = EscalationRule
        fields = [
            "order",
            "priority",
            "action_pattern",
            "after_minutes",
            "target",
            "user",
            "raise_priority",
        ]

    def clean(self):
        data = super().clean()
        if data.get("target") == EscalationRule.Target.USER and not data.get("user"):
            self.add_error("user", "Name the reviewer this step goes to.")
        return data


class EscalationRuleFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        tenant = getattr(self.instance, "tenant", None)
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            user = data.get("user")
            if data.get("DELETE") or user is None or tenant is None:
                continue
            if not Membership.objects.filter(
                user=user, tenant=tenant, role__in=sorted(services.DECIDER_ROLES)
            ).exists():
                form.add_error("user", "Not a reviewer or admin of this tenant.")

    def save_new(self, form, commit=True):
        form.instance.tenant = self.instance.tenant
        return super().save_new(form, commit=commit)

    def save_existing(self, form, obj, commit=True):
        obj.tenant = self.instance.tenant
        return super().save_existing(form, obj, commit=commit)


class EscalationRuleInline(admin.TabularInline):
    model = EscalationRule
    form = EscalationRuleForm
    formset = EscalationRuleFormSet
    extra = 1
    autocomplete_fields = ["user"]

    def get_queryset(self, request):
        return EscalationRule.objects.unscoped("django admin").select_related("user")


@admin.register(EscalationRule)
class EscalationRuleAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """The rules of every policy at a glance; edit them on their policy's page."""

    list_display = ["policy", "tenant", "order", "priority", "action_pattern", "after_minutes"]
    list_filter = ["tenant", "target", "priority"]
    readonly_fields = [f.name for f in EscalationRule._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(_Audited, UnscopedAdminMixin, admin.ModelAdmin):
    """A tenant's escalation chain. Rules apply in order: the n-th matching rule is level n."""

    audit_action = "approval.policy_changed"
    list_display = ["name", "tenant", "is_active"]
    list_filter = ["tenant", "is_active"]
    inlines = [EscalationRuleInline]


@admin.register(ReviewerAvailability)
class ReviewerAvailabilityAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["user", "tenant", "is_away", "away_until", "updated_at"]
    list_filter = ["tenant", "is_away"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]
    fields = ["tenant", "user", "is_away", "away_until"]
    form = TenantMemberForm

    def save_model(self, request, obj, form, change):
        # Through the service (audited).
        saved = services.set_availability(
            tenant=obj.tenant,
            user=obj.user,
            actor=request.user,
            away=obj.is_away,
            away_until=obj.away_until,
        )
        obj.pk = saved.pk


# --------------------------------------------------------------------------- Slack


class SlackConnectionForm(forms.ModelForm):
    """Secrets are write-only: left blank on edit, the stored value is kept."""

    bot_token = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    signing_secret = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))

    class Meta:
        model = SlackConnection
        fields = [
            "tenant",
            "team_id",
            "channel_id",
            "bot_token",
            "signing_secret",
            "post_approvals",
            "is_active",
        ]

    def clean(self):
        data = super().clean()
        for name in ("bot_token", "signing_secret"):
            if not data.get(name):
                if not getattr(self.instance, name, ""):
                    self.add_error(name, "Required.")
                else:
                    data[name] = getattr(self.instance, name)
        return data


@admin.register(SlackConnection)
class SlackConnectionAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    form = SlackConnectionForm
    list_display = ["tenant", "team_id", "channel_id", "post_approvals", "is_active"]


@admin.register(SlackUserLink)
class SlackUserLinkAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = ["slack_user_id", "user", "tenant", "created_at"]
    list_filter = ["tenant"]
    search_fields = ["slack_user_id", "user__username"]
    raw_id_fields = ["user"]


@admin.register(SlackApprovalMessage)
class SlackApprovalMessageAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Where each approval request was posted in Slack (written by approvals.slack only)."""

    list_display = ["request", "channel_id", "ts", "tenant", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
