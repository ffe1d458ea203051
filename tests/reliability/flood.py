"""A tenant flooding the ticket API from its own process (so the flood's client never shares
the measuring test's interpreter): ``python -m tests.reliability.flood URL TOKEN SECONDS RATE``.
Prints a JSON object: status code → count, and how many 429s carried Retry-After."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter


def main(url: str, token: str, seconds: float, rate: float) -> None:
    counts: Counter = Counter()
    lock = threading.Lock()
    body = json.dumps({"title": "Flood", "description": "Noisy neighbour."}).encode()
    deadline = time.monotonic() + seconds
    interval = 4 / rate  # four threads share the rate

    def hammer() -> None:
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            request = urllib.request.Request(  # noqa: S310 - our own server
                url + "/api/v1/tickets",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    status, retry_after = response.status, None
            except urllib.error.HTTPError as error:
                status, retry_after = error.code, error.headers.get("Retry-After")
            with lock:
                counts[str(status)] += 1
                if status == 429 and retry_after:
                    counts["retry_after"] += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(counts))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
