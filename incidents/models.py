"""Tickets (service requests and incidents) and their comments."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Case, F, Value, When
from django.utils import timezone
from guardian.managers import GroupObjectPermissionManager, UserObjectPermissionManager
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from agentops.tenancy import TenantOwned

TITLE_MAX = 200
DESCRIPTION_MAX = 20_000
COMMENT_MAX = 10_000
CATEGORY_MAX = 100


class Kind(models.TextChoices):
    REQUEST = "request", "Service request"
    INCIDENT = "incident", "Incident"


KIND_PREFIX = {Kind.REQUEST: "REQ", Kind.INCIDENT: "INC"}


class Status(models.TextChoices):
    NEW = "new", "New"
    TRIAGED = "triaged", "Triaged"
    IN_PROGRESS = "in_progress", "In progress"
    ON_HOLD = "on_hold", "On hold"
    ESCALATED = "escalated", "Escalated"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"
    CANCELLED = "cancelled", "Cancelled"


# Allowed status transitions: the only way a status changes (incidents.services.ticket_transition).
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset(
        {
            Status.TRIAGED,
            Status.IN_PROGRESS,
            Status.ON_HOLD,
            Status.ESCALATED,
            Status.RESOLVED,
            Status.CANCELLED,
        }
    ),
    Status.TRIAGED: frozenset(
        {Status.IN_PROGRESS, Status.ON_HOLD, Status.ESCALATED, Status.RESOLVED, Status.CANCELLED}
    ),
    Status.IN_PROGRESS: frozenset(
        {Status.ON_HOLD, Status.ESCALATED, Status.RESOLVED, Status.CANCELLED}
    ),
    Status.ON_HOLD: frozenset(
        {Status.IN_PROGRESS, Status.ESCALATED, Status.RESOLVED, Status.CANCELLED}
    ),
    Status.ESCALATED: frozenset(
        {Status.IN_PROGRESS, Status.ON_HOLD, Status.RESOLVED, Status.CANCELLED}
    ),
    Status.RESOLVED: frozenset({Status.CLOSED, Status.IN_PROGRESS}),
    Status.CLOSED: frozenset(),
    Status.CANCELLED: frozenset(),
}
OPEN_STATUSES = frozenset(
    {Status.NEW, Status.TRIAGED, Status.IN_PROGRESS, Status.ON_HOLD, Status.ESCALATED}
)


class Priority(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


PRIORITY_RANK = {Priority.CRITICAL: 1, Priority.HIGH: 2, Priority.MEDIUM: 3, Priority.LOW: 4}


class Severity(models.TextChoices):
    SEV1 = "sev1", "SEV1 – critical outage"
    SEV2 = "sev2", "SEV2 – major degradation"
    SEV3 = "sev3", "SEV3 – minor impact"
    SEV4 = "sev4", "SEV4 – cosmetic / no impact"


class Category(models.TextChoices):
    ACCESS = "access", "Access & accounts"
    NETWORK = "network", "Network & VPN"
    HARDWARE = "hardware", "Hardware"
    SOFTWARE = "software", "Software"
    EMAIL = "email", "E-mail & collaboration"
    SECURITY = "security", "Security"
    INFRASTRUCTURE = "infrastructure", "Infrastructure & cloud"
    APPLICATION = "application", "Business applications"
    OTHER = "other", "Other"


class Source(models.TextChoices):
    CONSOLE = "console", "Console"
    PORTAL = "portal", "Self-service portal"
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    CHAT = "chat", "Chat"
    EMAIL = "email", "E-mail"
    MONITORING = "monitoring", "Monitoring"


class Queue(TenantOwned):
    """An assignment group ("Service Desk", "Network", "Identity & Access"): where a ticket waits.

    Permissions inherit tenant -> queue -> ticket: a guardian permission on a queue reaches
    every ticket in it (see ``incidents.selectors``).
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100)
    description = models.CharField(max_length=500, blank=True)
    # Categories routed here when triage sets one ("network", "access" ...); empty: none.
    categories = ArrayField(models.CharField(max_length=CATEGORY_MAX), default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "slug"], name="queue_unique_slug"),
        ]
        ordering = ["name"]
        permissions = [("work_queue", "Work tickets in this queue")]

    def __str__(self) -> str:
        return self.name


