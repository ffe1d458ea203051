"""manage.py import_knowledge and the demo knowledge base."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from knowledge.models import Document, IndexStatus, Source
from knowledge.services import DEMO_KB_DIR, import_folder


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_knowledge", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_import_is_recursive_and_reimport_skips_or_updates(
    personas, tmp_path, django_capture_on_commit_callbacks
):
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "vpn.md").write_text("# VPN\n\nRun push_vpn_config.")
    (tmp_path / "policies" / "sub").mkdir(parents=True)
    (tmp_path / "policies" / "sub" / "access.html").write_text(
        "<h1>Access policy</h1><p>Least privilege.</p>"
    )
    (tmp_path / "notes.txt").write_text("Plain notes about printers.")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\x00\x00")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD.md").write_text("# ignored")

    with django_capture_on_commit_callbacks(execute=True):
        out, err = run(str(tmp_path), "--tenant", "acme")
    assert "3 created, 0 updated, 0 unchanged, 1 refused" in out and "logo.png" in err
    sources = {s.external_key: s for s in Source.objects.for_tenant(personas.tenant)}
    assert set(sources) == {"runbooks/vpn.md", "policies/sub/access.html", "notes.txt"}
    assert (
        sources["runbooks/vpn.md"].kind == "runbook" and sources["runbooks/vpn.md"].title == "VPN"
    )
    assert sources["policies/sub/access.html"].kind == "policy"
    assert sources["policies/sub/access.html"].title == "Access policy"
    assert sources["notes.txt"].title == "Notes"
    assert set(Document.objects.for_tenant(personas.tenant).values_list("status", flat=True)) == {
        IndexStatus.READY
    }

    (tmp_path / "runbooks" / "vpn.md").write_text("# VPN\n\nRun push_vpn_config, then reconnect.")
    out, _ = run(str(tmp_path), "--tenant", "acme", "--kind", "guide")
    assert "0 created, 1 updated, 2 unchanged" in out
    assert (
        Document.objects.for_tenant(personas.tenant)
        .filter(source__external_key="runbooks/vpn.md")
        .count()
        == 2
    )
    assert not Source.objects.for_tenant(personas.other_tenant).exists()


def test_import_errors(personas, tmp_path):
    with pytest.raises(CommandError, match="No tenant"):
        run(str(tmp_path), "--tenant", "nope")
    with pytest.raises(CommandError, match="not a folder"):
        run(str(tmp_path / "missing"), "--tenant", "acme")
    (tmp_path / "empty.md").write_text("")
    with pytest.raises(CommandError, match="Nothing could be imported"):
        run(str(tmp_path), "--tenant", "acme")


def test_demo_knowledge_base_loads_for_each_tenant(personas, django_capture_on_commit_callbacks):
    for tenant in (personas.tenant, personas.other_tenant):
        with django_capture_on_commit_callbacks(execute=True):
            report = import_folder(tenant=tenant, folder=DEMO_KB_DIR)
        assert len(report.created) == 11 and not report.refused
    titles = set(Source.objects.for_tenant(personas.tenant).values_list("title", flat=True))
    assert {
        "Password reset",
        "Account lockout",
        "VPN connection problems",
        "E-mail and calendar troubleshooting",
        "IT service desk compliance policy",
    } <= titles
    kinds = set(Source.objects.for_tenant(personas.tenant).values_list("kind", flat=True))
    assert kinds == {"runbook", "guide", "policy"}
    assert set(Document.objects.for_tenant(personas.tenant).values_list("status", flat=True)) == {
        "ready"
    }
