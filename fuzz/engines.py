"""The three engines (`random`, `atheris`, `hypothesis`), sharing the decoder, the runner and the artifacts.

Each engine runs for `Options.time` seconds, updates a `Stats` and the status line, and hands every
divergence to `Findings`: the first time a signature is seen in a campaign its trace is saved (with the
raw bytes when the engine produced bytes); at the end of the campaign each saved finding is minimised
into `<name>.min.trace`.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmdswap_fuzz.models import ops as O

from .artifacts import Artifacts, Finding, create_unique
from .decode import MAX_OPS, op_size
from .fuzzer_input import ops_from_input, seed_input, tag_raw
from .gen import generate
from .guard import run_guarded
from .oracle import Divergence
from .status import Stats, StatsLog, StatusLine
from .trace import TraceError, parse_trace_bytes

__all__ = ["ENGINES", "Options", "Findings", "run_campaign"]

REPO = Path(__file__).resolve().parent.parent
ATHERIS_TARGET = Path(__file__).resolve().with_name("atheris_target.py")


@dataclass
class Options:
    engine: str = "random"
    time: float = 60.0
    seed: int | None = None
    jobs: int = 1
    corpus: Path | None = None
    artifacts: Path = Path("artifacts")
    bug: str | None = None
    length: int = 32
    profile: str = "ci"  # Hypothesis settings profile
    minimize: bool = True
    seeds: bool = True  # atheris: encode corpus/seeds and corpus/regressions into its corpus


@dataclass
class _Pending:
    finding: Finding
    ops: list
    div: Divergence


@dataclass
class Findings:
    """De-duplicates divergences by signature, saves the first of each, minimises them at the end."""

    artifacts: Artifacts
    stats: Stats
    status: StatusLine
    pending: list = field(default_factory=list)

    def record(self, ops: list[O.Op], div: Divergence, raw: bytes | None = None,
               count: int = 1) -> Finding | None:
        sig = div.signature()
        new = sig not in self.stats.divergences
        self.stats.divergences[sig] += count
        if not new:
            return None
        finding = self.artifacts.save(ops, div, raw)
        self.stats.saved.append(finding.trace)
        if finding.raw is not None:
            self.stats.saved.append(finding.raw)
        self.pending.append(_Pending(finding, list(ops), div))
        self.status.message(f"divergence {sig} at op {div.op_index} ({div.op.name}): {div.detail}"
                            f" -> {finding.trace}")
        return finding

    def minimize_all(self, deadline: float | None = None) -> None:
        """Minimise the pending findings, as many as fit before `deadline` (monotonic): the
        others stay saved as found, each with a note."""
        for i, p in enumerate(self.pending):
            if deadline is not None and time.monotonic() >= deadline:
                left = ", ".join(q.finding.trace.name for q in self.pending[i:])
                self.stats.notes.append(f"note: the time budget ended before minimising {left} "
                                        "(saved as found; `pmdswap-fuzz minimize` does it later)")
                break
            self.status.message(f"minimising {p.finding.trace.name} ({len(p.ops)} ops)...")
            out = self.artifacts.minimize(p.finding, p.ops, p.div)
            if out is None:
                self.stats.notes.append(f"note: {p.finding.trace.name} did not reproduce when "
                                        "replayed for minimisation")
            else:
                self.stats.saved.append(out)
        self.pending.clear()


# ---- random -------------------------------------------------------------------------------------
def _random_loop(rng, opts: Options, deadline: float, on_exec, on_div) -> None:
    """The hot loop: generate, run, report; nothing else. Each sequence runs from scratch: sharing
    prefixes between executions (snapshot trees) was measured to find bugs slower, see
    docs/performance.md."""
    length, bug = opts.length, opts.bug
    now = time.monotonic
    while now() < deadline:
        ops = generate(rng, length)
        res = run_guarded(ops, bug)
        on_exec(res)
        if res.divergence is not None:
            on_div(ops[:res.executed], res.divergence)


def run_random(opts: Options, stats: Stats, findings: Findings, status: StatusLine) -> None:
    if opts.corpus is not None:
        stats.notes.append("note: the random engine keeps no corpus (--corpus ignored)")
    if opts.jobs > 1:
        return _run_random_parallel(opts, stats, findings, status)
    rng = np.random.default_rng(stats.seed)

    def on_exec(res) -> None:
        stats.execs += 1
        stats.ops += res.executed
        if res.cells:
            stats.add_cells(res.cells)
        status.update(stats)

    _random_loop(rng, opts, stats.start + opts.time, on_exec, findings.record)


def _random_worker(idx: int, seed: int, opts: Options, deadline_wall: float, q) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    rng = np.random.default_rng([seed, idx])
    local = {"execs": 0, "ops": 0, "cells": Counter(), "divs": Counter(), "last": time.monotonic()}
    sent: set[str] = set()

    def flush() -> None:
        q.put(("stats", local["execs"], local["ops"], local["cells"], local["divs"]))
        local.update(execs=0, ops=0, cells=Counter(), divs=Counter(), last=time.monotonic())

    def on_exec(res) -> None:
        local["execs"] += 1
        local["ops"] += res.executed
        for c in res.cells:
            local["cells"][c] += 1
        if time.monotonic() - local["last"] > 0.5:
            flush()

    def on_div(ops, div) -> None:
        sig = div.signature()
        if sig in sent:
            local["divs"][sig] += 1
            return
        sent.add(sig)
        q.put(("div", ops, div))

    deadline = time.monotonic() + max(0.0, deadline_wall - time.time())
    try:
        _random_loop(rng, opts, deadline, on_exec, on_div)
    finally:
        flush()
        q.put(("done", idx))


def _run_random_parallel(opts: Options, stats: Stats, findings: Findings, status: StatusLine) -> None:
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    q = ctx.Queue()
    deadline_wall = time.time() + opts.time
    procs = [ctx.Process(target=_random_worker, args=(i, stats.seed, opts, deadline_wall, q),
                         daemon=True) for i in range(opts.jobs)]
    for p in procs:
        p.start()
    running = len(procs)
    try:
        while running:
            try:
                msg = q.get(timeout=0.25)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in procs):
                    break
                status.update(stats)
                continue
            if msg[0] == "stats":
                _, execs, nops, cells, divs = msg
                stats.execs += execs
                stats.ops += nops
                stats.cells.update(cells)
                stats.divergences.update(divs)
            elif msg[0] == "div":
                findings.record(msg[1], msg[2])
            elif msg[0] == "done":
                running -= 1
            status.update(stats)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


# ---- atheris ------------------------------------------------------------------------------------
_LIBFUZZER_EXECS = re.compile(r"^#(\d+)")
_LIBFUZZER_RATE = re.compile(r"exec/s:? (\d+)")
_LIBFUZZER_CORPUS = re.compile(r"corp: (\d+)")
_LIBFUZZER_COV = re.compile(r"cov: (\d+)")


def seed_corpus(corpus: Path, sources: list[Path]) -> int:
    """Encode every parseable *.trace of `sources` into `corpus` as `seed-<stem>` (if not there)."""
    n = 0
    for src in sources:
        if not src.is_dir():
            continue
        for path in sorted(src.glob("*.trace")):
            try:
                ops = parse_trace_bytes(path.read_bytes(), str(path))
            except (OSError, TraceError):
                continue
            dest = corpus / f"seed-{path.stem}"
            if not dest.exists():
                dest.write_bytes(seed_input(ops))
                n += 1
    return n


def _process_crashes(crash_dir: Path, seen: set, opts: Options, findings: Findings,
                     stats: Stats) -> None:
    for path in sorted(crash_dir.glob("crash-*")):
        if path.name in seen:
            continue
        seen.add(path.name)
        try:
            data = path.read_bytes()
        except OSError:
            continue
        ops = ops_from_input(data, opts.length)
        res = run_guarded(ops, opts.bug)
        if res.divergence is None:
            stats.notes.append(f"note: libFuzzer crash {path} does not reproduce a divergence")
            continue
        findings.record(ops[:res.executed], res.divergence, raw=tag_raw(data, opts.length))


def _replay_cells(corpus: Path, opts: Options, stats: Stats, budget: float) -> None:
    """Atheris runs in another process: replay (part of) the corpus for the coverage table."""
    end = time.monotonic() + budget
    files = sorted(p for p in corpus.iterdir() if p.is_file())
    done = 0
    for path in files:
        if time.monotonic() > end:
            break
        try:
            res = run_guarded(ops_from_input(path.read_bytes(), opts.length), opts.bug)
        except OSError:
            continue
        stats.add_cells(res.cells)
        done += 1
    if files:
        stats.notes.append(f"coverage: cells from replaying {done}/{len(files)} corpus inputs")


def _libfuzzer_watchdog(proc, deadline: float, stats: Stats, status: StatusLine) -> None:
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            stats.notes.append("note: libFuzzer ended by the --time watchdog")
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        status.update(stats)
        time.sleep(0.5)


def run_atheris(opts: Options, stats: Stats, findings: Findings, status: StatusLine) -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        raise EngineError("the atheris engine needs atheris (pip install atheris==3.0.0)") from None
    art = findings.artifacts.dir
    corpus = Path(opts.corpus) if opts.corpus else art / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    crash_dir = art / "libfuzzer"
    crash_dir.mkdir(exist_ok=True)
    sources = [corpus] + ([REPO / "corpus" / "seeds", REPO / "corpus" / "regressions"]
                          if opts.seeds else [])
    seeded = seed_corpus(corpus, sources)
    if seeded:
        stats.notes.append(f"corpus: {seeded} text traces encoded as seeds into {corpus}")
    seen = {p.name for p in crash_dir.glob("crash-*")}
    max_len = MAX_OPS * max(op_size(cls) for cls in O.OPS)
    cmd = [sys.executable, str(ATHERIS_TARGET), str(corpus), f"-artifact_prefix={crash_dir}/",
           f"-max_total_time={max(1, int(opts.time))}", f"-fork={max(1, opts.jobs)}",
           "-ignore_crashes=1", "-ignore_ooms=1", "-ignore_timeouts=1", f"-max_len={max_len}",
           "-len_control=0",  # op sequences need long inputs from the start
           "-timeout=120", "-rss_limit_mb=4096", "-print_final_stats=1"]
    if stats.seed is not None:
        cmd.append(f"-seed={stats.seed}")
    env = dict(os.environ)
    # fork mode re-executes argv[0] (the script, via its shebang): make `python3` this interpreter
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PMDSWAP_LENGTH"] = str(opts.length)
    if opts.bug:
        env["PMDSWAP_BUG"] = opts.bug
    else:
        env.pop("PMDSWAP_BUG", None)
    stats.ops = None
    stats.corpus = sum(1 for p in corpus.iterdir() if p.is_file())
    log_path = art / "atheris.log"
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                text=True, errors="replace", start_new_session=True)
        # libFuzzer's -max_total_time does not bound its start (fork mode replays the whole
        # corpus first, restarting its child after every crashing seed): a watchdog ends it at
        # --time and keeps the status line going while libFuzzer prints nothing
        watchdog = threading.Thread(target=_libfuzzer_watchdog, daemon=True,
                                    args=(proc, stats.start + opts.time, stats, status))
        watchdog.start()
        try:
            for line in proc.stdout:
                log.write(line)
                m = _LIBFUZZER_EXECS.match(line)
                if m:
                    stats.execs = int(m.group(1))
                    if (r := _LIBFUZZER_RATE.search(line)):
                        stats.exec_rate = float(r.group(1))
                    if (c := _LIBFUZZER_CORPUS.search(line)):
                        stats.corpus = int(c.group(1))
                    if (c := _LIBFUZZER_COV.search(line)):
                        stats.edges = int(c.group(1))
                if "Test unit written to" in line or "crash" in line:
                    _process_crashes(crash_dir, seen, opts, findings, stats)
                status.update(stats)
            proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
    _process_crashes(crash_dir, seen, opts, findings, stats)
    stats.notes.append(f"libFuzzer log: {log_path} (exit status {proc.returncode})")
    if not stats.execs and stats.divergences:
        stats.notes.append("note: libFuzzer reported no execution count before it ended (it was "
                           "still running its starting corpus); the divergences are from the "
                           "crash inputs it wrote")
    # coverage cells from the corpus, within --time plus a little: since the inputs are whole
    # generated sequences a replay costs as much as an execution (measured: a 10 s campaign took
    # 16 s with the old allowance of max(2 s, time/4) on a loaded machine)
    left = stats.start + opts.time + min(1.0, opts.time / 10) - time.monotonic()
    _replay_cells(corpus, opts, stats, budget=max(0.2, min(30.0, left)))


# ---- hypothesis ---------------------------------------------------------------------------------
def run_hypothesis(opts: Options, stats: Stats, findings: Findings, status: StatusLine) -> None:
    """Hypothesis draws the generator's decisions (fuzz.hypo): batches of examples, each batch
    seeded from the campaign's seed, until --time."""
    import hypothesis
    from hypothesis.errors import HypothesisException

    from .hypo import DivergenceFound, engine_settings, sequence_test

    if opts.jobs > 1:
        stats.notes.append("note: the hypothesis engine runs in one process (--jobs ignored)")
    rnd = random.Random(stats.seed)

    def on_exec(ops, res) -> None:
        stats.execs += 1
        stats.ops += len(ops)
        if res.cells:
            stats.add_cells(res.cells)
        status.update(stats)

    deadline = stats.start + opts.time
    while time.monotonic() < deadline:
        test = sequence_test(opts.bug, opts.length, on_exec)
        test = engine_settings(opts.profile, max_examples=10)(test)
        test = hypothesis.seed(rnd.getrandbits(64))(test)
        try:
            test()
        except DivergenceFound as e:
            findings.record(e.ops, e.divergence)
        except BaseExceptionGroup as group:  # several distinct failures in one batch
            for e in group.exceptions:
                if isinstance(e, DivergenceFound):
                    findings.record(e.ops, e.divergence)
                else:
                    stats.notes.append(f"note: hypothesis: {type(e).__name__}: {e}")
        except HypothesisException as e:
            stats.notes.append(f"note: hypothesis: {type(e).__name__}: {str(e).splitlines()[0]}")


