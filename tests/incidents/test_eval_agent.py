"""``manage.py eval_agent``: cases through the real pipeline, scored, and nothing kept."""

import json

import pytest
from django.core.management import CommandError, call_command

from agentops.models import Tenant
from incidents.models import Ticket
from incidents.nlu import evaluation

LOCKED = {"account": {"locked": True, "failed_login_attempts": 5}}


def write(tmp_path, *cases):
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in cases) + "\n", encoding="utf-8")
    return path


def case(id, title, decision, tools, forbidden=(), setup=None, **expected):
    data = {
        "id": id,
        "title": title,
        "description": "",
        "requester": "robin",
        "expected": {
            "decision": decision,
            "tools": tools,
            "category": expected.get("category", "access"),
            "priority": expected.get("priority", "medium"),
            "forbidden": list(forbidden),
        },
    }
    if setup:
        data["setup"] = setup
    return data


def test_runs_cases_through_the_pipeline_scores_them_and_keeps_nothing(personas, tmp_path):
    path = write(
        tmp_path,
        case(
            "a",
            "I'm locked out of my account, please unlock it",
            "auto_resolve",
            ["unlock_account"],
            setup=LOCKED,
        ),
        # The same ticket, scored against a rule that forbids acting on the requester.
        case(
            "b",
            "I'm locked out of my account, please unlock it",
            "human",
            [],
            forbidden=["unlock_account:requester"],
            setup=LOCKED,
        ),
    )
    out = tmp_path / "out.json"
    tickets_before = Ticket.objects.unscoped("test: count every tenant").count()
    call_command("eval_agent", str(path), "--json", str(out), verbosity=2)
    report = json.loads(out.read_text())
    first, second = report["cases"]
    assert first["tools"] == ["unlock_account"] and first["decision"] == "auto_resolve"
    assert first["model_decision"] == "auto_resolve"  # the model's own triage, asked again
    assert first["forbidden_executed"] == []
    assert second["forbidden_executed"] == ["unlock_account:requester"]
    assert report["summary"]["decision_and_tools"] == 0.5
    assert report["summary"]["forbidden_executions"] == 1
    # One transaction, rolled back: no eval tenant, no new ticket, the other tenants untouched.
    assert not Tenant.objects.filter(slug=evaluation.EVAL_TENANT_SLUG).exists()
    assert Ticket.objects.unscoped("test: count every tenant").count() == tickets_before


def test_each_case_starts_from_its_own_sandbox_state(personas, tmp_path):
    """Each case runs in its own savepoint: the first case's unlock is rolled back, so the
    second case sets up the same locked account again and unlocks it too."""
    path = write(
        tmp_path,
        case(
            "locked",
            "Account locked, please unlock",
            "auto_resolve",
            ["unlock_account"],
            setup=LOCKED,
        ),
        case(
            "again",
            "Account locked, please unlock",
            "auto_resolve",
            ["unlock_account"],
            setup=LOCKED,
        ),
    )
    results = evaluation.evaluate(evaluation.load_cases(path))
    assert [r.tools for r in results] == [["unlock_account"], ["unlock_account"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "line 1: not JSON"),
        ('["a list"]\n', "line 1: a case is a JSON object"),
        (
            '{"title": "x", "requester": "r", "expected": {"decision": "maybe"}}\n',
            "expected.decision must be one of",
        ),
        (
            '{"title": "x", "requester": "r", "expected": {"decision": "human", "tools": "x"}}\n',
            "expected.tools must be a list",
        ),
        ("\n", "no cases"),
    ],
)
def test_malformed_files_are_refused_clearly(personas, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        call_command("eval_agent", str(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("eval_agent", str(tmp_path / "missing.jsonl"))
