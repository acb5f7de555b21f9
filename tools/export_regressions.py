#!/usr/bin/env python3
"""Write corpus/regressions/<bug>.trace: a minimised reproducer for every catalogue bug.

Each is found the way tests/test_bugs.py finds it (the seeded generator first, else the bug's
directed trace), minimised, checked to replay identically 3 times with the bug and to run clean
without it, and written with a `# bug: NAME` line that tests/test_corpus.py reads. Existing files are
left alone unless --force is given."""

import argparse
import pathlib
import random
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from pmdswap_fuzz.fuzz.gen import generate  # noqa: E402
from pmdswap_fuzz.fuzz.guard import run_guarded  # noqa: E402
from pmdswap_fuzz.fuzz.minimize import minimize  # noqa: E402
from pmdswap_fuzz.fuzz.trace import format_trace  # noqa: E402
from pmdswap_fuzz.models.bugs import BLIND_SPOTS, BUGS  # noqa: E402


def find(bug: str, directed: dict):
    for seed in range(200):
        ops = generate(random.Random(seed), 24)
        res = run_guarded(ops, bug)
        if res.divergence and run_guarded(ops[:res.executed]).divergence is None:
            return ops[:res.executed], res.divergence, f"generator seed {seed}"
    if bug in directed:
        ops = directed[bug]
        res = run_guarded(ops, bug)
        if res.divergence:
            return ops[:res.executed], res.divergence, "directed trace in tests/test_bugs.py"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("bugs", nargs="*", help="only these bugs")
    args = ap.parse_args()
    import test_bugs  # the directed traces

    out = ROOT / "corpus" / "regressions"
    out.mkdir(parents=True, exist_ok=True)
    for bug in args.bugs or sorted(BUGS):
        path = out / f"{bug}.trace"
        if bug in BLIND_SPOTS or (path.exists() and not args.force):
            continue
        got = find(bug, test_bugs.DIRECTED)
        if got is None:
            print(f"{bug}: not found", file=sys.stderr)
            continue
        ops, div, how = got
        sig = div.signature()
        small = minimize(ops, sig, bug=bug, replays=3, max_runs=600)
        assert run_guarded(small).divergence is None, f"{bug}: minimised trace diverges without the bug"
        path.write_text(format_trace(small, comments=[
            f"bug: {bug}", f"found by: {how}; minimised {len(ops)} -> {len(small)} ops",
            f"signature: {sig}"]))
        print(f"{bug}: {len(ops)} -> {len(small)} ops ({sig})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
