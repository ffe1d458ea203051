"""The decision form of the reviewer queue: approve, reject (with a reason), edit then approve."""

from __future__ import annotations

import json

from django import forms

from approvals import handlers
from approvals.models import ApprovalRequest

NO_VALIDATOR = (
    "Edited arguments cannot be checked for this kind of request yet (no validator is "
    "registered for its handler), so they cannot be approved. Approve as proposed or reject."
)


class DecisionForm(forms.Form):
    DECISIONS = (("approve", "Approve"), ("reject", "Reject"), ("edit", "Edit then approve"))

    decision = forms.ChoiceField(
        choices=DECISIONS, error_messages={"required": "Choose approve or reject."}
    )
    comment = forms.CharField(required=False, max_length=2000)
    arguments = forms.CharField(required=False, max_length=20_000, strip=False)

    def __init__(self, *args, approval: ApprovalRequest, **kwargs):
        super().__init__(*args, **kwargs)
        self.approval = approval

    def clean(self):
        data = super().clean()
        decision = data.get("decision")
        data["comment"] = (data.get("comment") or "").strip()
        data["edited_arguments"] = None
        if decision == "reject" and not data["comment"]:
            self.add_error("comment", "Say why you reject it.")
        if decision == "edit" and "arguments" not in self.errors:
            data["edited_arguments"] = self._edited_arguments(data.get("arguments") or "")
        return data

    def _edited_arguments(self, text: str) -> dict | None:
        """The edited arguments, parsed and checked by the handler's validator; else None."""
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            self.add_error(
                "arguments",
                f"The arguments are not valid JSON: {exc.msg} (line {exc.lineno}, "
                f"column {exc.colno}).",
            )
            return None
        if not isinstance(parsed, dict):
            self.add_error("arguments", "The arguments must be a JSON object ({...}).")
            return None
        validate = handlers.validator_for(self.approval.handler)
        if validate is None:
            self.add_error("arguments", NO_VALIDATOR)
            return None
        problems = validate(self.approval, parsed)
        for problem in problems:
            self.add_error("arguments", problem)
        return None if problems else parsed


class AvailabilityForm(forms.Form):
    """A reviewer's own toggle: away (optionally until a time) or available again."""

    away = forms.TypedChoiceField(
        choices=(("1", "Away"), ("0", "Available")), coerce=lambda v: v == "1"
    )
    away_until = forms.DateTimeField(
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
        error_messages={"invalid": "Enter a date and time (YYYY-MM-DD HH:MM)."},
    )
