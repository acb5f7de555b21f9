"""`pmdswap-fuzz bench --bugs`: how fast each engine finds each catalogue bug.

For every bug that is not a documented blind spot, and every engine asked for: over `--seeds`
seeds, the executions and seconds to the first divergence that the same ops do not show without the
bug (median, and the worst seed), the rule that fired, and the length of the minimised reproducer,
which must replay identically 3 times. Printed as a table and written as JSON (to --json, or to a
new bench-bugs[-N].json: nothing is overwritten).

random: the seeded generator and the in-process runner. hypothesis: the same generator, its
decisions drawn by Hypothesis (one seeded run of up to --budget examples). atheris: libFuzzer through
fuzz/atheris_target.py with `-runs=--budget`, its corpus seeded from corpus/seeds as the engine
does (never from corpus/regressions, which holds the reproducers themselves). A bug found while
libFuzzer is still loading the seeds is counted at the number of seeds (an upper bound).
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.bugs import BLIND_SPOTS, BUGS

from .decode import op_size
from .fuzzer_input import ops_from_input
from .engines import seed_corpus
from .gen import generate
from .guard import run_guarded as run_trace
from .minimize import NotReproducible, minimize

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "fuzz" / "atheris_target.py"
_EXECS = re.compile(r"^#(\d+)\s")


def _bug_only(ops, res, bug) -> bool:
    """The divergence is the bug's: the same prefix is clean on the correct models."""
    return run_trace(ops[:res.executed]).divergence is None


def find_random(bug: str, seed: int, budget: int, length: int = 32):
    rng = random.Random(seed * 7919 + 1)
    t0 = time.perf_counter()
    for i in range(budget):
        ops = generate(rng, length)
        res = run_trace(ops, bug)
        if res.divergence is not None and _bug_only(ops, res, bug):
            return i + 1, time.perf_counter() - t0, ops[:res.executed], res.divergence
    return None


def find_atheris(bug: str, seed: int, budget: int, timeout: float = 120.0, seeded: bool = True):
    with tempfile.TemporaryDirectory(prefix="pmdswap-bench-") as tmp:
        corpus, crashes = Path(tmp, "corpus"), Path(tmp, "crashes")
        corpus.mkdir()
        crashes.mkdir()
        if seeded:
            seed_corpus(corpus, [REPO / "corpus" / "seeds"])
        env = dict(os.environ, PMDSWAP_BUG=bug, PYTHONPATH=str(REPO))
        max_len = 128 * max(op_size(cls) for cls in O.OPS)
        cmd = [sys.executable, str(TARGET), str(corpus), f"-runs={budget}", f"-seed={seed + 1}",
               f"-artifact_prefix={crashes}/", f"-max_total_time={int(timeout)}",
               f"-max_len={max_len}", "-len_control=0", "-print_final_stats=1"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, errors="replace").stdout
        secs = time.perf_counter() - t0
        execs = [int(m.group(1)) for m in map(_EXECS.match, out.splitlines()) if m]
        for crash in sorted(crashes.iterdir()):
            ops = ops_from_input(crash.read_bytes())
            res = run_trace(ops, bug)
            if res.divergence is not None and _bug_only(ops, res, bug):
                # no "#N" line yet: found while libFuzzer was still loading the seed corpus
                n = execs[-1] if execs else sum(1 for _ in corpus.iterdir())
                return n, secs, ops[:res.executed], res.divergence
    return None


