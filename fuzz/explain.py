"""What a divergence looks like: both models replayed around the diverging op, and the (pid, 2 MiB
region) pairs it involves. `repro` draws these as text rulers, `report` as coloured HTML ones."""

from __future__ import annotations

from dataclasses import dataclass, field

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.observe import Observation, observe

from . import runner

__all__ = ["RULER_ROW", "Around", "affected", "op_regions", "replay_around"]

RULER_ROW = 64  # pages per ruler row: a region is 8 rows, each fits a terminal


def op_regions(op: O.Op) -> list[int]:
    """The 2 MiB regions an op's page fields touch."""
    pages = []
    if hasattr(op, "page"):
        pages.append(op.page)
    n = getattr(op, "npages", 1)
    for name in ("start", "src", "dst"):
        if hasattr(op, name):
            a = getattr(op, name)
            pages += [a, min(a + n, O.VA_PAGES) - 1]
    if hasattr(op, "new_npages"):
        pages.append(min(op.start + op.new_npages, O.VA_PAGES) - 1)
    regions = sorted({p // O.HPAGE_PMD_NR for p in pages})
    return list(range(regions[0], regions[-1] + 1)) if regions else []


def affected(div, observations) -> list[tuple[int, int]]:
    """(pid, region) pairs to draw: the divergence's process (every process for a fork, which
    makes one, or an op of no single process) and its pages' regions (or the op's, or for an op
    without pages every region the process maps)."""
    pids = [div.pid] if div.pid is not None else []
    if not pids and hasattr(div.op, "pid"):
        pids = [div.op.pid]
    if not pids or isinstance(div.op, O.Fork):  # a fork involves the child it made too
        pids = sorted(set(pids) | {p for obs in observations for p in obs.procs})
    if div.pages:
        regions = sorted({int(p) // O.HPAGE_PMD_NR for p in div.pages})
    else:
        regions = op_regions(div.op)
    out = []
    for pid in pids:
        rs = regions
        if not rs:  # no page in the op (fork, evict...): every region the process maps
            rs = sorted({r for obs in observations if pid in obs.procs
                         for (a, b, *_rest) in obs.procs[pid].vmas
                         for r in range(a // O.HPAGE_PMD_NR, (b - 1) // O.HPAGE_PMD_NR + 1)})
        out += [(pid, r) for r in rs]
    return out


@dataclass
class Around:
    """Both models' observations before and after the diverging op."""
    names: list[str]
    before: list[Observation]
    after: list[Observation]
    regions: list[tuple[int, int]]  # affected (pid, region) pairs
    errors: dict[str, str] = field(default_factory=dict)  # model name -> the exception it raised


def replay_around(ops: list[O.Op], div, bug: str | None) -> Around:
    """Replay both models (the bug injected as in the campaign) up to and through op #div.op_index.
    A model that raises keeps the state it had: the picture shows what is left."""
    models = runner.make_models(bug)
    before, after, errors = [], [], {}
    for k in models:
        i = -1
        try:
            for _i, op in enumerate(ops[:div.op_index]):
                k.apply(op)
            before.append(observe(k))
            i = div.op_index
            k.apply(ops[div.op_index])
        except Exception as e:  # noqa: BLE001 - the model crashed: draw what is left
            errors[k.name] = f"{type(e).__name__} at op #{i}: {e}"
            if len(before) < len(after) + 1:
                before.append(observe(k))
        after.append(observe(k))
    return Around([k.name for k in models], before, after, affected(div, after), errors)
