from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from agentops.admin import UnscopedAdminMixin
from agents import blueprints
from agents.models import (
    AgentConfig,
    BlueprintSetting,
    GuardrailEvent,
    IngestSecret,
    PolicyRule,
    RcaFeedback,
    Run,
    Step,
    StepLatencyRollup,
    ToolCall,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # The formset narrows this to the parent run, which the admin loaded unscoped.
        return self.model.objects.unscoped("admin inline of one run")


class StepInline(ReadOnlyInline):
    model = Step
    fields = ["seq", "name", "status", "latency_ms", "retries", "output_summary"]
    readonly_fields = fields


class ToolCallInline(ReadOnlyInline):
    model = ToolCall
    fields = [
        "tool_name",
        "status",
        "args_json",
        "policy_verdict",
        "verified",
        "result_summary",
        "error_message",
    ]
    readonly_fields = fields


class GuardrailInline(ReadOnlyInline):
    model = GuardrailEvent
    fields = ["type", "message", "created_at"]
    readonly_fields = fields


@admin.register(Run)
class RunAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "run_id",
        "tenant",
        "agent_name",
        "subject_repr",
        "status",
        "state",
        "step_count",
        "total_cost_usd",
        "created_at",
    ]
    list_filter = ["tenant", "agent_name", "status", "origin"]
    search_fields = ["run_id", "subject_id", "subject_repr", "error_message"]
    date_hierarchy = "created_at"
    inlines = [StepInline, ToolCallInline, GuardrailInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Run._meta.fields]

    def has_add_permission(self, request):
        return False  # runs start from tickets, the API or the engine


@admin.register(AgentConfig)
class AgentConfigAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Per-tenant agent settings: model, limits, auto-start, authorised software."""

    list_display = [
        "tenant",
        "llm_backend",
        "llm_model",
        "requests_per_minute",
        "tokens_per_minute",
        "auto_resolve_on_create",
    ]
    list_filter = ["llm_backend", "auto_resolve_on_create"]


@admin.register(PolicyRule)
class PolicyRuleAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """A tenant's override of the built-in compliance policy for one action."""

    list_display = ["tenant", "action", "verdict", "reason"]
    list_filter = ["tenant", "verdict"]
    search_fields = ["action", "reason"]


class ReadOnlyAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ["run", "seq", "name", "status", "latency_ms", "retries", "started_at"]
    list_filter = ["tenant", "status", "state"]
    search_fields = ["run__run_id", "name", "output_summary"]
    list_select_related = ["tenant", "run"]


@admin.register(ToolCall)
class ToolCallAdmin(ReadOnlyAdmin):
    list_display = [
        "call_id",
        "run",
        "tool_name",
        "status",
        "policy_verdict",
        "verified",
        "latency_ms",
        "created_at",
    ]
    list_filter = ["tenant", "tool_name", "status", "policy_verdict"]
    search_fields = ["call_id", "run__run_id", "tool_name", "idempotency_key", "error_message"]
    list_select_related = ["tenant", "run"]


@admin.register(GuardrailEvent)
class GuardrailEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "run", "type", "message", "created_at"]
    list_filter = ["tenant", "type"]
    search_fields = ["event_id", "run__run_id", "message"]
    list_select_related = ["tenant", "run"]


