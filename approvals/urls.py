from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="index"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/decide", views.decide, name="decide"),
    path("availability", views.availability, name="availability"),
]
