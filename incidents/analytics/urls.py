from django.urls import path

from incidents.analytics import views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("<slug:chart>.csv", views.chart_csv, name="chart-csv"),
]
