"""Console forms. They validate input shape; the services validate and write."""

from __future__ import annotations

from django import forms

from incidents import taxonomy
from incidents.models import (
    COMMENT_MAX,
    DESCRIPTION_MAX,
    TITLE_MAX,
    Category,
    Kind,
    Priority,
    Severity,
    Status,
)
from incidents.selectors import SORTS

BLANK = [("", "Any")]


class QueueFilterForm(forms.Form):
    """The ticket list's filters. Its category choices are the tenant's own taxonomy
    (``incidents.taxonomy``), read only when the select is drawn or a category is asked for
    (the htmx results partial without a category filter costs no query for them)."""

    q = forms.CharField(required=False, max_length=200)
    status = forms.ChoiceField(
        required=False, choices=[*BLANK, ("open", "Open (any)"), *Status.choices]
    )
    priority = forms.ChoiceField(required=False, choices=BLANK + Priority.choices)
    kind = forms.ChoiceField(required=False, choices=BLANK + Kind.choices)
    category = forms.ChoiceField(required=False, choices=BLANK)  # the tenant's, in __init__
    assignee = forms.CharField(required=False, max_length=20)
    queue = forms.CharField(required=False, max_length=100)
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("newest", "Newest first"),
            ("oldest", "Oldest first"),
            ("priority", "Priority"),
            ("sla", "SLA due"),
            ("updated", "Recently updated"),
            ("number", "Number"),
            ("relevance", "Relevance (search)"),
        ],
    )

    def __init__(self, *args, tenant, staff_choices=(), queue_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        # A callable: evaluated lazily, each time the choices are read.
        self.fields["category"].choices = lambda: taxonomy.filter_choices_for(tenant)
        self.staff_choices = [("", "Anyone"), ("me", "Me"), ("none", "Unassigned"), *staff_choices]
        self.queue_choices = (
            [("", "Any"), ("none", "No queue"), *queue_choices] if queue_choices else []
        )

    def clean_queue(self):
        value = self.cleaned_data["queue"]
        if value and value not in {c[0] for c in self.queue_choices}:
            raise forms.ValidationError("Unknown queue.")
        return value

    def clean_assignee(self):
        value = self.cleaned_data["assignee"]
        if value and value not in {c[0] for c in self.staff_choices}:
            raise forms.ValidationError("Unknown assignee.")
        return value

    def clean_sort(self):
        value = self.cleaned_data["sort"] or "newest"
        if value != "relevance" and value not in SORTS:
            return "newest"
        return value


class TicketForm(forms.Form):
    """Create a ticket. Staff see every field; requesters see the self-service subset."""

    STAFF_ONLY = (
        "kind",
        "severity",
        "affected_services",
        "detected_by",
        "requester_email",
        "assignee",
    )

    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.REQUEST)
    title = forms.CharField(max_length=TITLE_MAX)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}), max_length=DESCRIPTION_MAX, required=False
    )
    category = forms.ChoiceField(
        choices=[("", "Let the service desk decide"), *Category.choices], required=False
    )
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.MEDIUM)
    severity = forms.ChoiceField(choices=[("", "—"), *Severity.choices], required=False)
    affected_services = forms.CharField(
        required=False, max_length=1000, help_text="Comma-separated, e.g. VPN, SSO"
    )
    detected_by = forms.CharField(required=False, max_length=100)
    requester_email = forms.EmailField(
        required=False, help_text="Leave empty to open it on your own behalf."
    )
    assignee = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)

    def __init__(self, *args, staff: bool, staff_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.staff = staff
        if staff:
            self.fields["assignee"].choices = [("", "Unassigned"), *staff_choices]
        else:
            for name in self.STAFF_ONLY:
                del self.fields[name]
            self.fields["priority"].label = "Urgency"

    def clean(self):
        data = super().clean()
        if self.staff and data.get("kind") == Kind.INCIDENT and not data.get("severity"):
            self.add_error("severity", "An incident needs a severity.")
        return data


class CommentForm(forms.Form):
    body = forms.CharField(
        label="Reply", widget=forms.Textarea(attrs={"rows": 3}), max_length=COMMENT_MAX
    )
    is_internal = forms.BooleanField(required=False, label="Internal note (staff only)")


class TransitionForm(forms.Form):
    status = forms.ChoiceField(choices=Status.choices)
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=DESCRIPTION_MAX
    )


class AssignForm(forms.Form):
    assignee = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)

    def __init__(self, *args, staff_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [("", "Unassigned"), *staff_choices]


class BulkForm(forms.Form):
    ACTIONS = [
        ("assign_me", "Assign to me"),
        ("unassign", "Unassign"),
        ("in_progress", "Mark in progress"),
        ("on_hold", "Put on hold"),
        ("cancelled", "Cancel"),
    ]
    action = forms.ChoiceField(choices=ACTIONS)
    numbers = forms.MultipleChoiceField(
        choices=(), error_messages={"required": "Select at least one ticket."}
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any submitted number passes shape validation; the gate decides which are real.
        self.fields["numbers"].choices = (
            [(n, n) for n in self.data.getlist("numbers")[:200]] if self.data else []
        )


class QueueCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(max_length=100, required=False, help_text="Leave empty to derive it.")
    description = forms.CharField(max_length=500, required=False)
    categories = forms.MultipleChoiceField(
        choices=Category.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Tickets triaged into these categories are routed here.",
    )


class AccessForm(forms.Form):
    """Grant or revoke one member's view/work access to a queue or a ticket."""

    action = forms.ChoiceField(choices=[("grant", "Grant"), ("revoke", "Revoke")])
    user = forms.TypedChoiceField(coerce=int, label="Member")
    level = forms.ChoiceField(
        choices=[("view", "View"), ("work", "Work")], initial="view", label="Access"
    )

    def __init__(self, *args, members=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].choices = [(str(pk), name) for pk, name, _role in members]


class CsatForm(forms.Form):
    """The requester's rating of a resolved ticket (range checked again by the service)."""

    score = forms.TypedChoiceField(
        choices=[(str(n), str(n)) for n in range(1, 6)],
        coerce=int,
        widget=forms.RadioSelect,
        label="How satisfied are you with the resolution? (1 = not at all, 5 = very)",
    )
    comment = forms.CharField(
        max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
