"""Console forms of the knowledge base. They check shape; ``knowledge.services`` validates."""

from __future__ import annotations

from django import forms

from knowledge.models import ContentType, SourceKind
from knowledge.services import TITLE_MAX

BLANK = [("", "Any kind")]


class SourceForm(forms.Form):
    title = forms.CharField(
        max_length=TITLE_MAX,
        required=False,
        help_text="With an upload, empty means the file's name.",
    )
    kind = forms.ChoiceField(choices=SourceKind.choices, initial=SourceKind.RUNBOOK)
    content_type = forms.ChoiceField(
        choices=ContentType.choices,
        initial=ContentType.MARKDOWN,
        label="Format of the pasted text",
    )
    content = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 18, "class": "mono"}),
        label="Paste the text",
        strip=False,
    )
    upload = forms.FileField(
        required=False,
        label="…or upload a file",
        help_text="Markdown (.md, .markdown), plain text (.txt) or HTML (.html, .htm), up to 1 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".md,.markdown,.txt,.html,.htm"}),
    )

    def clean(self):
        data = super().clean()
        upload = data.get("upload")
        if not upload and not (data.get("content") or "").strip() and not self.has_error("content"):
            self.add_error("content", "Paste some text or choose a file.")
        if not upload and not (data.get("title") or "").strip() and not self.has_error("title"):
            self.add_error("title", "A title is required.")
        return data


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=500)
    kind = forms.ChoiceField(required=False, choices=BLANK + SourceKind.choices)


class KindFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False, choices=BLANK + SourceKind.choices)
