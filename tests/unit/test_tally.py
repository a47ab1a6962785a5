"""metrics_bind: a worker's request counts, their wire form, and the Prometheus text."""

from __future__ import annotations

import re
import threading

from corral.arbiter.scrape import Census, exposition
from corral.tally import BUCKETS, SIZE, Tally, Totals, decode

SAMPLE = re.compile(r'^([a-z_]+)(\{[a-z]+="[^"]*"\})? (-?[0-9.e+]+)$')


def _counts(text: str) -> dict[str, float]:
    """name{labels} -> value, checking every line is a comment or a well-formed sample."""
    out = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match is not None, line
        out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


def test_requests_are_counted_by_status_class_and_duration_bucket() -> None:
    tally = Tally()
    tally.request(0.005, 200)  # on a bound: that bucket (le means <=)
    tally.request(0.0051, 404)
    tally.request(3.0, 503)
    tally.request(60.0, 0)  # no response sent: in no status class
    tally.request(0.001, 1234)  # an ASGI app's nonsense status: no class either
    tally.request(0.001, -1)
    totals = decode(tally.encode())
    assert totals is not None
    assert totals.requests == 6
    assert totals.statuses == [0, 1, 0, 1, 1]
    assert totals.buckets[0] == 3 and totals.buckets[1] == 1
    assert totals.buckets[BUCKETS.index(5.0)] == 1
    assert totals.buckets[-1] == 1  # +Inf only
    assert totals.micros == 63_012_100  # whole microseconds


def test_nothing_published_or_a_torn_write_decodes_to_none() -> None:
    assert decode(b"") is None
    assert decode(bytes(SIZE)) is None  # a fresh heartbeat file, zero-filled
    tally = Tally()
    tally.request(0.1, 200)
    first = tally.encode()
    second = tally.encode()
    torn = second[: SIZE // 2] + first[SIZE // 2 :]  # new start, old end
    assert decode(torn) is None
    assert decode(second) is not None


def test_totals_add_up() -> None:
    a, b = Tally(), Tally()
    a.request(0.01, 200)
    b.request(0.2, 500)
    b.request(0.2, 200)
    total = Totals()
    for tally in (a, b):
        got = decode(tally.encode())
        assert got is not None
        total.add(got)
    assert total.requests == 3 and total.statuses == [0, 2, 0, 0, 1]


def test_the_exposition_is_cumulative_and_well_formed() -> None:
    tally = Tally()
    for duration, status in [(0.001, 200), (0.02, 200), (0.3, 302), (20.0, 500), (0.5, 0)]:
        tally.request(duration, status)
    totals = decode(tally.encode())
    assert totals is not None
    census = Census(heartbeats=[], target=4, resident=123 * 1024)
    counts = _counts(exposition(totals, census, exits=7, started=1700000000.5))
    assert counts['corral_requests_total{status="2xx"}'] == 2
    assert counts['corral_requests_total{status="3xx"}'] == 1
    assert counts['corral_requests_total{status="5xx"}'] == 1
    assert counts['corral_requests_total{status="other"}'] == 1
    assert counts['corral_request_duration_seconds_bucket{le="0.005"}'] == 1
    assert counts['corral_request_duration_seconds_bucket{le="0.025"}'] == 2
    assert counts['corral_request_duration_seconds_bucket{le="0.5"}'] == 4
    assert counts['corral_request_duration_seconds_bucket{le="10.0"}'] == 4
    assert counts['corral_request_duration_seconds_bucket{le="+Inf"}'] == 5
    assert counts["corral_request_duration_seconds_count"] == 5
    assert counts["corral_request_duration_seconds_sum"] == 20.821
    assert counts["corral_workers"] == 0 and counts["corral_workers_target"] == 4
    assert counts["corral_workers_resident_bytes"] == 123 * 1024
    assert counts["corral_worker_exits_total"] == 7
    assert counts["corral_master_start_time_seconds"] == 1700000000.5


def test_pool_threads_count_apart_and_ended_threads_are_folded_in() -> None:
    tally = Tally(threaded=True)

    def serve(n: int) -> None:
        for _ in range(n):
            tally.request(0.001, 200)

    threads = [threading.Thread(target=serve, args=(2000,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first = decode(tally.encode())
    assert first is not None and first.requests == 8000 and first.statuses[1] == 8000
    assert tally._threads == []  # the ended threads' lists were folded into one
    late = threading.Thread(target=serve, args=(5,))
    late.start()
    late.join()
    again = decode(tally.encode())
    assert again is not None and again.requests == 8005 and again.buckets[0] == 8005