class Ticket(TenantOwned):
    """A service request or an incident, numbered per tenant (REQ0000123 / INC0000123)."""

    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REQUEST)
    number = models.CharField(max_length=16)
    title = models.CharField(max_length=TITLE_MAX)
    description = models.TextField(max_length=DESCRIPTION_MAX, blank=True)
    requester_email = models.EmailField()
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="requested_tickets",
    )
    # A value of the tenant's own taxonomy (``TicketCategory.value``, see incidents.taxonomy);
    # the nine ``Category`` values are only the taxonomy every tenant starts with.
    category = models.CharField(max_length=CATEGORY_MAX, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    priority_rank = models.GeneratedField(
        expression=Case(
            *(When(priority=value, then=Value(rank)) for value, rank in PRIORITY_RANK.items()),
            default=Value(9),
        ),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )
    severity = models.CharField(max_length=10, choices=Severity.choices, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    affected_services = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    detected_by = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.CONSOLE)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_tickets",
    )
    queue = models.ForeignKey(
        Queue, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    sla_due = models.DateTimeField(null=True, blank=True)
    sla_breached = models.BooleanField(default=False)
    # Customer satisfaction, asked of the requester once the ticket is resolved (1-5).
    csat_score = models.PositiveSmallIntegerField(null=True, blank=True)
    csat_comment = models.CharField(max_length=1000, blank=True)
    csat_at = models.DateTimeField(null=True, blank=True)
    resolution_notes = models.TextField(max_length=DESCRIPTION_MAX, blank=True)
    # Written by the triage agent (incidents.pipeline).
    triage_decision = models.CharField(
        max_length=20,
        blank=True,
        choices=[
            ("auto_resolve", "Agent resolves"),
            ("human", "Needs a person"),
            ("answer", "Agent answers from the knowledge base"),
            ("redirect", "Not IT: redirected"),
            ("incident", "Shared fault: an incident"),
        ],
    )
    triage_confidence = models.FloatField(null=True, blank=True)
    suggested_path = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Maintained by a database trigger (see migration) from number, title and description.
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="ticket_unique_number"),
            models.CheckConstraint(
                condition=models.Q(csat_score__isnull=True)
                | models.Q(csat_score__gte=1, csat_score__lte=5),
                name="ticket_csat_range",
            ),
        ]
        # Every queue filter is served by an index, and each page's COUNT(*) by an index-only
        # scan or a small bitmap (tests/bench measures them at 100k tickets). PostgreSQL 18's
        # skip scan lets (tenant, status, priority_rank) also answer a priority-only filter.
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="ticket_queue_idx"),
            models.Index(
                fields=["tenant", "status", "priority_rank", "-created_at"],
                name="ticket_status_prio_idx",
            ),
            models.Index(fields=["tenant", "priority_rank", "-created_at"], name="ticket_prio_idx"),
            models.Index(fields=["tenant", "sla_due"], name="ticket_sla_idx"),
            models.Index(fields=["tenant", "-updated_at", "-id"], name="ticket_updated_idx"),
            models.Index(fields=["tenant", "kind", "-created_at"], name="ticket_kind_idx"),
            models.Index(
                fields=["tenant", "assignee", "status", "-created_at"],
                name="ticket_assignee_status_idx",
            ),
            models.Index(
                fields=["tenant", "requester", "-created_at"], name="ticket_requester_idx"
            ),
            # Tickets addressed to an e-mail with no user attached (TicketGrants.addressed):
            # partial, so a requester's own tickets (requester set) are not in it.
            models.Index(
                fields=["tenant", "requester_email"],
                condition=models.Q(requester__isnull=True),
                name="ticket_addressed_idx",
            ),
            models.Index(fields=["tenant", "category", "-created_at"], name="ticket_category_idx"),
            GinIndex(fields=["search_vector"], name="ticket_search_idx"),
            models.Index(fields=["tenant", "queue", "-created_at"], name="ticket_queue_fk_idx"),
            # Open tickets per queue (/queues/) and a queue's status filter: index-only.
            models.Index(fields=["tenant", "status", "queue"], name="ticket_status_queue_idx"),
            # The analytics rollups read one day of resolutions and of ratings at a time.
            models.Index(fields=["tenant", "resolved_at"], name="ticket_resolved_idx"),
            models.Index(fields=["tenant", "csat_at"], name="ticket_csat_idx"),
            # "My work": an agent's open tickets by SLA due, read in order (no sort of the
            # ~100k open tickets one agent holds at 1M); partial, so closed tickets cost nothing.
            models.Index(
                fields=["tenant", "assignee", "sla_due", "-created_at"],
                condition=models.Q(status__in=sorted(OPEN_STATUSES)),
                name="ticket_mine_open_idx",
            ),
            # Open tickets by priority, newest first: ?status=open&priority=... (with or
            # without a search: its matches are read in this order, see
            # selectors.count_matches) walks only open tickets; ?status=open&sort=priority
            # reads its page index-only.
            models.Index(
                F("tenant"),
                F("priority_rank"),
                F("created_at").desc(),
                F("id").desc(),
                condition=models.Q(status__in=sorted(OPEN_STATUSES)),
                name="ticket_open_prio_idx",
            ),
            # Open tickets by SLA due, in the queue's sla order (nulls last, newest id first):
            # ?status=open&sort=sla reads its rows, and its deep pages skip ids, in index order.
            models.Index(
                F("tenant"),
                F("sla_due").asc(nulls_last=True),
                F("id").desc(),
                condition=models.Q(status__in=sorted(OPEN_STATUSES)),
                name="ticket_open_sla_idx",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def get_category_display(self) -> str:
        """The category's name in the tenant's taxonomy ("Network & VPN"), or its value."""
        from incidents.taxonomy import label_for

        return label_for(self.tenant_id, self.category) if self.category else ""

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def allowed_transitions(self) -> list[str]:
        return [s for s in Status.values if s in TRANSITIONS[self.status]]

    @property
    def sla_state(self) -> str:
        """'breached', 'at_risk' (under 25% of the window left), 'ok', 'met' or 'none'."""
        if self.sla_due is None:
            return "none"
        if not self.is_open:
            done = self.resolved_at or self.closed_at
            return "met" if done and done <= self.sla_due else ("breached" if done else "none")
        now = timezone.now()
        if now >= self.sla_due:
            return "breached"
        window = (self.sla_due - self.created_at).total_seconds() or 1
        return "at_risk" if (self.sla_due - now).total_seconds() < 0.25 * window else "ok"


class Comment(TenantOwned):
    """A reply on a ticket. Internal notes are visible to staff only, never to the requester."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=150)
    body = models.TextField(max_length=COMMENT_MAX)
    is_internal = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["ticket", "created_at"], name="comment_ticket_idx")]

    def __str__(self) -> str:
        return f"{self.author_label} on {self.ticket_id}: {self.body[:40]}"


class _RowByRowBulkCreate:
    """guardian's bulk shortcuts (assign_perm on a queryset, assign_perm_to_many) call
    bulk_create, which sends no post_save: create the rows one by one instead, so the audit
    receivers (incidents.signals) see every grant. Grants are few; the cost does not matter."""

    def bulk_create(self, objs, batch_size=None, ignore_conflicts=False, **kwargs):
        from django.db import transaction

        created = []
        field = self.user_or_group_field
        with transaction.atomic():
            for obj in objs:
                row, _ = self.get_or_create(
                    **{field: getattr(obj, field)},
                    permission=obj.permission,
                    content_object=obj.content_object,
                )
                created.append(row)
        return created


class AuditedUserObjectPermissionManager(_RowByRowBulkCreate, UserObjectPermissionManager):
    pass


class AuditedGroupObjectPermissionManager(_RowByRowBulkCreate, GroupObjectPermissionManager):
    pass


class TicketUserObjectPermission(UserObjectPermissionBase):
    """guardian: a permission on one ticket granted to one user (direct foreign key, fast joins)."""

    content_object = models.ForeignKey(Ticket, on_delete=models.CASCADE)

    objects = AuditedUserObjectPermissionManager()


class TicketGroupObjectPermission(GroupObjectPermissionBase):
    """guardian: a permission on one ticket granted to a group."""

    content_object = models.ForeignKey(Ticket, on_delete=models.CASCADE)

    objects = AuditedGroupObjectPermissionManager()


class QueueUserObjectPermission(UserObjectPermissionBase):
    """guardian: a permission on one queue granted to one user (inherited by its tickets)."""

    content_object = models.ForeignKey(Queue, on_delete=models.CASCADE)

    objects = AuditedUserObjectPermissionManager()


class QueueGroupObjectPermission(GroupObjectPermissionBase):
    """guardian: a permission on one queue granted to a group (inherited by its tickets)."""

    content_object = models.ForeignKey(Queue, on_delete=models.CASCADE)

    objects = AuditedGroupObjectPermissionManager()


# Inbound webhooks (incidents.intake) keep their tables in this app.
# Analytics rollups (incidents.analytics): a package of this app, imported so Django sees them.
from incidents.analytics.models import DailyAgentStat, DailyApprovalStat, DailyTicketStat  # noqa: E402, F401
from incidents.intake.models import (  # noqa: E402
    WebhookDelivery as WebhookDelivery,
)
from incidents.intake.models import (  # noqa: E402
    WebhookEndpoint as WebhookEndpoint,
)
from incidents.intake.models import (  # noqa: E402
    WebhookLink as WebhookLink,
)


class OnCallShift(TenantOwned):
    """One person on call for the tenant from ``starts_at`` until ``ends_at`` (admin edited).
    Overlapping shifts are allowed; the one that started last wins."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "starts_at", "ends_at"], name="oncall_window")]
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="oncall_ends_after"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%H:%M}"


