"""/queues/: the tenant's queues, one queue's page and its Access panel."""

from django.urls import path

from incidents import queue_views

app_name = "queues"

urlpatterns = [
    path("", queue_views.queue_list, name="list"),
    path("new", queue_views.queue_create, name="create"),
    path("<slug:slug>/", queue_views.queue_detail, name="detail"),
    path("<slug:slug>/access", queue_views.queue_access, name="access"),
]
