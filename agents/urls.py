from django.urls import path

from agents import views
from agents.rca import views as rca_views

app_name = "agents"

urlpatterns = [
    path("", views.run_list, name="run-list"),
    # "-" cannot start a run id, so this page never hides a run.
    path("-/metrics", views.run_metrics, name="run-metrics"),
    path("<str:run_id>/", views.run_detail, name="run-detail"),
    path("<str:run_id>/timeline", views.run_timeline, name="run-timeline"),
    path("<str:run_id>/cancel", views.run_cancel, name="run-cancel"),
    path("<str:run_id>/rca", rca_views.rca_panel, name="rca-panel"),
    path("<str:run_id>/rca/start", rca_views.rca_start, name="rca-start"),
    path("<str:rca_run_id>/rca/judge", rca_views.rca_judge, name="rca-judge"),
]
