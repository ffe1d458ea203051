"""Reading labelled tickets from a CSV file, shared by import_tickets and eval_triage."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import CommandError

# Ticket texts can be long (e-mail threads pasted into the description).
csv.field_size_limit(min(sys.maxsize, 10_000_000))


def open_rows(path: str, *, required: dict[str, list[str] | str | None]) -> Iterator[dict]:
    """Yield each CSV row as a dict, after checking that every named column exists.

    ``required`` maps a purpose ("text", "label", ...) to a column name, several names (their
    values are joined), or None (not wanted). A missing file, an unreadable one or a missing
    column raises CommandError with what to do.
    """
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"{path}: no such file.")
    try:
        handle = file.open(encoding="utf-8-sig", newline="")
        reader = csv.DictReader(handle)
        header = reader.fieldnames
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"{path}: cannot read it as a UTF-8 CSV file ({exc}).") from exc
    if not header:
        handle.close()
        raise CommandError(f"{path}: the file is empty (no header row).")
    columns = [h.strip() for h in header]
    for purpose, names in required.items():
        for name in [names] if isinstance(names, str) else names or []:
            if name not in columns:
                handle.close()
                raise CommandError(
                    f"{path}: no column {name!r} (for --{purpose}-column). "
                    f"The columns are: {', '.join(repr(c) for c in columns)}."
                )
    reader.fieldnames = columns
    return _rows(handle, reader, path)


def _rows(handle, reader, path: str) -> Iterator[dict]:
    with handle:
        try:
            yield from reader
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CommandError(
                f"{path}: cannot read line {reader.line_num} as UTF-8 CSV ({exc})."
            ) from exc


def joined(row: dict, names: list[str]) -> str:
    return "\n".join(v.strip() for n in names if (v := (row.get(n) or "")).strip())