class Page(TenantOwned):
    """A page sent to the on-call person about an incident, until they acknowledge it."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="pages")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["ticket", "user"], name="page_once_per_ticket_user")
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"page {self.user} for {self.ticket_id}"


class ReplyKind(models.TextChoices):
    ANSWER = "answer", "Answer from the knowledge base"
    REDIRECT = "redirect", "Redirected to another team"
    FINDING = "finding", "What the agent found"
    INCIDENT = "incident", "Part of an incident"
    RESOLVED = "resolved", "Resolution"
    ESCALATED = "escalated", "Handed to a person"


class ReplyState(models.TextChoices):
    INFO = "info", "For information"
    AWAITING = "awaiting", "Waiting for the requester"
    CONFIRMED = "confirmed", "Requester confirmed it solved it"
    REJECTED = "rejected", "Requester said it did not solve it"
    EXPIRED = "expired", "No reply: closed"


class AgentReply(TenantOwned):
    """What the service-desk agent told the requester (issue 13), and, for an answer, whether
    it solved it: the requester confirms, rejects, or does not reply before ``due_at``.

    The words themselves are also a public comment on the ticket; this row keeps the kind, the
    citations, the team or incident it points to and the confirmation state.
    """

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="agent_replies")
    kind = models.CharField(max_length=12, choices=ReplyKind.choices)
    state = models.CharField(max_length=12, choices=ReplyState.choices, default=ReplyState.INFO)
    body = models.TextField(max_length=COMMENT_MAX)
    citations = models.JSONField(default=list, blank=True)
    team = models.CharField(max_length=100, blank=True)
    incident = models.ForeignKey(
        Ticket, null=True, blank=True, on_delete=models.SET_NULL, related_name="linked_requests"
    )
    run_id = models.CharField(max_length=64, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["tenant", "state", "due_at"], name="agentreply_due_idx"),
            models.Index(fields=["ticket", "created_at"], name="agentreply_ticket_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.ticket_id}"


class NonItTeam(TenantOwned):
    """A team outside IT that requests are redirected to (facilities, payroll, finance …).

    A tenant with none of its own gets ``incidents.replies.DEFAULT_TEAMS``.
    """

    name = models.CharField(max_length=100)
    contact = models.CharField(max_length=200, blank=True, help_text="Where to reach them.")
    keywords = ArrayField(
        models.CharField(max_length=40),
        default=list,
        blank=True,
        help_text="Words in a request that belong to this team (lower case).",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="nonitteam_unique_name"),
        ]


class TicketCategory(TenantOwned):
    """One category (or, with a parent, subcategory) of a tenant's ticket taxonomy.

    Tenants define their own in the admin; each starts with the nine ``Category`` values.
    Tickets, queues' routing and the labelled history store ``value``; people read ``name``.
    An inactive category stays on the tickets that have it but is offered no more.
    """

    value = models.CharField(max_length=CATEGORY_MAX)
    name = models.CharField(max_length=200)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    description = models.CharField(max_length=500, blank=True)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "value"], name="ticketcategory_unique_value"),
        ]
        ordering = ["position", "name", "id"]
        verbose_name_plural = "ticket categories"

    def __str__(self) -> str:
        return self.name


# Contract SLAs (business calendars, each ticket's clock): models of their own module.
from incidents.sla_models import BusinessCalendar, TicketSLA  # noqa: E402, F401
