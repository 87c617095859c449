#!/usr/bin/env python3
"""SVG charts of a benchmark run, written by hand (no plotting library).

    bench/charts.py RESULTS.jsonl OUTDIR [NOTE]

From the result lines of bench/run.sh (or bench/peers/nchan.sh) writes into OUTDIR:

    throughput.svg       deliveries/s per workload and server (higher is better)
    cpu.svg              server CPU ns per delivery per workload and server (lower is better)
    latency-cdf-wN.svg   for each workload N with latencies: the share of deliveries
                         (y) that arrived within a latency (x, log scale), one line per
                         server

Each (workload, server) is its median run by deliveries/s, as in the tables. NOTE (e.g.
the date and "QUICK=1") goes under every title. Standard library only; run at bench
time, never by the server.
"""
import json
import math
import os
import sys
from xml.sax.saxutils import escape

TITLES = {
    "1": "fan-out, 1 post in flight",
    "2": "fan-out, pipeline 32",
    "3": "sustained, pipeline 32",
    "4": "idle subscribers",
    "5": "64 KiB messages",
    "6": "fixed rate",
}
COLORS = {"sse-server": "#1f6feb", "baseline": "#8b949e", "nchan": "#d1731c"}
OTHER_COLORS = ["#2da44e", "#a371f7", "#cf222e"]
FONT = "font-family='system-ui, -apple-system, Segoe UI, Roboto, sans-serif'"


# sse-server at several loop counts (THREADS="1 2 ...": sse-server-t1, -t2, ...):
# shades of sse-server's blue, light to dark in the order of the run.
THREAD_COLORS = ["#9cc3ff", "#5c9dff", "#1f6feb", "#1553b5", "#0b3780", "#06214d"]


def color(server, servers):
    if server in COLORS:
        return COLORS[server]
    variants = [s for s in servers if s.startswith("sse-server-t")]
    if server in variants:
        return THREAD_COLORS[variants.index(server) % len(THREAD_COLORS)]
    others = [s for s in servers if s not in COLORS and s not in variants]
    return OTHER_COLORS[others.index(server) % len(OTHER_COLORS)]


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def load(path):
    """{(workload, server): median run}, workloads and servers in order of appearance."""
    runs, ws, ss = {}, [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            w, _, s = r.get("label", "W?/?")[1:].partition("/")
            runs.setdefault((w, s), []).append(r)
            if w not in ws:
                ws.append(w)
            if s not in ss:
                ss.append(s)
    med = {}
    for key, rs in runs.items():
        rs.sort(key=lambda r: num(r.get("deliv_per_s")) or 0)
        med[key] = rs[(len(rs) - 1) // 2]
    return med, ws, ss


def fmt(v):
    if v >= 1e6:
        return f"{v / 1e6:.3g}M"
    if v >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def svg_open(w, h, title, note):
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' "
        f"viewBox='0 0 {w} {h}' {FONT} font-size='12'>",
        f"<rect width='{w}' height='{h}' fill='#ffffff'/>",
        f"<text x='16' y='24' font-size='15' font-weight='600' fill='#1b1f24'>{escape(title)}</text>",
        f"<text x='16' y='42' fill='#5b6470'>{escape(note)}</text>",
    ]


def legend(out, servers, x, y):
    for s in servers:
        out.append(f"<rect x='{x}' y='{y - 9}' width='10' height='10' fill='{color(s, servers)}'/>")
        out.append(f"<text x='{x + 14}' y='{y}' fill='#1b1f24'>{escape(s)}</text>")
        x += 24 + 7 * len(s)


def nice_step(vmax):
    """A round step (1, 2 or 5 times a power of ten) giving about four ticks."""
    raw = vmax / 4
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def bars(med, ws, ss, key, title, note, path, log=False):
    """Grouped bars: one group per workload, one bar per server; `log` for a
    logarithmic value axis (figures that span decades)."""
    groups = [w for w in ws if any(num(med.get((w, s), {}).get(key)) for s in ss)]
    if not groups:
        return False
    servers = [s for s in ss if any(num(med.get((w, s), {}).get(key)) for w in groups)]
    W, H, left, top, bottom = 760, 360, 70, 70, 300
    plot_w = W - left - 20
    vals = [num(med[(w, s)][key]) for w in groups for s in servers if (w, s) in med]
    vals = [v for v in vals if v]
    if log:
        lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)) + 0.1)
        ticks = [10 ** e for e in range(lo, hi + 1)]

        def height(v):
            return (bottom - top - 10) * (math.log10(v) - lo) / (hi - lo)
    else:
        step = nice_step(max(vals))
        ticks = [step * i for i in range(int(max(vals) * 1.1 / step) + 2)]

        def height(v):
            return (bottom - top - 10) * v / ticks[-1]
    out = svg_open(W, H, title, note)
    legend(out, servers, left, 60)
    for v in ticks:
        y = bottom - height(v) if v > 0 else bottom
        out.append(f"<line x1='{left}' y1='{y:.1f}' x2='{W - 20}' y2='{y:.1f}' stroke='#d9dde3'/>")
        out.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' fill='#5b6470'>{fmt(v)}</text>")
    gw = plot_w / len(groups)
    bw = min(48, (gw - 20) / len(servers))
    for gi, w in enumerate(groups):
        gx = left + gi * gw + (gw - bw * len(servers)) / 2
        for si, s in enumerate(servers):
            v = num(med.get((w, s), {}).get(key))
            x = gx + si * bw
            if not v:
                continue
            h = height(v)
            out.append(f"<rect x='{x + 2:.1f}' y='{bottom - h:.1f}' width='{bw - 4:.1f}' height='{h:.1f}' "
                       f"fill='{color(s, servers)}'><title>{escape(s)}: {v:g}</title></rect>")
            out.append(f"<text x='{x + bw / 2:.1f}' y='{bottom - h - 4:.1f}' text-anchor='middle' "
                       f"font-size='10' fill='#1b1f24'>{fmt(v)}</text>")
        out.append(f"<text x='{left + gi * gw + gw / 2:.1f}' y='{bottom + 18}' text-anchor='middle' "
                   f"fill='#1b1f24'>workload {escape(w)}</text>")
        out.append(f"<text x='{left + gi * gw + gw / 2:.1f}' y='{bottom + 33}' text-anchor='middle' "
                   f"font-size='11' fill='#5b6470'>{escape(TITLES.get(w, ''))}</text>")
    if log:
        out.append(f"<text x='{W - 20}' y='{bottom + 50}' text-anchor='end' font-size='11' "
                   "fill='#5b6470'>log scale</text>")
    out.append(f"<line x1='{left}' y1='{bottom}' x2='{W - 20}' y2='{bottom}' stroke='#5b6470'/>")
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def cdf_points(run):
    pts = []
    for part in (run.get("lat_cdf_us") or "").split():
        q, _, v = part.partition(":")
        q, v = num(q), num(v)
        if q is not None and v is not None and v > 0:
            pts.append((v, q))
    return pts


