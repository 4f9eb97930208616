"""Formats ops/bench/compare.sh results as BENCHMARKS.md."""
import json
import os
import platform
import statistics
import subprocess
import sys

results_path, trace, runs, seconds, docs, clients, rate = sys.argv[1:8]
rows = [json.loads(line) for line in open(results_path) if line.strip()]
servers = []
for r in rows:
    if r["server"] not in servers:
        servers.append(r["server"])


def of(server, scenario):
    return [r for r in rows if r["server"] == server and r["scenario"] == scenario]


def sh(cmd):
    return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True).stdout.strip()


def fmt(v, unit="", digits=1):
    return "—" if v is None else f"{v:,.{digits}f}{unit}"


def table_head(*columns):
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def ratio(value, best):
    if value is None or best is None or best == 0:
        return ""
    return f" ({value / best:.2f}×)"


summary = {}
for s in servers:
    fan = of(s, "fanout")
    ing = of(s, "ingest")
    cold = of(s, "cold_load")
    res = of(s, "resources")
    idle = of(s, "idle")
    summary[s] = {
        "idle": idle[0] if idle else None,
        "p50": statistics.median(r["latency_ms"]["p50"] for r in fan) if fan else None,
        "p99": statistics.median(r["latency_ms"]["p99"] for r in fan) if fan else None,
        "max": statistics.median(r["latency_ms"]["max"] for r in fan) if fan else None,
        "delivered": (sum(r["deliveries"] for r in fan), sum(r["deliveries_expected"] for r in fan)) if fan else None,
        "ingest": ing[0]["complete_seconds"] if ing else None,
        "ingest_timeout": (ing[0].get("timed_out_after_seconds"), ing[0].get("server_chars_at_timeout"), ing[0]["final_chars"]) if ing and ing[0]["complete_seconds"] is None else None,
        "cold": cold[0]["median_ms"] if cold else None,
        "cold_chars": cold[0]["chars"] if cold else None,
        "final_chars": ing[0]["final_chars"] if ing else None,
        "rss_mib": res[0]["peak_rss_kb"] / 1024 if res else None,
        "cpu": res[0]["cpu_seconds"] if res else None,
    }

peers = [s for s in servers if s != "collab"]


def valid(p, key):
    v = summary[p]
    if v[key] is None:
        return False
    # A cold load that served the wrong document does not count as a result.
    if key == "cold" and v["cold_chars"] is not None and v["final_chars"] is not None:
        return v["cold_chars"] == v["final_chars"]
    return True


def best(key):
    values = [summary[p][key] for p in peers if valid(p, key)]
    return min(values) if values else None


cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
print("# Benchmarks\n")
print(f"Reproduce with `ops/bench/compare.sh [trace]` (it rewrites this file; `ops/bench/run.sh` runs"
      f" collab alone). Machine: {os.cpu_count()} cores ({cpu.strip()}),"
      f" {sh('grep MemTotal /proc/meminfo | awk ' + repr('{print int($2/1024/1024)}'))} GiB, {platform.system()} {platform.release()};"
      f" {sh('psql --version')}; {sh('nats-server --version')}; node {sh('node --version')};"
      f" y-sweet {sh('y-sweet --version 2>/dev/null | head -1') or '0.9.1'}; @hocuspocus/server 4.7.0;"
      f" @y/websocket-server 0.1.1. Everything on loopback, servers one after another in one run."
      " These machines are noisy: read medians and ratios.\n")
print("**What each server guarantees differs.** collab acknowledges (forwards) an update only after it is"
      " committed to Postgres, and every update is also published to JetStream and folded by the"
      " projectors. y-sweet keeps documents in memory and writes them to its store every 10 s;"
      " Hocuspocus and the y-websocket server (as started here, without persistence extensions)"
      " keep them in memory only.\n")
