"""Formats the load generator's JSON results as BENCHMARKS.md (called by ops/bench/run.sh; printed on stdout)."""
import json
import os
import platform
import statistics
import subprocess
import sys

out, trace, rss_kb, cpu_ticks, clk_tck, runs, seconds = sys.argv[1:8]


def load_lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


cpu = cmd(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]).strip()
mem = cmd(["sh", "-c", "grep MemTotal /proc/meminfo | awk '{print int($2/1024/1024)\" GiB\"}'"])
fanout = load_lines("fanout.jsonl")
ingest = load_lines("ingest.json")
cold = load_lines("cold.json")

print("# Benchmarks\n")
print("Reproduce with `ops/bench/run.sh [trace]` (collab alone). Machine:"
      f" {os.cpu_count()} cores ({cpu}), {mem}, {platform.system()} {platform.release()};"
      f" {cmd(['psql', '--version'])}; {cmd(['nats-server', '--version']) or 'nats-server (Debian)'}."
      " These machines are noisy: read medians and ratios, not single runs.\n")
print("All numbers are for `collab serve` (release build, all roles in one process) with every"
      " update durable in Postgres and published to JetStream by the relay.\n")
if fanout:
    p50 = statistics.median(r["latency_ms"]["p50"] for r in fanout)
    p99 = statistics.median(r["latency_ms"]["p99"] for r in fanout)
    mx = statistics.median(r["latency_ms"]["max"] for r in fanout)
    delivered = sum(r["deliveries"] for r in fanout)
    expected = sum(r["deliveries_expected"] for r in fanout)
    print("## Send → peer latency: 1 document × 10 clients, 5 updates/s each\n")
    print(f"Median of {runs} runs of {seconds} s (`collab-bench fanout --docs D --clients 10 --rate 5`):\n")
    print("| p50 | p99 | max | deliveries |")
    print("|---|---|---|---|")
    print(f"| {p50:.2f} ms | {p99:.2f} ms | {mx:.2f} ms | {delivered} of {expected} |\n")
    print("Latency is from the sender handing the update to its socket to a peer receiving it;"
          " it includes the group commit to Postgres (peers only see durable updates).\n")
if ingest:
    r = ingest[0]
    print(f"## Trace ingest: `{os.path.basename(trace)}`\n")
    print(f"{r['updates']:,} updates sent one per message over one connection"
          f" (`collab-bench ingest`): all durable and served back exactly (final text,"
          f" {r['final_chars']:,} characters, checked) after **{r['complete_seconds']:.2f} s**"
          f" ({r['updates_per_second']:,.0f} updates/s); sending took {r['send_seconds']:.2f} s.\n")
if cold:
    r = cold[0]
    runs_ms = ", ".join(f"{t:.1f}" for t in r["runs_ms"])
    print("## Cold load of that document into a fresh client\n")
    print(f"Median **{r['median_ms']:.1f} ms** ({runs_ms} ms) for {r['chars']:,} characters:"
          " connect, sync step 1, receive the whole state, apply it. Each run finds the room"
          " unloaded, so the server loads the snapshot and the events after it first"
          " (`collab-bench cold-load`).\n")
print("## Server resources over the whole run\n")
print(f"Peak RSS {int(rss_kb) / 1024:.0f} MiB; CPU {int(cpu_ticks) / int(clk_tck):.1f} s.\n")
print("Side-by-side comparison with y-sweet, Hocuspocus and the reference y-websocket server"
      " is tracked in its own issue.")
