"""Campaign statistics, the live status line and the final summary with its coverage table."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from pmdswap_fuzz.models import ops as O

__all__ = ["Stats", "StatsLog", "StatusLine", "coverage_table", "summary"]


@dataclass
class Stats:
    engine: str
    seed: int | None = None
    start: float = field(default_factory=time.monotonic)
    execs: int = 0
    ops: int | None = 0  # None: the engine cannot count ops (atheris)
    corpus: int | None = None
    exec_rate: float | None = None  # reported by the engine itself (atheris), else computed
    edges: int | None = None  # libFuzzer's `cov:` (instrumented edges; atheris only)
    divergences: Counter = field(default_factory=Counter)  # signature -> times seen
    cells: Counter = field(default_factory=Counter)  # (entry state, op) -> executions hitting it
    saved: list = field(default_factory=list)  # artifact paths written
    notes: list = field(default_factory=list)  # one-line remarks for the summary

    def elapsed(self) -> float:
        return max(time.monotonic() - self.start, 1e-9)

    def add_cells(self, cells) -> None:
        for c in cells:
            self.cells[c] += 1


def _rate(n: int | None, secs: float) -> str:
    return "-" if n is None else f"{n / secs:,.0f}"


class StatsLog:
    """A campaign's figures over time, one JSON object per line (`report` charts them). The first
    line describes the campaign; then a row at most every max(1 s, 1% of the time so far), so a
    day's campaign writes a few hundred rows, and a last row when it ends."""

    FIELDS = ("execs", "ops", "corpus", "edges")

    def __init__(self, path, campaign: dict) -> None:
        self.path = path
        self.fh = open(path, "a", encoding="utf-8")
        self.last: float | None = None
        self._write({"campaign": campaign})

    def _write(self, obj: dict) -> None:
        self.fh.write(json.dumps(obj, sort_keys=True) + "\n")
        self.fh.flush()

    def sample(self, s: Stats, force: bool = False) -> None:
        t = s.elapsed()
        if not force and self.last is not None and t - self.last < max(1.0, 0.01 * t):
            return
        self.last = t
        row = {"t": round(t, 3), "divergences": sum(s.divergences.values()),
               "unique": len(s.divergences), "cells": len(s.cells)}
        row.update({f: getattr(s, f) for f in self.FIELDS})
        self._write(row)

    def close(self) -> None:
        self.fh.close()


class StatusLine:
    """One status line on `stream`: rewritten with \\r on a tty, else printed every `interval` s.
    With a `log`, every update may also add a row to the campaign's StatsLog. Engines call update()
    from a watchdog thread too: a lock keeps lines whole."""

    def __init__(self, stream=None, interval: float = 5.0, tty_interval: float = 0.25) -> None:
        self.log: StatsLog | None = None
        self._lock = threading.RLock()
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self.interval = tty_interval if self.tty else interval
        self.last = 0.0
        self.width = 0

    def line(self, s: Stats) -> str:
        secs = s.elapsed()
        xs = f"{s.exec_rate:,.0f}" if s.exec_rate is not None else _rate(s.execs, secs)
        corpus = "-" if s.corpus is None else str(s.corpus)
        return (f"[{s.engine} {secs:5.0f}s] execs {s.execs:,}  exec/s {xs}  ops/s {_rate(s.ops, secs)}"
                f"  corpus {corpus}  divergences {sum(s.divergences.values())}"
                f" ({len(s.divergences)} unique)")

    def update(self, s: Stats, force: bool = False) -> None:
        with self._lock:
            if self.log is not None:
                self.log.sample(s, force)
            self._update(s, force)

    def _update(self, s: Stats, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        text = self.line(s)
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a finding), without breaking the status line."""
        with self._lock:
            self._message(text)

    def _message(self, text: str) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, s: Stats) -> None:
        self.update(s, force=True)
        if self.tty:
            self.stream.write("\n")
            self.width = 0
        self.stream.flush()


def _name(x) -> str:
    return getattr(x, "name", None) or str(x)


def _cell(k) -> tuple[str, str]:
    """(entry state, op name) of one oracle cell."""
    if isinstance(k, tuple) and len(k) == 2:
        return _name(k[0]), _name(k[1])
    return _name(k), "?"


def coverage_table(cells: Counter) -> str:
    """Rows: op kinds (in OPS order); columns: entry states; a cell is the executions that hit it."""
    if not cells:
        return "coverage: no (entry state x op) cells reported by the oracle"
    pairs = [_cell(k) for k in cells]
    counts = Counter()
    for (state, op), k in zip(pairs, cells, strict=False):
        counts[(state, op)] += cells[k]
    states = sorted({s for s, _ in pairs})
    order = {cls.name: i for i, cls in enumerate(O.OPS)}
    ops = sorted({o for _, o in pairs}, key=lambda o: (order.get(o.split(" ")[0], len(order)), o))
    w0 = max(len("op \\ state"), *(len(o) for o in ops))
    widths = [max(len(s), 6) for s in states]
    lines = ["coverage (executions per entry state x op; . = never):",
             "  " + "op \\ state".ljust(w0) + "  "
             + "  ".join(s.rjust(w) for s, w in zip(states, widths, strict=False))]
    for o in ops:
        row = [(str(counts[(s, o)]) if counts.get((s, o)) else ".").rjust(w)
               for s, w in zip(states, widths, strict=False)]
        lines.append("  " + o.ljust(w0) + "  " + "  ".join(row))
    hit = sum(1 for v in counts.values() if v)
    lines.append(f"  {hit} cells hit ({len(states)} states x {len(ops)} ops seen)")
    return "\n".join(lines)


def summary(s: Stats) -> str:
    secs = s.elapsed()
    lines = [f"engine {s.engine}: {s.execs:,} executions in {secs:.1f}s "
             f"({_rate(s.execs, secs) if s.exec_rate is None else f'{s.exec_rate:,.0f}'} exec/s, "
             f"{_rate(s.ops, secs)} ops/s)" + ("" if s.seed is None else f", seed {s.seed}")]
    if s.corpus is not None:
        lines.append(f"corpus: {s.corpus} inputs")
    if s.divergences:
        lines.append(f"divergences: {sum(s.divergences.values())} ({len(s.divergences)} unique)")
        for sig, n in s.divergences.most_common():
            lines.append(f"  {n:6d}  {sig}")
    else:
        lines.append("divergences: none")
    if s.saved:
        lines.append("artifacts:")
        lines += [f"  {p}" for p in s.saved]
    lines += s.notes
    lines.append(coverage_table(s.cells))
    return "\n".join(lines)
