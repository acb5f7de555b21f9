#!/usr/bin/env python3
"""atheris/libFuzzer harness: the bytes become ops, both models run them with the oracle, a divergence raises.

Thin on purpose: fuzz.fuzzer_input says what the bytes mean (mostly the generator's decisions,
fuzz.gen; seeds in the flat decoder's form), fuzz.runner runs them. Run by `pmdswap-fuzz run --engine
atheris` (which passes libFuzzer flags), or by hand: `fuzz/atheris_target.py CORPUS_DIR -max_total_time=60`.
The catalogue bug to inject comes from the PMDSWAP_BUG environment variable, the length of a
generated sequence from PMDSWAP_LENGTH (default 32, as `run --length`).
"""

import os
import sys

import atheris
import numpy  # noqa: F401  (imported outside the instrumented block: not worth instrumenting)



def _instrumented(packages):
    """Branch coverage only: atheris 3.0.0's comparison tracing (trace_dataflow) keeps every numpy
    array a traced `==` produces alive (~0.5 MB per execution here), so it is turned off."""
    try:
        from atheris.import_hook import HookManager
        return HookManager(set(packages), set(), True, trace_dataflow=False)
    except (ImportError, TypeError):  # a future atheris: fall back to the public API
        return atheris.instrument_imports(include=list(packages))


with _instrumented(["pmdswap_fuzz"]):
    from pmdswap_fuzz.fuzz.fuzzer_input import ops_from_input
    from pmdswap_fuzz.fuzz.runner import run_trace

BUG = os.environ.get("PMDSWAP_BUG") or None
LENGTH = int(os.environ.get("PMDSWAP_LENGTH") or 0) or None  # ops per generated sequence


class DivergenceFound(AssertionError):
    pass


def TestOneInput(data: bytes) -> None:
    ops = ops_from_input(data, LENGTH) if LENGTH else ops_from_input(data)
    res = run_trace(ops, BUG)
    if res.divergence is not None:
        d = res.divergence
        raise DivergenceFound(f"{d.signature()} at op {d.op_index}: {d.detail}")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
