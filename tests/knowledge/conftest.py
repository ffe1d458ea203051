"""Fixtures for the knowledge tests: ingest with indexing run inline (as the worker would)."""

from __future__ import annotations

import pytest


@pytest.fixture
def ingest(django_capture_on_commit_callbacks):
    """``ingest(tenant, title, content, **kw)`` → the document, indexed (the on-commit task ran)."""
    from knowledge import services

    def _ingest(tenant, title, content, *, kind="runbook", **kw):
        with django_capture_on_commit_callbacks(execute=True):
            doc = services.ingest_text(tenant=tenant, kind=kind, title=title, content=content, **kw)
        doc.refresh_from_db()
        return doc

    return _ingest
