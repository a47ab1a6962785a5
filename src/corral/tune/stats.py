"""Latency histograms with 2 % buckets: record, merge across processes, read percentiles."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

# Each bucket is 2 % wider than the one before it, from 1 µs: a percentile read from the bucket's
# upper edge is at most 2 % high, and an hour-long run needs only a few hundred buckets.
GROWTH = 1.02
_LOG_GROWTH = math.log(GROWTH)
FLOOR_S = 1e-6


def bucket_of(seconds: float) -> int:
    """The bucket a latency falls in (0 for anything up to 1 µs)."""
    if seconds <= FLOOR_S:
        return 0
    return int(math.log(seconds / FLOOR_S) / _LOG_GROWTH) + 1


def upper_edge(bucket: int) -> float:
    """The largest latency, in seconds, that falls in `bucket`."""
    return float(FLOOR_S * GROWTH**bucket)


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    """The sum of several histograms (bucket -> count)."""
    total: dict[int, int] = {}
    for histogram in histograms:
        for bucket, count in histogram.items():
            total[int(bucket)] = total.get(int(bucket), 0) + int(count)
    return total


def percentile(histogram: Mapping[int, int], share: float) -> float:
    """The latency (seconds) below which `share` (0..1) of the recorded requests fall; 0 if none."""
    count = sum(histogram.values())
    if count == 0:
        return 0.0
    rank = max(1, math.ceil(share * count))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return upper_edge(bucket)
    return upper_edge(max(histogram))


def mean(histogram: Mapping[int, int]) -> float:
    """An estimate of the mean latency (seconds) from the bucket edges; 0 if none."""
    count = sum(histogram.values())
    if count == 0:
        return 0.0
    return sum(upper_edge(b) * n for b, n in histogram.items()) / count
