import cProfile
import json
import pstats
import time
from datetime import UTC, datetime

import pytest

from tests.bench.test_bench_telemetry import make_run

pytestmark = pytest.mark.django_db


def test_profile(api):
    now = datetime.now(UTC)
    bodies = [
        json.dumps({"runs": [make_run(b * 25 + i, now) for i in range(25)]}) for b in range(30)
    ]
    api.post(bodies[0], "/batch")
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for body in bodies[1:]:
        r = api.post(body, "/batch")
        assert r.status_code in (200, 201), r.content[:300]
    prof.disable()
    el = time.perf_counter() - t
    print("PER REQUEST ms", el / 29 * 1000, "events/s", 29 * 500 / el)
    pstats.Stats(prof).sort_stats("tottime").print_stats(22)
    assert 0
