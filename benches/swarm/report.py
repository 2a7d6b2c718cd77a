#!/usr/bin/python3
"""Markdown tables from the swarm bench's results file.

  report.py [--mode peers|torrents|scaling|slots] RESULTS.jsonl

Each line of RESULTS.jsonl is one run of benches/swarm/run.sh:
{"seeder", "mode", "shards", "torrents", "peers", "delay_ms", "round", ...,
"report": <ringseed-bench leech --json output>} or, for a failed run, the
same with "error": TEXT instead of "report" (lines from before the modes
existed count as mode peers, one torrent). For each mode present (or the
one asked for) it prints one table per point (peers: per peer count;
torrents: per torrents x peers; scaling: per shard count; slots: per
ringseed --upload-slots value and peer count), rows seeder x round, then a summary of the medians over rounds: for peers and torrents
each seeder's goodput and CPU per GiB with its ratio to ringseed's, for
scaling each shard count's goodput with its ratio to the first count's, for
slots each setting's goodput, fairness and per-peer rates.
"""

import argparse
import json
import statistics
import sys

MIB = 1 << 20
MODES = ("peers", "torrents", "scaling", "slots")
LINE_CHARS_MAX = 16 << 20


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def cpu_per_gib(rep, who):
    part = rep.get(who) or {}
    user = part.get("cpu_user_s_per_gib")
    sys_ = part.get("cpu_system_s_per_gib")
    if user is None or sys_ is None:
        return None, None, None
    return user + sys_, user, sys_


def mode_of(rec):
    return rec.get("mode") or "peers"


def point_of(rec):
    """The point a run belongs to, within its mode (sortable)."""
    # -1: on loopback (no delay line); 0 and up: through the delay line.
    delay = rec.get("delay_ms")
    delay = -1 if delay is None else delay
    mode = mode_of(rec)
    if mode == "scaling":
        return (delay, rec.get("shards") or 0, rec.get("torrents") or 1, rec["peers"])
    if mode == "slots":
        slots = str(rec.get("slots") or "?")
        # Numbers first, in order, then the named settings.
        key = (0, int(slots), slots) if slots.isdigit() else (1, 0, slots)
        return (delay, key, rec.get("torrents") or 1, rec["peers"])
    return (delay, rec.get("torrents") or 1, rec["peers"])


def point_label(mode, point):
    delay = point[0]
    extra = f", +{delay} ms RTT (delay line)" if delay >= 0 else ""
    if mode == "scaling":
        _, shards, t, k = point
        return f"{shards} shard{'s' if shards != 1 else ''} ({t} torrents, {k} peers{extra})"
    if mode == "slots":
        _, (_, _, slots), _, k = point
        return f"--upload-slots {slots}, {k} peers{extra}"
    _, t, k = point
    if mode == "torrents":
        return f"{t} torrents x {k // t if t else k} peers ({k} peers{extra})"
    return f"{k} peers{extra}"


def torrents_served(rep):
    per = rep.get("per_torrent")
    if not isinstance(per, list):
        return "n/a"
    served = sum(1 for t in per if (t.get("bytes") or 0) > 0)
    return f"{served}/{len(per)}"


def row(rec, multi):
    rep = rec.get("report")
    cols = 11 if multi else 10
    if rep is None:
        err = str(rec.get("error", "?")).replace("|", "/").replace("\n", " ")
        return f"| {rec['seeder']} | {rec['round']} | failed: {err} |" + " |" * (cols - 3)
    seeder = rep.get("seeder") or {}
    peers = rep.get("peers") or {}
    lat = rep.get("latency") or {}
    s_tot, s_user, s_sys = cpu_per_gib(rep, "seeder")
    g_tot, _, _ = cpu_per_gib(rep, "loadgen")
    rss = seeder.get("peak_rss_bytes")
    cells = [
        rec["seeder"],
        str(rec["round"]),
        fmt(rep.get("goodput_mb_per_s", 0) / 1000, 2),
        f"{rep.get('peers_connected', '?')}/{peers.get('count', '?')}",
    ]
    if multi:
        cells.append(torrents_served(rep))
    cells += [
        f"{fmt(s_tot, 3)} ({fmt(s_user, 3)} + {fmt(s_sys, 3)})",
        "n/a" if rss is None else f"{rss / MIB:.0f}",
        f"{fmt(lat.get('p50_ms'), 2)} / {fmt(lat.get('p99_ms'), 2)}",
        fmt(peers.get("jain_index"), 3),
        " / ".join(fmt(peers.get(k), 1) for k in
                   ("rate_min_mb_per_s", "rate_median_mb_per_s", "rate_max_mb_per_s")),
        fmt(g_tot, 3),
    ]
    return "| " + " | ".join(cells) + " |"


