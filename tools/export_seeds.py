#!/usr/bin/env python3
"""Write corpus/seeds/*.trace from the scenario tests (run by hand when scenarios change).

Every selftest scenario of pmd_swap.c and every cell of the cow.c-style matrix becomes a trace, with a
comment saying where it came from. Existing files are left alone unless --force is given."""

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import test_pmd_scenarios as T  # noqa: E402

from pmdswap_fuzz.fuzz.trace import format_trace  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--force", action="store_true", help="overwrite existing seeds")
    args = ap.parse_args()
    out = ROOT / "corpus" / "seeds"
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, fn in T.SCENARIOS.items():
        if not (name.startswith("test_pmd_swap_") or name.startswith("matrix:")):
            continue
        T._CREATED.clear()
        try:
            fn()
        except AssertionError:
            pass
        for n, k in enumerate(T._CREATED):
            stem = name.replace("test_pmd_swap_", "pmd_swap-").replace("matrix:", "cow-")
            stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)
            path = out / (f"{stem}.trace" if n == 0 else f"{stem}-{n}.trace")
            if path.exists() and not args.force:
                continue
            src = ("selftests/mm/pmd_swap.c scenario" if name.startswith("test_")
                   else "cow.c-style matrix cell (case-setup)")
            path.write_text(format_trace(k.test_ops, comments=[f"{src}: {name}"]))
            written += 1
    print(f"wrote {written} seeds to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
