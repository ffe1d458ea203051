from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from agentops import usage_views, views
from agentops.api import api
from agents.api import blueprints_router, runs_router
from agents.rca.api import router as rca_router
from agents.telemetry.api import otlp_router
from agents.telemetry.api import router as agent_runs_router
from approvals.api import router as approvals_router
from approvals.api import slack_router
from incidents.analytics import views as analytics_views
from incidents.analytics.api import router as analytics_router
from incidents.api import queues_router
from incidents.api import router as tickets_router
from incidents.intake.api import router as webhooks_router
from incidents.investigation_api import router as investigations_router

api.add_router("/tickets", tickets_router)
api.add_router("/queues", queues_router)
api.add_router("/blueprints", blueprints_router)
api.add_router("/runs", runs_router)
api.add_router("/investigations", investigations_router)
api.add_router("/agent-runs", agent_runs_router)
api.add_router("/rca-runs", rca_router)
api.add_router("/webhooks", webhooks_router)
api.add_router("/approvals", approvals_router)
api.add_router("/slack", slack_router)
api.add_router("/tenant", usage_views.router)
api.add_router("/analytics", analytics_router)
api.add_router("/otlp", otlp_router)

urlpatterns = [
    path("", analytics_views.home, name="home"),
    path("dashboard/", include("incidents.analytics.urls")),
    path("my-work/", analytics_views.my_work, name="my-work"),
    path("portal/", include("incidents.portal.urls")),
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
    path("usage/", include("agentops.usage_views")),
    path("platform/", include("agentops.platform_views")),
    path("compliance/", include("agents.compliance.urls")),
    path("api/v1/", api.urls),
    path("chat/", include("chat.urls")),
    path("admin/", admin.site.urls),
]