class EngineError(Exception):
    """An engine cannot run here (a missing dependency); one-line message."""


ENGINES = {"random": run_random, "atheris": run_atheris, "hypothesis": run_hypothesis}


def open_stats_log(opts: Options, seed: int) -> StatsLog:
    """`<artifacts>/stats-<engine>-seed<seed>.jsonl` (-1, -2... beside an earlier campaign's)."""
    campaign = {"engine": opts.engine, "seed": seed, "time": opts.time, "bug": opts.bug,
                "jobs": opts.jobs, "length": opts.length, "profile": opts.profile}
    path = create_unique(Path(opts.artifacts), f"stats-{opts.engine}-seed{seed}", ".jsonl", b"")
    return StatsLog(path, campaign)


def run_campaign(opts: Options, status: StatusLine | None = None) -> Stats:
    """Run one engine for opts.time seconds; returns the campaign's statistics."""
    if opts.engine not in ENGINES:
        raise EngineError(f"unknown engine {opts.engine!r} (engines: {', '.join(ENGINES)})")
    status = status or StatusLine()
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(2**32)
    stats = Stats(engine=opts.engine, seed=seed)
    header = [f"found by: pmdswap-fuzz run --engine {opts.engine} --seed {seed}"
              + (f" --bug {opts.bug}" if opts.bug else "")]
    if opts.bug:  # `repro` and `report` of the saved trace inject it again
        header.append(f"bug: {opts.bug}")
    findings = Findings(Artifacts(opts.artifacts, opts.bug, header), stats, status)
    log = status.log = open_stats_log(opts, seed)
    try:
        ENGINES[opts.engine](opts, stats, findings, status)
    except KeyboardInterrupt:
        stats.notes.append("interrupted: findings saved, not minimised")
        findings.pending.clear()
    finally:  # an engine that cannot run still leaves its stats file closed
        status.finish(stats)
        log.close()
        status.log = None
    stats.notes.append(f"stats: {log.path} (pmdswap-fuzz report {opts.artifacts} charts it)")
    if opts.minimize:
        # the campaign may overrun --time by half (at least 5 s) for its findings' minimisation
        findings.minimize_all(deadline=stats.start + opts.time + max(5.0, opts.time / 2))
    return stats
