"""A URL conf with one view that fails, for the tests of the 500 page."""

from django.urls import include, path


def boom(request):
    raise RuntimeError("an unexpected failure with a secret traceback")


urlpatterns = [path("boom", boom), path("", include("agentops.urls"))]
