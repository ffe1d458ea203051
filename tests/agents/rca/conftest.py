"""The telemetry tests' API clients serve the RCA tests too."""

from tests.agents.telemetry.conftest import api, api_for, ingest, outsider_api  # noqa: F401
