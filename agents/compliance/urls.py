from django.urls import path

from agents.compliance import views

app_name = "compliance"

urlpatterns = [
    path("", views.report_page, name="report"),
    path("report.csv", views.report_csv, name="report-csv"),
    path("report.pdf", views.report_pdf, name="report-pdf"),
    path("runs", views.report_start, name="report-start"),
    path("runs/<str:run_id>/", views.run_report, name="run-report"),
]
