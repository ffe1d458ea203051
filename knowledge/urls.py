from django.urls import path

from knowledge import draft_views, views

app_name = "knowledge"

urlpatterns = [
    path("", views.source_list, name="source-list"),
    path("new", views.source_create, name="source-create"),
    path("search/", views.search, name="search"),
    path("suggest/", views.suggest, name="suggest"),
    path("<int:source_id>/", views.source_detail, name="source-detail"),
    path("<int:source_id>/edit", views.source_edit, name="source-edit"),
    path("drafts/", draft_views.draft_list, name="draft-list"),
    path("drafts/<int:draft_id>/", draft_views.draft_detail, name="draft-detail"),
]
