from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.chat_home, name="home"),
    path("new/", views.conversation_new, name="new"),
    path("<int:pk>/", views.conversation_detail, name="conversation"),
    path("<int:pk>/send/", views.message_send, name="send"),
    path("<int:pk>/messages/<int:mid>/stream/", views.message_stream, name="stream"),
    path("<int:pk>/ticket/", views.ticket_open, name="ticket"),
    path("<int:pk>/progress/", views.ticket_progress, name="progress"),
]
