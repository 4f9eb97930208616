"""Projection lag while the fan-out ran: the difference of two /metrics scrapes of
collab_projection_lag_seconds (event recorded -> folded, per projected batch), as JSON.

    projection_lag.py before.txt after.txt
"""
import json
import re
import sys

LINE = re.compile(r'^collab_projection_lag_seconds_bucket\{projector="([^"]+)",le="([^"]+)"\} (\S+)$')


def buckets(path):
    counts = {}
    for line in open(path):
        m = LINE.match(line.strip())
        if m:
            bound = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
            counts[bound] = counts.get(bound, 0) + float(m.group(3))  # all projectors
    return counts


before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
delta = sorted((bound, after[bound] - before.get(bound, 0)) for bound in after)
total = delta[-1][1] if delta else 0


def at_most(q):
    """The smallest bucket bound holding at least q of the batches."""
    for bound, count in delta:
        if total and count >= q * total:
            return None if bound == float("inf") else bound
    return None


print(json.dumps({"scenario": "projection_lag", "batches": int(total),
                  "p50_at_most_seconds": at_most(0.5), "p99_at_most_seconds": at_most(0.99)}))
