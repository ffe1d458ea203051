from django.urls import path

from incidents import (
    confirm_views,
    incident_views,
    investigation_views,
    learning_views,
    queue_views,
    views,
)

app_name = "incidents"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("new", views.ticket_create, name="ticket-create"),
    path("generate-incident", incident_views.incident_generate, name="incident-generate"),
    path("bulk", views.bulk, name="bulk"),
    path("investigations/", investigation_views.investigations, name="investigations"),
    path(
        "investigations/<str:run_id>/report",
        investigation_views.investigation_report,
        name="investigation-report",
    ),
    path("<str:number>/", views.ticket_detail, name="ticket-detail"),
    path("<str:number>/comment", views.ticket_comment, name="ticket-comment"),
    path("<str:number>/transition", views.ticket_transition, name="ticket-transition"),
    path("<str:number>/assign", views.ticket_assign, name="ticket-assign"),
    path("<str:number>/resolve", views.ticket_resolve, name="ticket-resolve"),
    path("<str:number>/csat", learning_views.ticket_rate, name="ticket-rate"),
    path("<str:number>/confirm", confirm_views.ticket_confirm, name="ticket-confirm"),
    path("<str:number>/similar", learning_views.ticket_similar, name="ticket-similar"),
    path("<str:number>/queue", queue_views.ticket_set_queue, name="ticket-set-queue"),
    path("<str:number>/access", queue_views.ticket_access, name="ticket-access"),
    path("<str:number>/pages/<int:page_id>/ack", views.page_acknowledge, name="page-acknowledge"),
]