def find_hypothesis(bug: str, seed: int, budget: int, length: int = 32):
    """Hypothesis drawing the generator's decisions (fuzz.hypo), `budget` examples at most."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, settings

    from .hypo import DivergenceFound, sequence_test

    found, count = [], [0]
    t0 = time.perf_counter()

    def on_exec(ops, res) -> None:
        count[0] += 1
        if res.divergence is not None and not found and _bug_only(ops, res, bug):
            found.append((count[0], time.perf_counter() - t0, ops, res.divergence))
        if found:
            raise _Found  # the rest of the budget is not needed

    test = sequence_test(bug, length, on_exec)
    test = settings(max_examples=budget, deadline=None, database=None, derandomize=False,
                    phases=(Phase.generate,), suppress_health_check=list(HealthCheck),
                    verbosity=hypothesis.Verbosity.quiet)(test)
    try:
        hypothesis.seed(seed * 7919 + 1)(test)()
    except (_Found, DivergenceFound, BaseExceptionGroup):
        pass
    return found[0] if found else None


class _Found(Exception):
    pass


FINDERS = {"random": find_random, "atheris": find_atheris, "hypothesis": find_hypothesis}


def _replays_identically(ops, bug, sig, times=3) -> bool:
    return all((d := run_trace(ops, bug).divergence) is not None and d.signature() == sig
               for _ in range(times))


def bench_bugs(args) -> int:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in FINDERS:
            print(f"pmdswap-fuzz bench: error: --engines: unknown engine {e!r} "
                  f"({', '.join(FINDERS)})",
                  file=sys.stderr)
            return 2
    rows = []
    names = [b for b in sorted(BUGS) if b not in BLIND_SPOTS]
    for bug in names:
        for eng in engines:
            hits, first = [], None
            for seed in range(args.seeds):
                got = (FINDERS[eng](bug, seed, args.budget, seeded=not args.no_seeds)
                       if eng == "atheris" else FINDERS[eng](bug, seed, args.budget))
                if got:
                    hits.append(got[:2])
                    first = first or got
            row = {"bug": bug, "engine": eng, "seeds": args.seeds, "found": len(hits),
                   "seed_corpus": eng == "atheris" and not args.no_seeds}
            if hits:
                row["median_execs"] = statistics.median(h[0] for h in hits)
                row["median_secs"] = round(statistics.median(h[1] for h in hits), 2)
                row["max_secs"] = round(max(h[1] for h in hits), 2)
                sig = first[3].signature()
                row["rule"] = first[3].rule
                try:
                    small = minimize(first[2], sig, bug=bug, max_runs=300)
                    row["minimised_ops"] = len(small)
                    row["replays_identically"] = _replays_identically(small, bug, sig)
                except NotReproducible:
                    row["minimised_ops"] = None
            rows.append(row)
            _print_row(row)
    for b in sorted(BLIND_SPOTS):
        print(f"{b:<36} blind spot (see its docstring in models/bugs.py)")
    _summary(rows)
    path = Path(args.json) if args.json else _fresh("bench-bugs.json")
    with open(path, "x") as f:
        json.dump({"rows": rows, "blind_spots": sorted(BLIND_SPOTS), "budget": args.budget,
                   "seeds": args.seeds}, f, indent=2)
    print(f"wrote {path}")
    return 0


def _fresh(name: str) -> Path:
    p = Path(name)
    n = 1
    while p.exists():
        p = Path(f"{Path(name).stem}-{n}.json")
        n += 1
    return p


def _print_row(r) -> None:
    if not r["found"]:
        print(f"{r['bug']:<36} {r['engine']:<8} not found in {r['seeds']} seeds")
        return
    print(f"{r['bug']:<36} {r['engine']:<8} {r['found']}/{r['seeds']} seeds  "
          f"median {r['median_execs']:>6} execs {r['median_secs']:7.2f} s  (worst {r['max_secs']:.2f} s)"
          f"  {r.get('rule', ''):<28} min {r.get('minimised_ops')} ops"
          f"{'' if r.get('replays_identically', True) else '  NOT IDENTICAL ON REPLAY'}")


def _summary(rows) -> None:
    for eng in sorted({r["engine"] for r in rows}):
        rs = [r for r in rows if r["engine"] == eng]
        found = [r for r in rs if r["found"]]
        secs = [r["median_secs"] for r in found]
        mins = [r["minimised_ops"] for r in found if r.get("minimised_ops")]
        print(f"{eng}: {len(found)}/{len(rs)} bugs found; median of medians "
              f"{statistics.median(secs) if secs else float('nan'):.2f} s, worst "
              f"{max((r['max_secs'] for r in found), default=float('nan')):.2f} s; median minimised "
              f"length {statistics.median(mins) if mins else float('nan')} ops")
