from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from agentops import views
from agentops.api import api
from agents.rca.api import router as rca_router
from agents.telemetry.api import otlp_router
from agents.telemetry.api import router as agent_runs_router
from incidents.api import queues_router
from incidents.api import router as tickets_router

api.add_router("/tickets", tickets_router)
api.add_router("/queues", queues_router)
api.add_router("/agent-runs", agent_runs_router)
api.add_router("/rca-runs", rca_router)
api.add_router("/otlp", otlp_router)

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("workspace/switch", views.switch_tenant, name="switch-tenant"),
    path("tickets/", include("incidents.urls")),
    path("queues/", include("incidents.queue_urls")),
    path("sandbox/", include("agents.connectors.sandbox.urls")),
    path("runs/", include("agents.urls")),
    path("approvals/", include("approvals.urls")),
    path("knowledge/", include("knowledge.urls")),
    path("audit/", include("agentops.audit_views")),
    path("notifications/", include("agentops.notification_views")),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
