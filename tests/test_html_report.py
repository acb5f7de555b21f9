"""`pmdswap-fuzz report DIR` and the stats file campaigns write for it (issue 14 item 4).

The page is checked as a user gets it: a campaign run by the CLI, the report written by the CLI,
and, where Debian's chromium is installed (tools/install-browser.sh), rendered headless into a
screenshot that must show the rulers' colours.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from pmdswap_fuzz.fuzz.html_report import STATE_COLOURS, load_campaigns
from pmdswap_fuzz.fuzz.status import Stats, StatsLog
from pmdswap_fuzz.models.observe import PRESENT, SWAPPED

REPO = Path(__file__).resolve().parent.parent
BUG = "pagemap_base_offset"  # found by the random engine (seed 1) within its first executions


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fuzz", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    # a loaded machine may run only a few executions in a few seconds: a longer campaign then,
    # each in a fresh directory (one campaign's stats per directory)
    for secs in ("6", "20", "60"):
        art = tmp_path_factory.mktemp("art")
        r = cli("run", "--engine", "random", "--time", secs, "--seed", "1", "--bug", BUG,
                "--no-minimize", "--artifacts", str(art))
        if r.returncode == 1:  # the bug was found
            return art, r
    raise AssertionError(f"the random engine did not find {BUG} in 60 s: {r.stdout[-500:]}")


def test_a_campaign_writes_its_figures_over_time(campaign):
    art, r = campaign
    [c] = load_campaigns(art)
    assert c.skipped == 0
    assert c.campaign["engine"] == "random" and c.campaign["bug"] == BUG and c.campaign["seed"] == 1
    ts = [row["t"] for row in c.rows]
    assert len(ts) >= 3 and ts == sorted(ts)
    execs = [row["execs"] for row in c.rows]
    assert execs == sorted(execs)
    # the last row is the summary's figures: they add up
    summary = int(re.search(r"engine random: ([\d,]+) executions", r.stdout).group(1).replace(",", ""))
    assert execs[-1] == summary
    assert c.rows[-1]["unique"] >= 1 and c.rows[-1]["cells"] > 0
    assert f"stats: {c.path}" in r.stdout


def test_the_stats_log_stays_small_for_a_long_campaign(tmp_path):
    """A row at most every max(1 s, 1% of the time so far): an hour sampled every 0.1 s of
    campaign time gives a few hundred rows, not 36 000."""
    s = Stats(engine="random")
    log = StatsLog(tmp_path / "s.jsonl", {"engine": "random"})
    now = time.monotonic()
    for i in range(36_000):
        s.start = now - i * 0.1  # the campaign has run i * 0.1 s
        s.execs = i
        log.sample(s)
    log.sample(s, force=True)
    log.close()
    rows = (tmp_path / "s.jsonl").read_text().splitlines()
    assert 150 < len(rows) < 600
    assert json.loads(rows[-1])["execs"] == 35_999


def _report(art: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path | None]:
    r = cli("report", str(art), *extra)
    m = re.search(r"report: (\S+)", r.stdout)
    return r, Path(m.group(1)) if m else None


def test_report_shows_every_finding_with_both_models_around_the_op(campaign, tmp_path):
    art, _ = campaign
    out = tmp_path / "page.html"
    r, path = _report(art, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert path == out
    page = out.read_text()
    findings = sorted(p.name for p in art.glob("*.trace") if not p.name.endswith(".min.trace"))
    assert findings
    for name in findings:
        assert f"<h2>{name}</h2>" in page
    assert "does not diverge" not in page  # each saved finding reproduces with its bug
    assert f"bug {BUG} injected" in page
    assert page.count("<polyline") >= 2  # executions and coverage over time
    assert "before the op" in page and "after the op" in page
    assert "legacy" in page and f"pmd+{BUG}" in page
    # both models' values of a diverging page, in tooltips and the table
    assert re.search(r"page \d+, PTE swap entry, contents \d+, swap offset \d+", page)
    assert re.search(r"page \d+, PMD swap entry, contents \d+, swap offset \d+", page)
    assert 'stroke="#d00000"' in page  # the soft-dirty difference is outlined


def test_report_never_overwrites_and_refuses_what_is_not_a_campaign(campaign, tmp_path):
    art, _ = campaign
    r1, p1 = _report(art)
    r2, p2 = _report(art)
    assert r1.returncode == 0 and r2.returncode == 0
    assert p1 == art / "report.html" and p2 == art / "report-1.html"
    first = p1.read_bytes()
    assert p2.exists() and p1.read_bytes() == first
    mine = tmp_path / "mine.html"
    mine.write_text("keep me")
    r = cli("report", str(art), "-o", str(mine))
    assert r.returncode == 2 and "exists" in r.stderr and mine.read_text() == "keep me"
    for bad, why in ((tmp_path / "nope", "not a directory"), (tmp_path, "not a campaign")):
        r = cli("report", str(bad))
        assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr


# ---- in a real browser --------------------------------------------------------------------------
def read_png(path: Path) -> np.ndarray:
    """RGB(A) pixels of an 8-bit non-interlaced PNG (what chromium's --screenshot writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f, line = raw[y * (stride + 1)], np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1)
        cur = line.astype(np.int32)
        if f == 2:
            cur = (cur + prev) & 255
        elif f in (1, 3, 4):  # these depend on the left neighbour: one byte at a time
            cur = cur.copy()
            for x in range(stride):
                a = cur[x - bpp] if x >= bpp else 0
                b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[x] = (cur[x] + pred) & 255
        out[y], prev = cur, cur
    return out.reshape(h, w, bpp)[:, :, :3]


def _hex(c: str) -> tuple[int, int, int]:
    return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="no chromium (tools/install-browser.sh installs Debian's)")
def test_the_report_renders_in_chromium_with_the_rulers_colours(campaign, tmp_path):
    art, _ = campaign
    page = tmp_path / "r.html"
    r, _ = _report(art, "-o", str(page))
    assert r.returncode == 0, r.stderr
    shot = tmp_path / "shot.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
           f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert shot.exists(), "chromium wrote no screenshot"
    px = read_png(shot)
    assert px.shape[0] >= 1000 and px.shape[1] >= 1000
    flat = px.reshape(-1, 3)
    white = (flat == 255).all(axis=1).mean()
    assert white < 0.95, "the page is blank"
    colours = {tuple(c) for c in np.unique(flat, axis=0)}
    # the finding's rulers: legacy's PTE swap entries and the PMD model's PMD swap entry
    for key in ((SWAPPED, False), (SWAPPED, True)):
        assert _hex(STATE_COLOURS[key][1]) in colours, STATE_COLOURS[key][2]
    assert _hex(STATE_COLOURS[(PRESENT, True)][1]) in colours  # the legend and executions chart


def test_a_finding_saved_with_a_bug_names_it_so_repro_injects_it_again(campaign):
    art, _ = campaign
    finding = next(p for p in art.glob("*.trace") if not p.name.endswith(".min.trace"))
    assert f"# bug: {BUG}\n" in finding.read_text()
    r = cli("repro", str(finding))
    assert r.returncode == 1 and f"names bug {BUG}; injecting it" in r.stderr
    assert cli("repro", str(finding), "--bug", "none").returncode == 0