def header(multi):
    cols = ["seeder", "round", "goodput GB/s", "peers connected"]
    if multi:
        cols.append("torrents served")
    cols += ["seeder CPU s/GiB (user + sys)", "seeder peak RSS MiB", "latency p50 / p99 ms",
             "Jain", "per-peer MB/s min / median / max", "generator CPU s/GiB"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def metric(rep, key):
    if key == "goodput":
        return rep.get("goodput_mb_per_s", 0) / 1000
    if key == "cpu":
        return cpu_per_gib(rep, "seeder")[0]
    if key == "rss":
        rss = (rep.get("seeder") or {}).get("peak_rss_bytes")
        return None if rss is None else rss / MIB
    if key == "jain":
        return (rep.get("peers") or {}).get("jain_index")
    if key == "p99":
        return (rep.get("latency") or {}).get("p99_ms")
    if key in ("rate_min", "rate_median", "rate_max"):
        return (rep.get("peers") or {}).get(key + "_mb_per_s")
    raise KeyError(key)


def median_of(recs, seeder, key):
    vals = []
    for r in recs:
        rep = r.get("report")
        if r["seeder"] != seeder or rep is None:
            continue
        v = metric(rep, key)
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def seeders_in(recs):
    out = []
    for r in recs:
        if r["seeder"] not in out:
            out.append(r["seeder"])
    # ringseed first: the ratios are against it.
    return sorted(out, key=lambda s: s != "ringseed")


def print_mode(mode, recs):
    points = sorted({point_of(r) for r in recs})
    multi = mode not in ("peers", "slots")
    titles = {
        "peers": "one torrent, a peer count per table",
        "torrents": "many torrents, a few peers on each",
        "scaling": "ringseed with 1, 2, ... shards on the same load",
        "slots": "ringseed's per-peer rates with a few upload slots and with unchoke-all",
    }
    print(f"## Mode {mode}: {titles.get(mode, '')}\n")
    for p in points:
        these = [r for r in recs if point_of(r) == p]
        print(f"### {point_label(mode, p)}\n\n{header(multi)}")
        for r in these:
            print(row(r, multi))
        print()
    print(f"### Summary, mode {mode} (medians over rounds)\n")
    if mode == "slots":
        print("| upload slots | peers | goodput GB/s | Jain | per-peer MB/s min / median / max "
              "| latency p99 ms | seeder CPU s/GiB | runs |")
        print("|---|---|---|---|---|---|---|---|")
        for p in points:
            these = [r for r in recs if point_of(r) == p]
            ok = sum(1 for r in these if r.get("report") is not None)
            rates = " / ".join(fmt(median_of(these, "ringseed", k), 1)
                               for k in ("rate_min", "rate_median", "rate_max"))
            print(f"| {p[1][2]} | {p[3]} | {fmt(median_of(these, 'ringseed', 'goodput'))} "
                  f"| {fmt(median_of(these, 'ringseed', 'jain'), 3)} | {rates} "
                  f"| {fmt(median_of(these, 'ringseed', 'p99'), 2)} "
                  f"| {fmt(median_of(these, 'ringseed', 'cpu'), 3)} | {ok}/{len(these)} |")
        print()
        return
    if mode == "scaling":
        print("| shards | torrents | peers | goodput GB/s | / first shard count "
              "| seeder CPU s/GiB | Jain | latency p99 ms | runs |")
        print("|---|---|---|---|---|---|---|---|---|")
        base = None
        for p in points:
            these = [r for r in recs if point_of(r) == p]
            g = median_of(these, "ringseed", "goodput")
            if base is None:
                base = g
            ok = sum(1 for r in these if r.get("report") is not None)
            print(f"| {p[1]} | {p[2]} | {p[3]} | {fmt(g)} | {fmt(ratio(g, base))} "
                  f"| {fmt(median_of(these, 'ringseed', 'cpu'), 3)} "
                  f"| {fmt(median_of(these, 'ringseed', 'jain'), 3)} "
                  f"| {fmt(median_of(these, 'ringseed', 'p99'), 2)} | {ok}/{len(these)} |")
        print()
        return
    first = "peers" if mode == "peers" else "torrents x peers"
    print(f"| {first} | seeder | goodput GB/s | / ringseed | seeder CPU s/GiB | / ringseed "
          "| seeder peak RSS MiB | Jain | latency p99 ms | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in points:
        these = [r for r in recs if point_of(r) == p]
        label = point_label(mode, p)
        g_rs = median_of(these, "ringseed", "goodput")
        c_rs = median_of(these, "ringseed", "cpu")
        for s in seeders_in(these):
            g = median_of(these, s, "goodput")
            c = median_of(these, s, "cpu")
            runs = [r for r in these if r["seeder"] == s]
            ok = sum(1 for r in runs if r.get("report") is not None)
            same = s == "ringseed"
            print(f"| {label} | {s} | {fmt(g)} | {'' if same else fmt(ratio(g, g_rs))} "
                  f"| {fmt(c, 3)} | {'' if same else fmt(ratio(c, c_rs))} "
                  f"| {fmt(median_of(these, s, 'rss'), 0)} | {fmt(median_of(these, s, 'jain'), 3)} "
                  f"| {fmt(median_of(these, s, 'p99'), 2)} | {ok}/{len(runs)} |")
    print()


def load(path):
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if len(line) > LINE_CHARS_MAX:
                print(f"report.py: line {n} is over {LINE_CHARS_MAX} characters: skipped",
                      file=sys.stderr)
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"report.py: line {n} is not JSON: {e}", file=sys.stderr)
                continue
            if not isinstance(rec, dict) or "seeder" not in rec or "peers" not in rec:
                print(f"report.py: line {n} is not a run record: skipped", file=sys.stderr)
                continue
            rec.setdefault("round", "?")
            recs.append(rec)
    return recs


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=MODES)
    p.add_argument("results")
    args = p.parse_args()
    recs = load(args.results)
    modes = [args.mode] if args.mode else [m for m in MODES if any(mode_of(r) == m for r in recs)]
    for m in modes:
        these = [r for r in recs if mode_of(r) == m]
        if these:
            print_mode(m, these)
    return 0


if __name__ == "__main__":
    sys.exit(main())