class BlueprintSettingForm(forms.ModelForm):
    blueprint = forms.ChoiceField(choices=())

    class Meta:
        model = BlueprintSetting
        fields = ["tenant", "blueprint", "enabled", "config", "allowed_tools"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["blueprint"].choices = [
            (b.name, f"{b.title or b.name} ({b.name})") for b in blueprints.all_blueprints()
        ]
        self.fields["config"].help_text = "Overrides, as JSON. " + "; ".join(
            f"{b.name}: {b.default_config}" for b in blueprints.all_blueprints() if b.default_config
        )
        self.fields["allowed_tools"].help_text = (
            "A JSON list narrowing the declared tools (empty: all declared). "
            + "; ".join(
                f"{b.name}: {', '.join(b.tools) or 'none'}" for b in blueprints.all_blueprints()
            )
        )

    def clean(self):
        data = super().clean()
        errors = blueprints.validate_setting(
            data.get("blueprint", ""), data.get("config"), data.get("allowed_tools")
        )
        if errors:
            raise ValidationError(errors)
        return data


@admin.register(BlueprintSetting)
class BlueprintSettingAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Which blueprints a tenant has enabled, their config and their tool allow-list."""

    form = BlueprintSettingForm
    list_display = [
        "tenant",
        "blueprint",
        "enabled",
        "in_effect",
        "config",
        "allowed_tools",
        "updated_at",
    ]
    list_filter = ["tenant", "enabled", "blueprint"]
    list_select_related = ["tenant"]

    @admin.display(description="In effect")
    def in_effect(self, obj) -> str:
        """What the tenant gets: the setting, unless the tenant's tier leaves it out."""
        excluded = blueprints.registry.tier_excludes(obj.tenant, obj.blueprint)
        if excluded:
            return f"Off: {excluded}"
        return "On" if obj.enabled else "Off"

    def save_model(self, request, obj, form, change):
        # Through the service: validated again and audited.
        saved = blueprints.registry.save_setting(
            tenant=obj.tenant,
            actor=request.user,
            blueprint=obj.blueprint,
            enabled=obj.enabled,
            config=obj.config,
            allowed_tools=obj.allowed_tools,
        )
        obj.pk = saved.pk
        excluded = blueprints.registry.tier_excludes(obj.tenant, obj.blueprint)
        if obj.enabled and excluded:
            self.message_user(
                request,
                f"Saved, but {obj.blueprint} stays off for {obj.tenant}: {excluded}. "
                "Change the tier or its limits to turn it on.",
                level=messages.WARNING,
            )


class IngestSecretForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave empty to generate one (shown once). Two may be active while a sender "
        "rotates; revoke the old one afterwards.",
    )

    class Meta:
        model = IngestSecret
        fields = ["tenant", "name"]

    def clean(self):
        from agents.telemetry.secrets import MAX_ACTIVE, MIN_LENGTH

        data = super().clean()
        raw = data.get("secret") or ""
        if raw and not MIN_LENGTH <= len(raw) <= 200:
            self.add_error("secret", f"Use {MIN_LENGTH} to 200 characters.")
        tenant = data.get("tenant")
        if tenant is not None:
            active = IngestSecret.objects.for_tenant(tenant).filter(revoked_at__isnull=True)
            if active.count() >= MAX_ACTIVE:
                self.add_error(None, f"{MAX_ACTIVE} secrets are active: revoke the old one first.")
        return data


@admin.register(IngestSecret)
class IngestSecretAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Shared secrets for X-Ingest-Secret (telemetry of other agents), per tenant."""

    form = IngestSecretForm
    list_display = ["name", "tenant", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant", ("revoked_at", admin.EmptyFieldListFilter)]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "name", "created_at", "last_used_at", "revoked_at"] if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["tenant", "name", "secret"]
        return ["tenant", "name", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        from agents.telemetry.secrets import secret_create

        created, raw = secret_create(
            tenant=obj.tenant,
            name=obj.name,
            raw=form.cleaned_data.get("secret") or "",
            actor=request.user,
        )
        obj.pk = created.pk
        if not form.cleaned_data.get("secret"):
            messages.warning(request, f"The new secret (shown once): {raw}")

    @admin.action(description="Revoke selected secrets")
    def revoke(self, request, queryset):
        from agents.telemetry.secrets import secret_revoke

        for secret in queryset.filter(revoked_at__isnull=True):
            secret_revoke(secret=secret, actor=request.user)
        messages.success(request, "Revoked.")


@admin.register(RcaFeedback)
class RcaFeedbackAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """People's verdicts on RCA reports: the analyser's labelled regression cases."""

    list_display = ["target_run_id", "tenant", "category", "correct", "author", "created_at"]
    list_filter = ["tenant", "correct", "category"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(StepLatencyRollup)
class StepLatencyRollupAdmin(UnscopedAdminMixin, admin.ModelAdmin):
    """Read-only: the ingest keeps these counts (the metrics' p95 step latency)."""

    list_display = ["hour", "tenant", "agent_name", "agent_version", "bucket", "steps"]
    list_filter = ["tenant"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
