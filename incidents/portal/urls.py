from django.urls import path

from incidents.portal import views

app_name = "portal"

urlpatterns = [
    path("", views.portal, name="home"),
    path("request/<slug:slug>/", views.catalogue_request, name="request"),
    path("notifications/", views.preferences, name="preferences"),
]