print(f"## Fan-out: {docs} documents × {clients} clients, {rate} updates/s each, {seconds} s\n")
print(f"Send → peer latency, median over {runs} runs (`collab-bench fanout`). Ratio: against the best peer.\n")
table_head("server", "p50", "p99", "max", "delivered")
for s in servers:
    v = summary[s]
    d = v["delivered"]
    delivered = f"{d[0]:,} / {d[1]:,}" if d else "—"
    print(f"| {s} | {fmt(v['p50'], ' ms', 2)}{ratio(v['p50'], best('p50'))} | {fmt(v['p99'], ' ms', 2)}{ratio(v['p99'], best('p99'))}"
          f" | {fmt(v['max'], ' ms', 2)} | {delivered} |")
print()
if any(summary[s]["ingest"] is not None for s in servers):
    print(f"## Trace ingest and cold load: `{os.path.basename(trace)}`\n")
    print("Ingest: every keystroke sent as its own update over one connection until a second client"
          " receives exactly the final text (`collab-bench ingest`). Cold load: a fresh client"
          " receives the whole document, median of 7 (`collab-bench cold-load`).\n")
    table_head("server", "ingest", "cold load")
    for s in servers:
        v = summary[s]
        if v["ingest_timeout"]:
            after, chars, total = v["ingest_timeout"]
            ingest = f"not done after {after} s ({chars:,} of {total:,} characters served)"
        else:
            ingest = f"{fmt(v['ingest'], ' s', 2)}{ratio(v['ingest'], best('ingest'))}"
        cold_cell = f"{fmt(v['cold'], ' ms', 1)}{ratio(v['cold'], best('cold'))}"
        if v["cold_chars"] is not None and v["final_chars"] is not None and v["cold_chars"] != v["final_chars"]:
            cold_cell += f" — served {v['cold_chars']:,} of {v['final_chars']:,} characters"
        print(f"| {s} | {ingest} | {cold_cell} |")
    print()
lags = [r for r in rows if r["scenario"] == "projection_lag"]
if lags:
    def ms(v):
        return "over 5 s" if v is None else f"≤ {v * 1000:g} ms"
    print("## Projection lag under the fan-out load (collab)\n")
    print("A run of its own after the fan-out runs, with the same load plus a document renamed ten"
          " times a second (its latencies are not in the table above: the peers get no extra load); lag from an event's"
          " commit to its projection, per projected batch, from the server's"
          " `collab_projection_lag_seconds` histogram (so bounded by its buckets).\n")
    table_head("batches projected", "p50", "p99")
    for r in lags:
        print(f"| {r['batches']:,} | {ms(r['p50_at_most_seconds'])} | {ms(r['p99_at_most_seconds'])} |")
    print()
durability = [r for r in rows if r["scenario"] == "durability"]
if durability:
    d = durability[0]
    print("## Durability of collab's run\n")
    print("After its scenarios (`collab-bench durability`): the edits the load generator sent"
          " against what Postgres holds, and the events stream on JetStream against the log.\n")
    table_head("edits sent", "edits in Postgres", "events in Postgres", "events on JetStream", "last position (log / JetStream)", "relay done after the last run", "verdict")
    verdict = "every edit durable, whole log on JetStream in order" if d["durable"] else "**MISMATCH**"
    print(f"| {d['edits_sent']:,} | {d['edits_in_postgres']:,} | {d['events_in_postgres']:,} | {d['events_on_jetstream']:,}"
          f" | {d['last_position']:,} / {d['last_position_on_jetstream']:,} | {d['jetstream_caught_up_seconds']:.1f} s | {verdict} |")
    print()
