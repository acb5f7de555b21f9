"""`run_guarded`: `run_trace` that turns a model exception (ModelBug, BadOp, any crash) into a finding.

The oracle compares results and invariants; a model that raises instead of returning is a finding
too, and the engines must keep going. The diverging op of a crash is found by bisecting prefixes
with `run_trace`, so only the runner's public interface is used (the crash path is rare, the
normal path costs one try/except).
"""

from __future__ import annotations

from pmdswap_fuzz.models import ops as O

from . import runner
from .oracle import Divergence
from .runner import RunResult

__all__ = ["run_guarded", "crash_divergence", "exception_divergence"]


def exception_divergence(i: int, op: O.Op, exc: BaseException) -> Divergence:
    """The finding for a model that raised `exc` while running op #i."""
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return Divergence(f"exception:{type(exc).__name__}", i, op, getattr(op, "pid", None), (),
                      msg, "", "")


def _raises(ops: list[O.Op], bug: str | None) -> Exception | None:
    try:
        runner.run_trace(ops, bug)
    except Exception as e:  # noqa: BLE001 - any model crash is a finding
        return e
    return None


def crash_divergence(ops: list[O.Op], bug: str | None, exc: Exception) -> RunResult:
    """The RunResult of a trace whose run raised `exc`: the op is the shortest raising prefix's last."""
    if not ops:
        raise exc
    lo, hi = 0, len(ops)  # ops[:hi] raises; ops[:lo] does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _raises(ops[:mid], bug) is not None:
            hi = mid
        else:
            lo = mid
    first = _raises(ops[:hi], bug) or exc
    return RunResult(exception_divergence(hi - 1, ops[hi - 1], first), hi, set())


def run_guarded(ops: list[O.Op], bug: str | None = None) -> RunResult:
    """`runner.run_trace`, with a model exception reported as an `exception:<Type>` divergence."""
    try:
        return runner.run_trace(ops, bug)
    except Exception as e:  # noqa: BLE001
        return crash_divergence(ops, bug, e)
