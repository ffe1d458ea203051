"""Signed checkpoints of the audit chain head outside the database: deleting the newest events
(which leaves a shorter chain that verifies) is detected."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from django.conf import settings

from agentops import audit_witness
from agentops.audit import verify_chain
from agentops.tasks import audit_checkpoint
from tests.agentops.test_audit import add_events, tamper, verify_audit


@pytest.fixture
def witness(tmp_path, settings):
    settings.AUDIT_WITNESS_FILE = str(tmp_path / "witness.jsonl")
    settings.AUDIT_CHECKPOINT_KEY = ""
    settings.AUDIT_CHECKPOINT_KEY_PATH = str(tmp_path / "key")
    return Path(settings.AUDIT_WITNESS_FILE)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_beat_task_writes_a_signed_checkpoint_per_tenant_head(personas, witness, caplog):
    add_events(personas.tenant, 3)
    add_events(personas.other_tenant, 2)
    caplog.set_level(logging.INFO, logger="agentops.audit_witness")

    written = audit_checkpoint.delay().get()

    heads = {r["tenant"]: r for r in lines(witness)}
    assert written == len(heads) >= 2
    acme = heads["acme"]
    assert acme["seq"] == verify_chain(personas.tenant).last_seq
    assert acme["sig"] == audit_witness.sign({k: v for k, v in acme.items() if k != "sig"})
    assert any("audit.checkpoint" in r.getMessage() for r in caplog.records)  # and the log
    assert "audit-checkpoint" in settings.CELERY_BEAT_SCHEDULE
    # The key is a file of its own (owner-only), never a row of the database.
    assert stat.S_IMODE(os.stat(settings.AUDIT_CHECKPOINT_KEY_PATH).st_mode) == 0o600


def test_an_unchanged_head_is_not_written_again(personas, witness):
    add_events(personas.tenant, 2)
    first = audit_witness.write_checkpoints()

    assert audit_witness.write_checkpoints() == 0
    add_events(personas.tenant, 1)
    assert audit_witness.write_checkpoints() == 1
    assert len(lines(witness)) == first + 1


def test_deleting_the_newest_events_is_detected(personas, witness):
    add_events(personas.tenant, 6)
    audit_witness.write_checkpoints()
    head = verify_chain(personas.tenant).last_seq

    tamper(
        "DELETE FROM agentops_auditevent WHERE tenant_id = %s AND seq > %s",
        [personas.tenant.pk, head - 2],
    )

    report = verify_chain(personas.tenant)
    assert not report.ok
    assert report.broken.kind == "truncated"
    assert f"#{head}" in report.broken.detail
    ok, output = verify_audit("--tenant", "acme")
    assert not ok and "truncated" in output
    assert verify_chain(personas.other_tenant).ok  # the other tenant's chain is untouched


def test_a_rewritten_tail_is_detected(personas, witness):
    add_events(personas.tenant, 5)
    audit_witness.write_checkpoints()
    head = verify_chain(personas.tenant).last_seq
    tamper(
        "DELETE FROM agentops_auditevent WHERE tenant_id = %s AND seq > %s",
        [personas.tenant.pk, head - 2],
    )
    add_events(personas.tenant, 4, action="forged.event")  # a new, longer tail

    report = verify_chain(personas.tenant)

    assert not report.ok
    assert report.broken.kind == "rewritten"


def test_a_forged_checkpoint_is_ignored(personas, witness):
    add_events(personas.tenant, 3)
    audit_witness.write_checkpoints()
    forged = lines(witness)[0] | {"seq": 999, "hash": "0" * 64}
    with witness.open("a") as handle:
        handle.write(json.dumps(forged) + "\n")

    latest, bad = audit_witness.read_checkpoints()

    assert bad == 1
    assert latest[personas.tenant.pk].seq < 999
    assert verify_chain(personas.tenant).ok
