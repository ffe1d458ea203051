from django.urls import path

from incidents import views

app_name = "incidents"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("new", views.ticket_create, name="ticket-create"),
    path("bulk", views.bulk, name="bulk"),
    path("<str:number>/", views.ticket_detail, name="ticket-detail"),
    path("<str:number>/comment", views.ticket_comment, name="ticket-comment"),
    path("<str:number>/transition", views.ticket_transition, name="ticket-transition"),
    path("<str:number>/assign", views.ticket_assign, name="ticket-assign"),
    path("<str:number>/resolve", views.ticket_resolve, name="ticket-resolve"),
]
