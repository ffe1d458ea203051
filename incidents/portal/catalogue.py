"""The request catalogue: common requests as short forms. Each item is a form whose answers
become a ticket's title and description (``ticket(...)``), through ``ticket_create``."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError

from incidents.models import Category, Priority

TEXT = {"maxlength": 200}


class SoftwareForm(forms.Form):
    software = forms.CharField(label="Which software?", max_length=120)
    device = forms.CharField(
        label="On which computer? (asset tag or name)", max_length=60, required=False
    )
    reason = forms.CharField(
        label="What do you need it for?", widget=forms.Textarea(attrs={"rows": 3}), max_length=1000
    )

    def ticket(self) -> dict:
        d = self.cleaned_data
        where = f" on {d['device']}" if d["device"] else ""
        return {
            "title": f"Install {d['software']}{where}"[:200],
            "description": f"Software: {d['software']}\nComputer: {d['device'] or 'my usual one'}\n\n{d['reason']}",
            "category": Category.SOFTWARE,
        }


class SharedDriveForm(forms.Form):
    drive = forms.CharField(label="Which shared drive or folder?", max_length=200)
    access = forms.ChoiceField(
        label="Access needed", choices=[("read", "Read only"), ("write", "Read and write")]
    )
    manager = forms.EmailField(label="Your manager's e-mail (they approve it)")
    reason = forms.CharField(
        label="Why do you need it?", widget=forms.Textarea(attrs={"rows": 3}), max_length=1000
    )

    def ticket(self) -> dict:
        d = self.cleaned_data
        level = "read and write" if d["access"] == "write" else "read-only"
        return {
            "title": f"Access to the shared drive {d['drive']} ({level})"[:200],
            "description": f"Drive or folder: {d['drive']}\nAccess: {level}\nManager: {d['manager']}\n\n{d['reason']}",
            "category": Category.ACCESS,
        }


class NewStarterForm(forms.Form):
    name = forms.CharField(label="The new starter's full name", max_length=120)
    start_date = forms.DateField(label="First day", widget=forms.DateInput(attrs={"type": "date"}))
    role = forms.CharField(label="Job title and team", max_length=120)
    equipment = forms.MultipleChoiceField(
        label="What they need",
        required=False,
        choices=[
            ("laptop", "Laptop"),
            ("phone", "Phone"),
            ("monitor", "Monitor"),
            ("vpn", "VPN access"),
        ],
        widget=forms.CheckboxSelectMultiple,
    )
    # With the starter's address the checklist runs at once as an onboarding run
    # (incidents.blueprints.onboarding), and its progress shows on this request.
    email = forms.EmailField(
        label="Their work e-mail (starts the onboarding checklist)", required=False
    )
    software = forms.CharField(
        label="Authorised software (comma-separated)", max_length=500, required=False
    )
    groups = forms.CharField(
        label="Groups to join (comma-separated)", max_length=500, required=False
    )

    def clean(self):
        from incidents.blueprints.onboarding import parse_checklist

        data = super().clean()
        try:
            data["checklist"] = parse_checklist(
                f"software: {data.get('software') or ''}; groups: {data.get('groups') or ''}"
            )
        except ValidationError as exc:
            self.add_error(None, exc.messages)
        return data

    def onboarding(self) -> dict | None:
        """The onboarding checklist to start, or None without the starter's address."""
        d = self.cleaned_data
        if not d.get("email"):
            return None
        return {"email": d["email"].lower(), **d["checklist"]}

    def ticket(self) -> dict:
        d = self.cleaned_data
        needs = ", ".join(d["equipment"]) or "the standard set"
        return {
            "title": f"New starter: {d['name']} on {d['start_date']:%b %d, %Y}"[:200],
            "description": f"Name: {d['name']}\nFirst day: {d['start_date']:%Y-%m-%d}\nRole: {d['role']}\nNeeds: {needs}",
            "category": Category.ACCESS,
            "priority": Priority.HIGH,
        }


@dataclass(frozen=True)
class Item:
    slug: str
    title: str
    blurb: str
    form: type[forms.Form]


CATALOGUE = {
    item.slug: item
    for item in (
        Item("software", "New software", "Install an application on your computer.", SoftwareForm),
        Item(
            "shared-drive",
            "Access to a shared drive",
            "Read or write a team's folder.",
            SharedDriveForm,
        ),
        Item(
            "new-starter",
            "A new starter",
            "Accounts and equipment for someone joining.",
            NewStarterForm,
        ),
    )
}