def cdf(med, w, ss, title, note, path):
    """Share of deliveries (y) within a latency (x, log scale), a line per server."""
    lines = {s: cdf_points(med[(w, s)]) for s in ss if (w, s) in med}
    lines = {s: p for s, p in lines.items() if p}
    if not lines:
        return False
    servers = list(lines)
    W, H, left, top, right, bottom = 760, 380, 60, 70, 720, 320
    lo = min(v for p in lines.values() for v, _ in p)
    hi = max(v for p in lines.values() for v, _ in p)
    x0, x1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if x1 == x0:
        x1 += 1

    def sx(v):
        return left + (right - left) * (math.log10(v) - x0) / (x1 - x0)

    def sy(q):
        return bottom - (bottom - top) * q

    out = svg_open(W, H, title, note)
    legend(out, servers, left, 60)
    for i in range(5):
        q = i / 4
        out.append(f"<line x1='{left}' y1='{sy(q):.1f}' x2='{right}' y2='{sy(q):.1f}' stroke='#d9dde3'/>")
        out.append(f"<text x='{left - 6}' y='{sy(q) + 4:.1f}' text-anchor='end' fill='#5b6470'>{int(q * 100)}%</text>")
    for e in range(x0, x1 + 1):
        x = sx(10 ** e)
        label = f"{10 ** e:g} µs" if e < 3 else f"{10 ** (e - 3):g} ms" if e < 6 else f"{10 ** (e - 6):g} s"
        out.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{bottom}' stroke='#d9dde3'/>")
        out.append(f"<text x='{x:.1f}' y='{bottom + 16}' text-anchor='middle' fill='#5b6470'>{label}</text>")
    out.append(f"<text x='{(left + right) / 2}' y='{bottom + 36}' text-anchor='middle' fill='#1b1f24'>"
               "latency, publish to delivery (log scale)</text>")
    out.append(f"<text x='16' y='{(top + bottom) / 2}' transform='rotate(-90 16 {(top + bottom) / 2})' "
               "text-anchor='middle' fill='#1b1f24'>deliveries within</text>")
    for s in servers:
        pts = sorted(lines[s], key=lambda p: p[1])
        d = " ".join(f"{'M' if i == 0 else 'L'}{sx(v):.1f},{sy(q):.1f}" for i, (v, q) in enumerate(pts))
        out.append(f"<path d='{d}' fill='none' stroke='{color(s, servers)}' stroke-width='2'>"
                   f"<title>{escape(s)}</title></path>")
    out.append(f"<line x1='{left}' y1='{bottom}' x2='{right}' y2='{bottom}' stroke='#5b6470'/>")
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    return True


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    med, ws, ss = load(argv[1])
    outdir, note = argv[2], argv[3] if len(argv) > 3 else ""
    os.makedirs(outdir, exist_ok=True)
    written = []
    if bars(med, ws, ss, "deliv_per_s", "Throughput: deliveries per second (higher is better)",
            note, os.path.join(outdir, "throughput.svg")):
        written.append("throughput.svg")
    if bars(med, ws, ss, "srv_ns_per_delivery",
            "Server CPU per delivery, ns (lower is better)", note, os.path.join(outdir, "cpu.svg"),
            log=True):
        written.append("cpu.svg")
    for w in ws:
        name = f"latency-cdf-w{w}.svg"
        if cdf(med, w, ss, f"Latency distribution, workload {w} ({TITLES.get(w, '')})", note,
               os.path.join(outdir, name)):
            written.append(name)
    print("charts: " + ", ".join(os.path.join(outdir, n) for n in written))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
