"""`pmdswap-fuzz bench`: throughput figures from one run (medians; the machine is shared and noisy).

Default report:
  * executions/s and ops/s of each engine's execution path on 32-op sequences, full oracle every op
    (random: generate + run; atheris: decode bytes + run, in process, without libFuzzer's coverage
    instrumentation; hypothesis: the state machine's own loop for a fixed number of examples);
  * where one 32-op execution's time goes (ops, observe, invariants, oracle rules), and the floor: the
    cost of an oracle step for an op that changes nothing, times 32 (docs/performance.md);
  * the cost of each op kind in each model (median microseconds), and of observe + invariants;
  * how the cost of one execution grows with sequence length (8, 32, 128) and with processes (1-4).
`--bugs`: for each catalogue bug and each engine, executions and seconds to the first divergence
(median over seeds), the rule that fired and the minimised reproducer's length; a table, and JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict

import numpy as np

import pmdswap_fuzz.models.mm as mm_mod
from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.invariants import check_invariants
from pmdswap_fuzz.models.observe import observe

from . import oracle as oracle_mod
from .decode import decode
from .gen import generate
from .oracle import Oracle
from .runner import make_models, run_trace


def _median(xs):
    return statistics.median(xs) if xs else float("nan")


def _execs_per_s(make_ops, n: int, reps: int = 3) -> tuple[float, float]:
    """Median over reps of (executions/s, ops/s) for n executions of make_ops(i)."""
    eps, ops = [], []
    for rep in range(reps):
        seqs = [make_ops(rep * n + i) for i in range(n)]
        t0 = time.perf_counter()
        total = sum(run_trace(s).executed for s in seqs)
        dt = time.perf_counter() - t0
        eps.append(n / dt)
        ops.append(total / dt)
    return _median(eps), _median(ops)


def bench_engines(n: int) -> list[tuple[str, float, float]]:
    rows = []
    e, o = _execs_per_s(lambda i: generate(random.Random(i), 32), n)
    rows.append(("random", e, o))
    rng = np.random.default_rng(0)

    def atheris_input(i):
        ops = decode(rng.bytes(32 * 12))
        return ops[:32]
    e, o = _execs_per_s(atheris_input, n)
    rows.append(("atheris (in-process decode+run)", e, o))
    rows.append(("hypothesis",) + _bench_hypothesis(n))
    return rows


def bench_breakdown(n: int) -> dict:
    """Where one flat 32-op execution's time goes, in ms (mean over n executions): model ops,
    observations, invariants, the oracle's own rules, and what an empty op costs."""
    spent = defaultdict(float)

    def timed(fn, key):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[key] += time.perf_counter() - t0
        return wrapper

    saved = (mm_mod.Kernel.apply, oracle_mod.observe, oracle_mod.check_invariants)
    mm_mod.Kernel.apply = timed(saved[0], "apply (both models)")
    oracle_mod.observe = timed(saved[1], "observe (both models)")
    oracle_mod.check_invariants = timed(saved[2], "invariants (both models)")
    try:
        t0 = time.perf_counter()
        for i in range(n):
            run_trace(generate(random.Random(40_000 + i), 32))
        total = time.perf_counter() - t0
    finally:
        mm_mod.Kernel.apply, oracle_mod.observe, oracle_mod.check_invariants = saved
    out = {k: v * 1e3 / n for k, v in spent.items()}
    out["oracle rules and bookkeeping"] = (total - sum(spent.values())) * 1e3 / n
    out["total"] = total * 1e3 / n
    # the floor: one step of an op that changes nothing, on a state with one process and 4 regions
    legacy, pmd = make_models(None)
    orc = Oracle(legacy, pmd)
    for j, op in enumerate([O.Mmap(0, 0, O.VA_PAGES, True), O.Write(0, 0, O.VA_PAGES, 1)]):
        orc.step(j, op)
    noop = O.Fault(0, 5)  # a read of a present page: nothing changes
    batches = []
    for b in range(5):
        t0 = time.perf_counter()
        for j in range(40):
            orc.step(2 + 40 * b + j, noop)
        batches.append((time.perf_counter() - t0) * 1e3 / 40)
    floor = _median(batches)
    out["one oracle step of a no-op (floor, 1 process)"] = floor
    out["floor x 32 ops = best case per execution"] = floor * 32
    return out


def _bench_hypothesis(n: int) -> tuple[float, float]:
    from hypothesis import HealthCheck, settings

    from .hypo import sequence_test

    steps = []
    test = sequence_test(None, 32, on_exec=lambda ops, res: steps.append(len(ops)))
    test = settings(max_examples=n, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))(test)
    t0 = time.perf_counter()
    try:
        test()
    except Exception:  # a divergence ends the run early; the rate is still meaningful
        pass
    dt = time.perf_counter() - t0
    return len(steps) / dt, sum(steps) / dt


