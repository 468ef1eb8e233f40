#!/usr/bin/env python3
"""Draws bench/run.sh section 8's side-by-side figures as one SVG: for each case, a bar per
server for CPU per message (lower is better) and one for messages per second (higher is
better). Each case's bars are scaled to the largest in that case, so a case with a slow peer
stays readable; every bar carries its value.

    python3 bench/chart.py cpu.tsv out.svg

Input: the TSV section 8 writes (case, server, msgs_per_s, cpu_us_per_msg; "-" = no figure).
"""
import csv
import sys
from html import escape

COLOURS = {"ours": "#2b6cb0", "smtp-sink": "#718096", "haraka": "#c05621", "aiosmtpd": "#805ad5"}
BAR, GAP, LABEL_W, PANEL_W = 16, 4, 250, 330


def num(v):
    try:
        return float(v)
    except ValueError:
        return None


def main(src, dst):
    rows = list(csv.DictReader(open(src), delimiter="\t"))
    cases = list(dict.fromkeys(r["case"] for r in rows))
    servers = list(dict.fromkeys(r["server"] for r in rows))
    by = {(r["case"], r["server"]): r for r in rows}
    panels = [("cpu_us_per_msg", "server CPU per message, us (lower is better)", "{:.0f} us"),
              ("msgs_per_s", "messages per second (higher is better)", "{:,.0f}/s")]
    group_h = len(servers) * (BAR + GAP) + 18
    height = 60 + len(cases) * group_h + 30
    width = LABEL_W + len(panels) * (PANEL_W + 90)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    for p, (_, title, _) in enumerate(panels):
        x0 = LABEL_W + p * (PANEL_W + 90)
        out.append(f'<text x="{x0}" y="24" font-weight="bold">{escape(title)}</text>')
    y = 50
    for case in cases:
        out.append(f'<text x="8" y="{y + 12}" font-weight="bold">{escape(case)}</text>')
        for p, (key, _, fmt) in enumerate(panels):
            x0 = LABEL_W + p * (PANEL_W + 90)
            values = [num(by.get((case, s), {}).get(key, "-")) for s in servers]
            top = max([v for v in values if v] or [1])
            for i, (s, v) in enumerate(zip(servers, values)):
                yy = y + 18 + i * (BAR + GAP)
                if p == 0:
                    out.append(f'<text x="{LABEL_W - 8}" y="{yy + 12}" text-anchor="end">{escape(s)}</text>')
                if v is None:
                    out.append(f'<text x="{x0}" y="{yy + 12}" fill="#999">no figure</text>')
                    continue
                w = max(1.0, PANEL_W * v / top)
                colour = COLOURS.get(s, "#999")
                out.append(f'<rect x="{x0}" y="{yy}" width="{w:.1f}" height="{BAR}" fill="{colour}"/>')
                out.append(f'<text x="{x0 + w + 4:.1f}" y="{yy + 12}">{escape(fmt.format(v))}</text>')
        y += group_h
    out.append(f'<text x="8" y="{height - 10}" fill="#555">bench/run.sh section 8; bars scaled '
               f'to the largest in each case; one machine, one run</text>')
    out.append("</svg>")
    open(dst, "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
