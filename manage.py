#!/usr/bin/env python
"""Django's command-line utility. With DATABASE_URL / REDIS_URL unset it first makes sure the
embedded PostgreSQL and Redis under var/ are running, so every command works beside `make run`."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentops.settings")
    if sys.argv[1:2] == ["migrate"]:
        # Migrations run as the owner of the tables (DATABASE_MIGRATION_URL); everything else
        # as the application's role, which owns nothing (agentops/settings.py).
        os.environ.setdefault("AGENTOPS_DB_ROLE", "owner")
    from agentops import localservices

    try:
        if localservices.uses_local_postgres():
            localservices.ensure_postgres()
        if localservices.uses_local_redis():
            localservices.ensure_redis()
    except localservices.LocalServiceError as exc:
        sys.exit(f"error: {exc}")

    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
