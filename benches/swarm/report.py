#!/usr/bin/python3
"""Markdown tables from the swarm bench's results file.

  report.py RESULTS.jsonl

Each line of RESULTS.jsonl is {"seeder": KIND, "peers": K, "round": R,
"report": <ringseed-bench leech --json output>} or, for a failed run,
{"seeder": KIND, "peers": K, "round": R, "error": TEXT}. Prints one table
per peer count (rows: seeder x round) and a summary with the
libtorrent / ringseed ratios of the medians over rounds.
"""

import json
import statistics
import sys

GIB = 1 << 30
MIB = 1 << 20


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def cpu_per_gib(rep, who):
    part = rep.get(who) or {}
    user = part.get("cpu_user_s_per_gib")
    sys_ = part.get("cpu_system_s_per_gib")
    if user is None or sys_ is None:
        return None, None, None
    return user + sys_, user, sys_


def row(rec):
    rep = rec.get("report")
    if rep is None:
        err = str(rec.get("error", "?")).replace("|", "/")
        return f"| {rec['seeder']} | {rec['round']} | failed: {err} | | | | | | | |"
    seeder = rep.get("seeder") or {}
    peers = rep.get("peers") or {}
    lat = rep.get("latency") or {}
    s_tot, s_user, s_sys = cpu_per_gib(rep, "seeder")
    g_tot, _, _ = cpu_per_gib(rep, "loadgen")
    rss = seeder.get("peak_rss_bytes")
    return "| " + " | ".join([
        rec["seeder"],
        str(rec["round"]),
        fmt(rep.get("goodput_mb_per_s", 0) / 1000, 2),
        f"{rep.get('peers_connected', '?')}/{peers.get('count', '?')}",
        f"{fmt(s_tot, 3)} ({fmt(s_user, 3)} + {fmt(s_sys, 3)})",
        "n/a" if rss is None else f"{rss / MIB:.0f}",
        f"{fmt(lat.get('p50_ms'), 2)} / {fmt(lat.get('p99_ms'), 2)}",
        fmt(peers.get("jain_index"), 3),
        " / ".join(fmt(peers.get(k), 1) for k in
                   ("rate_min_mb_per_s", "rate_median_mb_per_s", "rate_max_mb_per_s")),
        fmt(g_tot, 3),
    ]) + " |"


HEADER = ("| seeder | round | goodput GB/s | peers connected | seeder CPU s/GiB (user + sys) "
          "| seeder peak RSS MiB | latency p50 / p99 ms | Jain | per-peer MB/s min / median / max "
          "| generator CPU s/GiB |\n|---|---|---|---|---|---|---|---|---|---|")


def median_of(recs, seeder, key):
    vals = []
    for r in recs:
        rep = r.get("report")
        if r["seeder"] != seeder or rep is None:
            continue
        if key == "goodput":
            vals.append(rep.get("goodput_mb_per_s", 0) / 1000)
        else:
            tot, _, _ = cpu_per_gib(rep, "seeder")
            if tot is not None:
                vals.append(tot)
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: report.py RESULTS.jsonl")
    recs = []
    with open(sys.argv[1]) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError as e:
                print(f"report.py: line {n} is not JSON: {e}", file=sys.stderr)
    peer_counts = []
    for r in recs:
        if r["peers"] not in peer_counts:
            peer_counts.append(r["peers"])
    summary = []
    for k in peer_counts:
        these = [r for r in recs if r["peers"] == k]
        print(f"### {k} peers\n\n{HEADER}")
        for r in these:
            print(row(r))
        print()
        g_rs = median_of(these, "ringseed", "goodput")
        g_lt = median_of(these, "libtorrent", "goodput")
        c_rs = median_of(these, "ringseed", "cpu")
        c_lt = median_of(these, "libtorrent", "cpu")
        summary.append((k, g_rs, g_lt, ratio(g_lt, g_rs), c_rs, c_lt, ratio(c_lt, c_rs)))
    print("### Summary (medians over rounds)\n")
    print("| peers | goodput GB/s ringseed | libtorrent | libtorrent / ringseed "
          "| seeder CPU s/GiB ringseed | libtorrent | libtorrent / ringseed |")
    print("|---|---|---|---|---|---|---|")
    for k, g_rs, g_lt, g_r, c_rs, c_lt, c_r in summary:
        print(f"| {k} | {fmt(g_rs)} | {fmt(g_lt)} | {fmt(g_r)} "
              f"| {fmt(c_rs, 3)} | {fmt(c_lt, 3)} | {fmt(c_r)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
