"""`pmdswap-fuzz report DIR`: one self-contained HTML page for a campaign's artifacts directory.

For each campaign (its `stats-*.jsonl`, written by `run`): executions and coverage over time, as
inline SVG charts. For each finding (`*.trace`, not the `.min.trace` minimisations): the divergence,
and the rulers of every process it involves before and after the diverging op, one per model,
coloured by page state, each page's values in its tooltip and in a table for the diverging pages.
No script, no external file: the page opens from disk, in a CI artifact viewer or a mail.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, UNMAPPED, describe_vmas

from .explain import RULER_ROW, Around, replay_around
from .guard import run_guarded
from .loader import BadInput, header_bug, load_input
from .trace import TraceError, format_op

__all__ = ["Campaign", "load_campaigns", "finding_files", "render_report", "STATE_COLOURS"]

# page state (and PMD level) -> (ruler letter, colour, legend); the letters are repro's
STATE_COLOURS = {
    (PRESENT, True): ("H", "#1b7837", "present, PMD-mapped"),
    (PRESENT, False): ("p", "#7fbf7b", "present, PTE-mapped"),
    (SWAPPED, True): ("S", "#b2182b", "PMD swap entry"),
    (SWAPPED, False): ("s", "#ef8a62", "PTE swap entry"),
    (NONE, False): (".", "#cccccc", "none"),
    (UNMAPPED, False): (" ", "#ffffff", "no VMA"),
}
CELL = 10  # px per page in a ruler
MAX_VALUE_ROWS = 16  # diverging pages listed with their values


@dataclass
class Campaign:
    path: Path
    campaign: dict
    rows: list[dict] = field(default_factory=list)
    skipped: int = 0  # lines that were not JSON objects (a campaign killed mid-write)


def load_campaigns(d: Path) -> list[Campaign]:
    out = []
    for p in sorted(d.glob("stats-*.jsonl")):
        c = Campaign(p, {})
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                c.skipped += 1
                continue
            if not isinstance(obj, dict):
                c.skipped += 1
            elif "campaign" in obj:
                c.campaign = obj["campaign"] if isinstance(obj["campaign"], dict) else {}
            elif isinstance(obj.get("t"), (int, float)):
                c.rows.append(obj)
            else:
                c.skipped += 1
        out.append(c)
    return out


def finding_files(d: Path) -> list[Path]:
    return sorted(p for p in d.glob("*.trace") if not p.name.endswith(".min.trace"))


# ---- charts -------------------------------------------------------------------------------------
def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    e = 10 ** np.floor(np.log10(v))
    for m in (1, 2, 5, 10):
        if v <= m * e:
            return float(m * e)
    return float(10 * e)


def _tick(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) else f"{v:,.2f}".rstrip("0")


def svg_chart(title: str, series: list[tuple[str, str, list[tuple[float, float]]]],
              xlabel: str = "seconds", w: int = 520, h: int = 220) -> str:
    """A line chart of (label, colour, points) series on shared axes from 0."""
    pts = [p for _, _, s in series for p in s]
    if not pts:
        return f'<p class="muted">{html.escape(title)}: no data</p>'
    left, right, top, bottom = 60, 12, 28, 36
    xmax = _nice_max(max(x for x, _ in pts))
    ymax = _nice_max(max(y for _, y in pts))
    px = lambda x: left + (w - left - right) * x / xmax  # noqa: E731
    py = lambda y: h - bottom - (h - top - bottom) * y / ymax  # noqa: E731
    out = [f'<svg class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">',
           f'<text x="{left}" y="16" class="ct">{html.escape(title)}</text>']
    for i in range(5):  # grid and tick labels
        yv, xv = ymax * i / 4, xmax * i / 4
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{py(yv):.1f}" y2="{py(yv):.1f}" '
                   'stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{py(yv) + 4:.1f}" text-anchor="end" class="tk">'
                   f'{_tick(yv)}</text>')
        out.append(f'<text x="{px(xv):.1f}" y="{h - bottom + 14}" text-anchor="middle" '
                   f'class="tk">{_tick(xv)}</text>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle" '
               f'class="tk">{html.escape(xlabel)}</text>')
    for n, (label, colour, s) in enumerate(series):
        if not s:
            continue
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{d}"/>')
        lx = left + 8 + 150 * n
        out.append(f'<rect x="{lx}" y="{top + 4}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{lx + 14}" y="{top + 13}" class="tk">{html.escape(label)} '
                   f'({s[-1][1]:,.0f})</text>')
    out.append("</svg>")
    return "".join(out)


def _series(rows: list[dict], key: str) -> list[tuple[float, float]]:
    return [(float(r["t"]), float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]


def campaign_section(c: Campaign) -> str:
    cp = c.campaign
    what = ", ".join(f"{k} {html.escape(str(cp[k]))}" for k in
                     ("engine", "seed", "time", "bug", "jobs", "length", "profile") if cp.get(k) is not None)
    last = c.rows[-1] if c.rows else {}
    facts = (f"{last.get('execs', 0):,} executions, {last.get('divergences', 0)} divergences "
             f"({last.get('unique', 0)} unique), {last.get('cells', 0)} coverage cells"
             f" in {last.get('t', 0):.1f} s") if c.rows else "no rows"
    cov = [("cells (entry state x op)", "#2166ac", _series(c.rows, "cells"))]
    if _series(c.rows, "edges"):
        cov.append(("libFuzzer edges", "#762a83", _series(c.rows, "edges")))
    charts = (svg_chart("executions", [("executions", "#1b7837", _series(c.rows, "execs"))])
              + svg_chart("coverage", cov))
    skipped = f' <span class="muted">({c.skipped} unreadable lines skipped)</span>' if c.skipped else ""
    return (f'<section class="campaign"><h2>{html.escape(c.path.name)}</h2>'
            f"<p>{what or 'campaign line missing'}: {facts}{skipped}</p>"
            f'<div class="charts">{charts}</div></section>')


# ---- rulers -------------------------------------------------------------------------------------
def _state_key(po, p: int) -> tuple[int, bool]:
    s = int(po.state[p])
    return (s, bool(po.pmd_level[p]) and s in (PRESENT, SWAPPED))


def page_values(po, p: int) -> str:
    """What pagemap and a read show of page p, as one line."""
    key = _state_key(po, p)
    parts = [f"page {p}", STATE_COLOURS.get(key, ("?", "", "?"))[2]]
    if key[0] in (PRESENT, SWAPPED):
        parts.append(f"contents {int(po.contents[p])}")
    if key[0] == SWAPPED:
        parts.append(f"swap offset {int(po.swp_off[p])}")
    flags = [n for n, a in (("soft-dirty", po.soft_dirty), ("uffd-wp", po.uffd_wp),
                            ("exclusive", po.exclusive), ("writable", po.writable)) if a[p]]
    return ", ".join(parts + flags)


def svg_ruler(po, r: int, marked: set[int], differs: set[int]) -> str:
    """Region r of one process: 8 rows of 64 pages; diverging pages outlined black, pages where
    the models differ (state, contents, swap offset, soft-dirty, uffd-wp) outlined red."""
    rows = O.HPAGE_PMD_NR // RULER_ROW
    w, h = 34 + RULER_ROW * CELL, rows * CELL + 2
    out = [f'<svg class="ruler" width="{w}" height="{h}" viewBox="0 0 {w} {h}">']
    lo = r * O.HPAGE_PMD_NR
    for i in range(O.HPAGE_PMD_NR):
        p = lo + i
        row, col = divmod(i, RULER_ROW)
        if col == 0:
            out.append(f'<text x="30" y="{row * CELL + CELL - 1}" text-anchor="end" class="off">'
                       f"+{i}</text>")
        colour = STATE_COLOURS.get(_state_key(po, p), ("?", "#ff00ff", ""))[1]
        stroke = (' stroke="#d00000" stroke-width="2"' if p in differs
                  else ' stroke="#000" stroke-width="1.5"' if p in marked else "")
        out.append(f'<rect x="{34 + col * CELL}" y="{row * CELL + 1}" width="{CELL - 1}" '
                   f'height="{CELL - 1}" fill="{colour}"{stroke}>'
                   f"<title>{html.escape(page_values(po, p))}</title></rect>")
    out.append("</svg>")
    return "".join(out)


def _differing_pages(a, b, r: int) -> set[int]:
    sl = slice(r * O.HPAGE_PMD_NR, (r + 1) * O.HPAGE_PMD_NR)
    diff = ((a.state[sl] != b.state[sl]) | (a.contents[sl] != b.contents[sl])
            | (a.swp_off[sl] != b.swp_off[sl]) | (a.soft_dirty[sl] != b.soft_dirty[sl])
            | (a.uffd_wp[sl] != b.uffd_wp[sl]))
    return {r * O.HPAGE_PMD_NR + int(i) for i in np.nonzero(diff)[0]}


def _region_block(st: Around, pid: int, r: int, marked: set[int]) -> str:
    lo = r * O.HPAGE_PMD_NR
    cols = []
    for when, obs in (("before", st.before), ("after", st.after)):
        pos = [o.procs.get(pid) for o in obs]
        differs = (_differing_pages(pos[0], pos[1], r) if len(pos) == 2 and None not in pos
                   else set())
        lines = [f"<h4>{when} the op</h4>"]
        for name, po in zip(st.names, pos, strict=False):
            if po is None:
                lines.append(f'<div class="rl"><b>{html.escape(name)}</b> (no such process)</div>')
                continue
            lines.append(f'<div class="rl"><b>{html.escape(name)}</b> '
                         f'<span class="muted">{html.escape(describe_vmas(po) or "(no VMA)")}</span>'
                         f"<br>{svg_ruler(po, r, marked, differs)}</div>")
        cols.append(f'<div class="when">{"".join(lines)}</div>')
    return (f'<div class="region"><h3>pid {pid}, region {r} (pages {lo}..{lo + O.HPAGE_PMD_NR - 1})'
            f'</h3><div class="pair">{"".join(cols)}</div></div>')


def _values_table(st: Around, div) -> str:
    pages = [int(p) for p in (div.pages or [])][:MAX_VALUE_ROWS]
    pid = div.pid if div.pid is not None else getattr(div.op, "pid", None)
    if not pages or pid is None:
        return ""
    head = "".join(f"<th>{html.escape(n)} {w}</th>" for w in ("before", "after") for n in st.names)
    body = []
    for p in pages:
        cells = []
        for obs in (st.before, st.after):
            for o in obs:
                po = o.procs.get(pid)
                cells.append(html.escape(page_values(po, p)) if po is not None else "-")
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    more = (f'<p class="muted">{len(div.pages) - len(pages)} more diverging pages not listed</p>'
            if len(div.pages) > len(pages) else "")
    return (f'<table class="values"><tr>{head}</tr>{"".join(body)}</table>{more}')


def finding_section(path: Path) -> str:
    title = f"<h2>{html.escape(path.name)}</h2>"
    try:
        ops, _kind = load_input(path)
    except (TraceError, BadInput, OSError) as e:
        why = html.escape(str(e))
        return f'<section class="finding">{title}<p class="bad">not readable: {why}</p></section>'
    bug = header_bug(path)
    div = run_guarded(ops, bug).divergence
    injected = f"bug {html.escape(bug)} injected" if bug else "no bug injected"
    if div is None:
        return (f'<section class="finding">{title}<p class="bad">{len(ops)} ops, {injected}: '
                "does not diverge (any more)</p></section>")
    st = replay_around(ops, div, bug)
    marked = {int(p) for p in (div.pages or [])}
    facts = [("signature", div.signature()), ("rule", div.rule),
             ("op", f"#{div.op_index} of {len(ops)}: {format_op(div.op)}"),
             ("pid", "-" if div.pid is None else str(div.pid)), ("detail", div.detail)]
    facts += [(n, str(v)) for n, v in zip(st.names, (div.legacy, div.pmd), strict=False)]
    facts += [(f"{n} raised", e) for n, e in st.errors.items()]
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts)
    blocks = "".join(_region_block(st, pid, r, marked) for pid, r in st.regions)
    return (f'<section class="finding">{title}<p>{injected}; '
            f"<code>pmdswap-fuzz repro {html.escape(path.name)}</code> prints it as text</p>"
            f"<dl>{dl}</dl>{_values_table(st, div)}{blocks}</section>")


def _legend() -> str:
    return "".join(f'<span class="key"><span class="sw" style="background:{c}"></span>'
                   f"{html.escape(t)}</span>" for _l, c, t in STATE_COLOURS.values()) + (
        '<span class="key"><span class="sw" style="border:2px solid #000"></span>diverging page</span>'
        '<span class="key"><span class="sw" style="border:2px solid #d00000"></span>'
        "the models differ</span>")


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px} h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
h3{font-size:15px} h4{margin:4px 0;font-size:13px}
.muted{color:#777} .bad{color:#b00}
.charts,.pair{display:flex;flex-wrap:wrap;gap:24px}
.chart .ct{font-weight:600;font-size:13px} .tk{font-size:11px;fill:#555} .off{font-size:8px;fill:#777}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px} dt{font-weight:600}
dd{margin:0;font-family:ui-monospace,monospace;white-space:pre-wrap}
.rl{margin:6px 0} .key{margin-right:16px;white-space:nowrap}
.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border:1px solid #999}
table.values{border-collapse:collapse;font-size:12px;margin:8px 0}
table.values td,table.values th{border:1px solid #ddd;padding:2px 6px;text-align:left}
"""


def render_report(d: Path) -> tuple[str, int, int]:
    """(page, campaigns, findings) for artifacts directory d."""
    campaigns = load_campaigns(d)
    findings = finding_files(d)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>pmdswap-fuzz report: "
             f"{html.escape(d.name)}</title><style>{CSS}</style></head><body>",
             f"<h1>pmdswap-fuzz report: {html.escape(str(d))}</h1>",
             f"<p>{len(campaigns)} campaigns, {len(findings)} findings. Rulers: one square per "
             f"4 KiB page, {RULER_ROW} per row, hover a page for its values.</p>",
             f"<p>{_legend()}</p>"]
    parts += [campaign_section(c) for c in campaigns]
    if findings:
        parts.append("<h1>Findings</h1>")
    parts += [finding_section(p) for p in findings]
    parts.append("</body></html>")
    return "\n".join(parts), len(campaigns), len(findings)