append = [r for r in rows if r["scenario"] == "append"]
if append:
    a = append[0]
    print("## Durable appends beside the machine's raw limits\n")
    print("Events/s through the event store (`append_batch`: the ordering lock, stream heads, hash"
          " chain; one statement per batch, binary `COPY` from 256 events) beside a bare multi-row INSERT of the same rows into"
          " the same Postgres (`collab-bench append`). Keystroke-sized `DocumentEdited` events.\n")
    table_head("writers", "batch", "event store", "raw INSERT", "ratio")
    for r in a["rows"]:
        print(f"| {r['writers']} | {r['batch']} | {r['store_per_second']:,.0f}/s | {r['raw_insert_per_second']:,.0f}/s | {r['ratio']:.2f} |")
    print()
    print(f"Relay to JetStream: {a['relay_per_second']:,.0f} events/s ({a['relayed_events']:,} events published"
          f" in order with acks, read back from Postgres: the worst case — a serving relay takes what its"
          f" own process just committed from memory). Bare JetStream publish of {a['jetstream_message_bytes']}-byte messages,"
          f" pipelined: {a['jetstream_publish_per_second']:,.0f}/s.\n")
idle_rows = [(s, summary[s]["idle"]) for s in servers if summary[s]["idle"]]
if idle_rows:
    n = idle_rows[0][1]["connections_requested"]
    print(f"## Idle connections: {n:,} sockets\n")
    print("Sockets opened 200 at a time over the fan-out documents, each synced (the server's first"
          " message received), held idle for 5 s, then pinged (`collab-bench idle`). Memory per"
          " connection: the server's resident-set growth divided by the open sockets.\n")
    valid_idle = [v["kib_per_connection"] for p, v in idle_rows if p != "collab" and v["kib_per_connection"] is not None and v["connections_alive_after_hold"] == n]
    best_idle = min(valid_idle) if valid_idle else None
    table_head("server", "open", "alive after hold", "time to open", "memory per connection", "resident set with all open")
    for s, v in idle_rows:
        errors = "; ".join(f"{k}: {c}" for k, c in v["errors"].items())
        open_cell = f"{v['connections_open']:,}" + (f" ({errors})" if errors else "")
        print(f"| {s} | {open_cell} | {v['connections_alive_after_hold']:,} | {fmt(v['open_seconds'], ' s', 1)}"
              f" | {fmt(v['kib_per_connection'], ' KiB', 1)}{ratio(v['kib_per_connection'], best_idle)}"
              f" | {fmt(v['server_rss_kib_open'] / 1024 if v['server_rss_kib_open'] else None, ' MiB', 0)} |")
    print()
print("## Server resources over its whole run\n")
table_head("server", "peak RSS", "CPU")
for s in servers:
    v = summary[s]
    print(f"| {s} | {fmt(v['rss_mib'], ' MiB', 0)} | {fmt(v['cpu'], ' s', 1)} |")
print()
print("collab's CPU figure is its own process only; Postgres and NATS work on top of it.")
failed = [r for r in rows if r["scenario"] == "failed"]
if failed:
    print("\n## Scenarios that failed\n")
    table_head("server", "scenario", "error")
    for r in failed:
        print(f"| {r['server']} | {r['failed']} | {r['error'] or '—'} |")

light = os.path.join(os.path.dirname(os.path.abspath(__file__)), "LIGHT.md")
if os.path.exists(light):
    print()
    print(open(light).read().rstrip())

consumers = os.path.join(os.path.dirname(os.path.abspath(__file__)), "CONSUMERS.md")
if os.path.exists(consumers):
    print()
    print(open(consumers).read().rstrip())

history = os.path.join(os.path.dirname(os.path.abspath(__file__)), "HISTORY.md")
if os.path.exists(history):
    print()
    print(open(history).read().rstrip())

rebuild = os.path.join(os.path.dirname(os.path.abspath(__file__)), "REBUILD.md")
if os.path.exists(rebuild):
    print()
    print(open(rebuild).read().rstrip())

search = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SEARCH.md")
if os.path.exists(search):
    print()
    print(open(search).read().rstrip())

changes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "CHANGES.md")
if os.path.exists(changes):
    print()
    print(open(changes).read().rstrip())
