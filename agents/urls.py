from django.urls import path

from agents import views

app_name = "agents"

urlpatterns = [
    path("", views.run_list, name="run-list"),
    path("<str:run_id>/", views.run_detail, name="run-detail"),
    path("<str:run_id>/timeline", views.run_timeline, name="run-timeline"),
    path("<str:run_id>/cancel", views.run_cancel, name="run-cancel"),
]