def bench_op_costs(n: int) -> dict:
    """Median microseconds per op kind in each model, and per observe+invariants check."""
    costs = {"legacy": defaultdict(list), "pmd": defaultdict(list)}
    check = []
    for i in range(n):
        ops = generate(random.Random(10_000 + i), 32)
        for name, k in zip(("legacy", "pmd"), make_models(None), strict=False):
            for op in ops:
                t0 = time.perf_counter()
                k.apply(op)
                costs[name][op.name].append(time.perf_counter() - t0)
                if name == "pmd":
                    t0 = time.perf_counter()
                    observe(k)
                    check_invariants(k)
                    check.append(time.perf_counter() - t0)
    out = {m: {op: _median(v) * 1e6 for op, v in sorted(c.items())} for m, c in costs.items()}
    out["observe+invariants (one model)"] = _median(check) * 1e6
    return out


def bench_scaling(n: int) -> tuple[list, list]:
    by_len = []
    for length in (8, 32, 128):
        e, o = _execs_per_s(lambda i, L=length: generate(random.Random(20_000 + i), L), n, reps=1)
        by_len.append((length, 1e3 / e, o))
    by_procs = []
    for procs in (1, 2, 3, 4):
        def seq(i, p=procs):
            ops = [O.Mmap(0, 0, O.VA_PAGES, True), O.Write(0, 0, O.VA_PAGES, 1)]
            ops += [O.Fork(0)] * (p - 1)
            ops += [x for x in generate(random.Random(30_000 + i), 32) if not isinstance(x, (O.Fork, O.Exit))]
            return ops[:34]
        e, o = _execs_per_s(seq, n, reps=1)
        by_procs.append((procs, 1e3 / e, o))
    return by_len, by_procs


def _json_path_problem(path: str) -> str | None:
    """Why the JSON report cannot be written to `path` (it must be new), or None."""
    if os.path.lexists(path):
        return "already exists (choose a new file; nothing is overwritten)"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"directory {parent} is not writable"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="pmdswap-fuzz bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--execs", type=int, default=40, help="executions per measurement (default 40)")
    ap.add_argument("--bugs", action="store_true", help="time-to-find for every catalogue bug")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per bug with --bugs (default 5)")
    ap.add_argument("--budget", type=int, default=400, help="executions per seed with --bugs")
    ap.add_argument("--engines", default="random,atheris",
                    help="engines for --bugs: random, atheris, hypothesis")
    ap.add_argument("--no-seeds", action="store_true",
                    help="with --bugs: atheris starts from an empty corpus, not corpus/seeds (the "
                    "engines compared on what they find by themselves)")
    ap.add_argument("--json", default=None, help="also write the figures as JSON to this file")
    args = ap.parse_args(argv)
    for name in ("execs", "seeds", "budget"):
        if getattr(args, name) < 1:
            print(f"pmdswap-fuzz bench: error: --{name} must be at least 1, got {getattr(args, name)}",
                  file=sys.stderr)
            return 2
    if args.json is not None:
        problem = _json_path_problem(args.json)
        if problem:  # said before a long run, not after it; nothing is overwritten
            print(f"pmdswap-fuzz bench: error: --json {args.json}: {problem}", file=sys.stderr)
            return 2
    if args.bugs:
        from .bugbench import bench_bugs
        return bench_bugs(args)
    report: dict = {}
    print(f"engines: {args.execs} executions of 32-op sequences, full oracle after every op, "
          "median of 3")
    rows = bench_engines(args.execs)
    report["engines"] = [{"engine": e, "execs_per_s": x, "ops_per_s": o} for e, x, o in rows]
    for e, x, o in rows:
        print(f"  {e:<34} {x:8.1f} exec/s {o:9.0f} ops/s")
    parts = bench_breakdown(max(5, args.execs))
    report["breakdown_ms_per_exec"] = parts
    print("where one flat 32-op execution's time goes (mean ms):")
    for k, v in parts.items():
        print(f"  {k:<40}{v:8.2f}")
    costs = bench_op_costs(max(5, args.execs // 4))
    report["op_costs_us"] = costs
    print("median cost per op kind, microseconds (apply only):")
    print(f"  {'op':<16}{'legacy':>10}{'pmd':>10}")
    for op in sorted(set(costs["legacy"]) | set(costs["pmd"])):
        legacy, pmd = costs['legacy'].get(op, float('nan')), costs['pmd'].get(op, float('nan'))
        print(f"  {op:<16}{legacy:10.0f}{pmd:10.0f}")
    print(f"  observe+invariants of one model after one op: "
          f"{costs['observe+invariants (one model)']:.0f} us")
    by_len, by_procs = bench_scaling(max(5, args.execs // 2))
    report["by_length"] = [{"length": n, "ms_per_exec": ms, "ops_per_s": o} for n, ms, o in by_len]
    report["by_procs"] = [{"procs": n, "ms_per_exec": ms, "ops_per_s": o} for n, ms, o in by_procs]
    print("cost by sequence length:  " + ", ".join(f"{n} ops {ms:.0f} ms" for n, ms, _ in by_len))
    print("cost by processes (34 ops): " + ", ".join(f"{n}: {ms:.0f} ms" for n, ms, _ in by_procs))
    if args.json:
        with open(args.json, "x") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
