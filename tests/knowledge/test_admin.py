"""The knowledge models in the Django admin."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.urls import reverse

from knowledge.models import Chunk, Document, Source


def test_admin_pages_and_reindex_action(
    personas, ingest, client, django_capture_on_commit_callbacks
):
    doc = ingest(personas.tenant, "VPN", "# VPN\n\nRun push_vpn_config.")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    for model in (Source, Document, Chunk):
        name = model._meta.model_name
        assert client.get(reverse(f"admin:knowledge_{name}_changelist")).status_code == 200
    assert (
        client.get(reverse("admin:knowledge_source_change", args=[doc.source_id])).status_code
        == 200
    )
    chunk = Chunk.objects.for_tenant(personas.tenant).first()
    assert client.get(reverse("admin:knowledge_chunk_change", args=[chunk.pk])).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:knowledge_source_changelist"),
            {"action": "reindex", "_selected_action": [doc.source_id]},
        )
    assert response.status_code == 302
    doc.refresh_from_db()
    assert doc.status == "ready"
    assert Chunk.objects.for_tenant(personas.tenant).exclude(pk=chunk.pk).count() == 1  # new rows
