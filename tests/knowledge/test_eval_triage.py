"""manage.py import_tickets and eval_triage on small generated CSV files."""

from __future__ import annotations

import csv
import random
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agentops.models import Tenant
from knowledge import history
from knowledge.management.commands.eval_triage import SCRATCH_PREFIX, accuracy, macro_f1
from knowledge.models import LabelledExample, TriageModel

TOPICS = {
    "network": ["vpn", "wifi", "disconnects", "router", "latency", "tunnel"],
    "access": ["password", "locked", "account", "login", "mfa", "reset"],
    "hardware": ["laptop", "battery", "screen", "keyboard", "docking", "broken"],
    "email": ["outlook", "mailbox", "calendar", "inbox", "attachment", "sync"],
}
FILLER = ["please", "help", "today", "since", "morning", "again", "my", "the", "urgent"]


def write_csv(path, n=200, seed=3, header=("id", "summary", "category", "prio", "group")):
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(n):
            label = rng.choice(sorted(TOPICS))
            words = rng.sample(TOPICS[label], 4) + rng.sample(FILLER, 3)
            rng.shuffle(words)
            writer.writerow([f"T{i}", " ".join(words), label, "P3", f"{label} team"])
    return path


def scratch_tenants():
    return Tenant.objects.filter(slug__startswith=SCRATCH_PREFIX)


def all_examples():
    return LabelledExample.objects.unscoped("tests count rows across tenants")


def test_eval_triage_prints_accuracy_and_macro_f1_and_cleans_up(personas, tmp_path):
    path = write_csv(tmp_path / "tickets.csv")
    out = StringIO()
    call_command(
        "eval_triage",
        str(path),
        "--text-column",
        "summary",
        "--label-column",
        "category",
        "--test-fraction",
        "0.2",
        "--seed",
        "1",
        stdout=out,
    )
    text = out.getvalue()
    assert "200 labelled rows: 160 to train, 40 to test" in text
    # Every test ticket first, then the confident subset, for each method side by side.
    assert text.index("Every test ticket (40)") < text.index("Confident subset")
    for method in ("kNN vote", "linear model", "combined"):
        every = re.search(rf"  {method}\s+accuracy ([0-9.]+)  macro-F1 ([0-9.]+)", text)
        acc, f1 = float(every.group(1)), float(every.group(2))
        # Four clearly separated topics: each method gets nearly all of them.
        assert acc >= 0.9 and f1 >= 0.9, (method, text)
        sure = re.search(rf"  {method}\s+(\d+) of 40 tickets .*fallback rate ([0-9.]+)", text)
        assert sure is not None and 0 <= float(sure.group(2)) <= 1
    assert not scratch_tenants().exists()
    assert not all_examples().exists()
    assert not TriageModel.objects.unscoped("tests: nothing left anywhere").exists()


def test_eval_triage_cleans_up_on_failure(personas, tmp_path, monkeypatch):
    path = write_csv(tmp_path / "tickets.csv", n=20)

    def boom(*args, **kwargs):
        raise RuntimeError("vote exploded")

    monkeypatch.setattr(history, "tally", boom)
    with pytest.raises(RuntimeError, match="vote exploded"):
        call_command(
            "eval_triage",
            str(path),
            "--text-column=summary",
            "--label-column=category",
            stdout=StringIO(),
        )
    assert not scratch_tenants().exists()
    assert not all_examples().exists()


def test_eval_triage_names_a_missing_column(personas, tmp_path):
    path = write_csv(tmp_path / "tickets.csv", n=5)
    with pytest.raises(CommandError, match=r"no column 'label'.*'summary', 'category'"):
        call_command("eval_triage", str(path), "--text-column=summary", "--label-column=label")
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "eval_triage", str(tmp_path / "nope.csv"), "--text-column=a", "--label-column=b"
        )
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x00garbage\x00\x81")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("eval_triage", str(binary), "--text-column=a", "--label-column=b")
    with pytest.raises(CommandError, match="test-fraction"):
        call_command(
            "eval_triage",
            str(path),
            "--text-column=summary",
            "--label-column=category",
            "--test-fraction=1.5",
        )
    assert not scratch_tenants().exists()


def test_import_tickets_bulk_upserts_with_progress(personas, tmp_path):
    path = write_csv(tmp_path / "tickets.csv", n=30)
    out = StringIO()
    args = [
        str(path),
        "--tenant=acme",
        "--text-column=summary",
        "--label-column=category",
        "--priority-column=prio",
        "--group-column=group",
        "--id-column=id",
        "--batch-size=8",
    ]
    call_command("import_tickets", *args, stdout=out)
    assert "8 rows imported" in out.getvalue() and "Imported 30 labelled tickets" in out.getvalue()
    rows = LabelledExample.objects.for_tenant(personas.tenant)
    assert rows.count() == 30
    row = rows.get(ref="T0")
    assert row.origin == "import" and row.priority == "P3" and row.assignment_group.endswith("team")
    call_command("import_tickets", *args, stdout=StringIO())  # again: updated, not duplicated
    assert rows.count() == 30
    assert not LabelledExample.objects.for_tenant(personas.other_tenant).exists()
    # The imported history now votes for this tenant.
    assert history.vote(personas.tenant, row.text) is not None


def test_import_tickets_clear_errors(personas, tmp_path):
    path = write_csv(tmp_path / "tickets.csv", n=3)
    with pytest.raises(CommandError, match="No tenant"):
        call_command(
            "import_tickets",
            str(path),
            "--tenant=nope",
            "--text-column=summary",
            "--label-column=category",
        )
    with pytest.raises(CommandError, match=r"no column 'team' \(for --group-column\)"):
        call_command(
            "import_tickets",
            str(path),
            "--tenant=acme",
            "--text-column=summary",
            "--label-column=category",
            "--group-column=team",
        )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CommandError, match="empty"):
        call_command(
            "import_tickets", str(empty), "--tenant=acme", "--text-column=a", "--label-column=b"
        )
    assert not LabelledExample.objects.for_tenant(personas.tenant).exists()


def test_metrics():
    truth = ["a", "a", "b", "c"]
    assert accuracy(truth, ["a", "b", "b", ""]) == 0.5
    # F1: a = 2/3, b = 2/3, c = 0 → macro 4/9.
    assert macro_f1(truth, ["a", "b", "b", ""]) == pytest.approx(4 / 9)
