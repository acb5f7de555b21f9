"""The batched fast paths of models/mm.py give exactly the state of the one-at-a-time kernel loop.

`Kernel._batch_write_faults` (runs of write faults, including swap-ins),
`Kernel._shrink_order0_batch` (runs of order-0 reclaim) and `Kernel.folios_put_if_unused` (the
last put of many folios after a zap) exist only for speed. Each generated sequence
is run on a model with them and on one without, and every observation must be identical."""

import random

import numpy as np
import pytest

from pmdswap_fuzz.fuzz.gen import generate
from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.mm import PTE_PRESENT, PTE_SWAP, Kernel
from pmdswap_fuzz.models.observe import observe
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel


def _unbatched(cls):
    return type(cls.__name__ + "Unbatched", (cls,), {
        "_batch_write_faults": lambda self, mm, p, hi: False,
        "_shrink_order0_batch": lambda self, queue: False,
        "folios_put_if_unused": lambda self, heads: [self.folio_put_if_unused(int(h)) for h in heads],
    })


def _same(a, b) -> str | None:
    if a.vmstat != b.vmstat:
        return f"vmstat {a.vmstat} != {b.vmstat}"
    for name in ("swap_count", "swap_cached", "swap_free"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or x is not None and not np.array_equal(x, y):
            return name
    if set(a.procs) != set(b.procs):
        return "processes"
    for pid in a.procs:
        pa, pb = a.procs[pid], b.procs[pid]
        for f in ("state", "contents", "swp_off", "soft_dirty", "uffd_wp", "exclusive", "writable",
                  "pmd_level"):
            if not np.array_equal(getattr(pa, f), getattr(pb, f)):
                return f"pid {pid} {f}"
        if (pa.vmas, pa.rss_anon, pa.vm_swap, pa.smaps) != (pb.vmas, pb.rss_anon, pb.vm_swap, pb.smaps):
            return f"pid {pid} layout or counters"
    return None


def _runs_that_batch():
    """Generated sequences plus directed ones that certainly take the batched paths."""
    directed = [
        [O.Mmap(0, 0, 2 * N, False), O.Write(0, 0, 2 * N, 3), O.Pageout(0, 0, 2 * N), O.Evict(),
         O.Write(0, 10, 700, 4), O.Pageout(0, 0, N)],
        [O.Mmap(0, 0, 2 * N, True), O.Write(0, 0, 2 * N, 3), O.Pageout(0, 0, 2 * N), O.Evict(),
         O.Fork(0), O.Write(1, 5, 600, 4), O.Fork(1), O.Write(2, 0, N, 6), O.Write(0, 0, N, 7)],
        [O.Mmap(0, 0, N, True), O.Write(0, 0, N, 1), O.Fragment(), O.Pageout(0, 0, N), O.Fork(0),
         O.Write(1, 0, N, 2), O.Swapoff(), O.Swapon(True), O.Pageout(0, 0, N), O.Write(0, 0, N, 5)],
    ]
    return directed + list(SWAPIN_RUNS.values()) + [generate(random.Random(900 + i), 32)
                                                    for i in range(30)]


N = O.HPAGE_PMD_NR
# One directed sequence per kind of swap-in run the batch takes (the last write faults the run).
SWAPIN_RUNS = {
    # exclusive entries, slots not cached (async writeback completed by evict)
    "exclusive": [O.Mmap(0, 0, N, False), O.Write(0, 0, N, 1), O.Pageout(0, 0, N), O.Evict(),
                  O.Write(0, 0, N, 2)],
    # exclusive entries under soft-dirty tracking: mapped read-only, reused by do_wp_page()
    "soft-dirty wp": [O.Mmap(0, 0, N, False), O.Write(0, 0, N, 1), O.ClearRefs(0),
                      O.Pageout(0, 0, N), O.Evict(), O.Write(0, 0, N, 2)],
    # non-exclusive entries of count 1 (the child that shared them exited)
    "sole": [O.Mmap(0, 0, N, False), O.Write(0, 0, N, 1), O.Pageout(0, 0, N), O.Fork(0),
             O.Exit(1), O.Evict(), O.Write(0, 0, N, 2)],
    # non-exclusive entries of count 2: read into the swap cache, then copied
    "shared": [O.Mmap(0, 0, N, False), O.Write(0, 0, N, 1), O.Pageout(0, 0, N), O.Fork(0),
               O.Evict(), O.Write(0, 0, N, 2)],
    # the same, with every slot still cached (async writeback in flight): mapped, then copied
    "shared, cached": [O.Mmap(0, 0, N, False), O.Write(0, 0, N, 1), O.Pageout(0, 0, N),
                       O.Fork(0), O.Write(0, 0, N, 2)],
}


@pytest.mark.parametrize("cls", [LegacyKernel, PmdSwapKernel], ids=["legacy", "pmd"])
def test_batched_paths_match_one_at_a_time(cls):
    slow_cls = _unbatched(cls)
    batched_something = False
    for ops in _runs_that_batch():
        fast, slow = cls(), slow_cls()
        for i, op in enumerate(ops):
            assert fast.apply(op) == slow.apply(op), f"op #{i} {op}"
            diff = _same(observe(fast), observe(slow))
            assert diff is None, f"op #{i} {op}: {diff}"
        batched_something |= fast.vmstat["pswpout"] > 0
    assert batched_something


def test_unbatched_kernel_really_skips_the_fast_paths(monkeypatch):
    """Guard for the test above: the fast paths are what it switches off."""
    calls = []
    orig = Kernel._shrink_order0_batch
    monkeypatch.setattr(Kernel, "_shrink_order0_batch", lambda self, q: calls.append(1) or orig(self, q))
    k = LegacyKernel()
    for op in _runs_that_batch()[0]:
        k.apply(op)
    assert calls
    calls.clear()
    k = _unbatched(LegacyKernel)()
    for op in _runs_that_batch()[0]:
        k.apply(op)
    assert not calls


@pytest.mark.parametrize("kind", sorted(SWAPIN_RUNS))
@pytest.mark.parametrize("cls", [LegacyKernel, PmdSwapKernel], ids=["legacy", "pmd"])
def test_each_swapin_run_kind_is_batched(cls, kind, monkeypatch):
    """Guard for the equivalence test: each directed sequence's last write really takes one batch
    for the whole region (so the equivalence above covers that kind of run)."""
    taken = []
    orig = Kernel._batch_swapin_writes
    monkeypatch.setattr(Kernel, "_batch_swapin_writes",
                        lambda self, mm, vma, p, end: taken.append((p, end)) or orig(self, mm, vma, p, end))
    k = cls()
    ops = SWAPIN_RUNS[kind]
    for op in ops[:-1]:
        assert k.apply(op) == O.OK
    mm = k.mms[0]
    assert (mm.pte_kind[:N] == PTE_SWAP).all()
    assert k.apply(ops[-1]) == O.OK
    assert taken == [(0, N)]  # one call, the whole run batched
    assert (mm.pte_kind[:N] == PTE_PRESENT).all() and mm.pte_write[:N].all()
