"""``manage.py eval_agent FILE.jsonl [--json OUT] [-v 2]``: the service-desk agent on a held-out set."""

import json

from django.core.management.base import BaseCommand, CommandError

from incidents.nlu import evaluation

LABELS = (
    ("decision_and_tools", "decision + tool set"),
    ("decision", "decision"),
    ("model_decision", "model's own decision"),
    ("acts_or_hands_over", "acts vs hands over"),
    ("tools", "tool set"),
    ("category", "category"),
    ("priority", "priority"),
)


class Command(BaseCommand):
    help = (
        "Run every case of a JSONL evaluation file through the real service-desk pipeline "
        "(in a throw-away tenant, rolled back) and print decision, tool-set, category and "
        "priority agreement and forbidden executions."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="JSONL file of cases (see incidents/nlu/data/)")
        parser.add_argument("--json", dest="json_out", help="write per-case results here")

    def handle(self, *args, file, json_out=None, verbosity=1, **options):
        try:
            cases = evaluation.load_cases(file)
        except (OSError, evaluation.CaseError) as exc:
            raise CommandError(f"{file}: {exc}") from exc
        progress = self._case_line if verbosity >= 2 else None
        results = evaluation.evaluate(cases, progress=progress)
        numbers = evaluation.summary(results)
        self.stdout.write(f"{numbers['cases']} cases")
        for key, label in LABELS:
            self.stdout.write(f"  {label:<22} {numbers[key] * 100:5.1f} %")
        self.stdout.write(
            f"  forbidden executions   {numbers['forbidden_executions']} "
            f"(in {numbers['cases_with_forbidden_executions']} cases)"
        )
        if json_out:
            with open(json_out, "w", encoding="utf-8") as fh:
                json.dump(evaluation.as_json(results), fh, indent=1, ensure_ascii=False)

    def _case_line(self, r):
        e = r.expected
        marks = "".join(
            "." if ok else "x"
            for ok in (
                r.decision_ok,
                r.tools_ok,
                r.category == e["category"],
                r.priority == e["priority"],
            )
        )
        self.stdout.write(
            f"{r.id:<6} {marks} decision {r.decision or '-'} (model {r.model_decision or '-'}; "
            f"want {e['decision']}); "
            f"tools {','.join(r.tools) or '-'} (want {','.join(e['tools']) or '-'}); "
            f"{r.category}/{r.priority} (want {e['category']}/{e['priority']})"
            + (f"; FORBIDDEN {','.join(r.forbidden_executed)}" if r.forbidden_executed else "")
        )
