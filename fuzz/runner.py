"""Run one op sequence on both models with the oracle after every op: the one loop every engine uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.legacy import LegacyKernel

from .oracle import Divergence, Oracle


@dataclass
class RunResult:
    divergence: Divergence | None
    executed: int  # ops run (up to and including the diverging one)
    cells: set = field(default_factory=set)  # (entry state, op kind) cells exercised


def make_models(bug: str | None = None):
    """A fresh (legacy, pmd) pair; `bug` names a catalogue bug injected into the PMD model."""
    from pmdswap_fuzz.models.bugs import make_pmd_kernel  # KeyError lists the valid names

    return LegacyKernel(), make_pmd_kernel(bug)


def run_trace(ops: list[O.Op], bug: str | None = None) -> RunResult:
    """Apply every op to both models; stop at the first divergence."""
    legacy, pmd = make_models(bug)
    oracle = Oracle(legacy, pmd)
    for i, op in enumerate(ops):
        div = oracle.step(i, op)
        if div is not None:
            return RunResult(div, i + 1, oracle.cells)
    return RunResult(None, len(ops), oracle.cells)
