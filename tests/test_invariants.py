"""Tests of the named invariants (models/invariants.py), on both kernel models.

For every predicate of `INVARIANTS`: it holds on a realistic state reached through ops (and that state
really exercises it: it has the swap entries, cached or written-back folios, writable PTEs... the
predicate looks at), and it fires, with a message naming the problem, after one deliberate corruption
of that state, the kind of mistake a kernel bug would leave behind (a count one too high, a cache
entry cleared, a folio leaked, a PTE made writable on a shared page...). Each corruption is applied to
a fresh state and the predicate is called on a fresh `Scan`.

The realistic state (`STATE_OPS`), per region of pid 0's window:
  region 0 [0, 512)      MADV_HUGEPAGE, written, paged out before the fork: shared swap entries of
                         count 2 (one PMD swap entry per process in the PMD model, 512 PTE swap
                         entries in legacy); the THP is still in the swap cache under writeback
  region 1 [512, 1024)   MADV_HUGEPAGE, written: a PMD-mapped THP shared after fork (COW)
  region 2 [1024, 1088)  small pages: [1024, 1040) paged out before the fork (shared order-0 swap
                         entries), page 1030 faulted back in by pid 0, page 1050 COW-copied by pid 1,
                         pages 1070-1071 written by pid 0 after the fork and paged out (exclusive swap
                         entries of count 1)
  region 3 [1536, 2048)  MADV_HUGEPAGE, mapped and written by pid 0 after the fork and paged out: an
                         exclusive swap entry (PMD in the PMD model)
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.invariants import INVARIANTS, Scan, check_invariants
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.memory import ZERO_PFN
from pmdswap_fuzz.models.mm import PMD_HUGE, PMD_SWAP, PMD_TABLE, PTE_PRESENT, PTE_SWAP
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel

N = O.HPAGE_PMD_NR
KERNELS = [LegacyKernel, PmdSwapKernel]

STATE_OPS = [
    O.Mmap(0, 0, N), O.Write(0, 0, N, 1), O.Mmap(0, N, N), O.Write(0, N, N, 2),
    O.Mmap(0, 1024, 64, hugepage=False), O.Write(0, 1024, 64, 3),
    O.Pageout(0, 0, N), O.Pageout(0, 1024, 16),
    O.Fork(0),
    O.Fault(0, 1030), O.Write(1, 1050, 1, 4), O.Write(0, 1070, 2, 5), O.Pageout(0, 1070, 2),
    O.Mmap(0, 1536, N), O.Write(0, 1536, N, 6), O.Pageout(0, 1536, N),
]
SHARED_SWP = 1031  # region 2: a shared order-0 swap entry in both processes (count 2)
EXCL_SWP = 1070  # region 2: pid 0's exclusive swap entry (count 1)
FAULTED = 1030  # region 2: present in pid 0, still swapped in pid 1
SHARED_PRES = 1060  # region 2: present page shared by both processes after fork
OUTSIDE = 1500  # region 2, outside every VMA


def build(cls, ops=STATE_OPS):
    k = cls()
    for op in ops:
        res = k.apply(op)
        assert res == O.OK, f"{op}: {O.result_name(res)}"
    assert check_invariants(k) is None, check_invariants(k)
    return k


def holds(k, inv) -> None:
    msg = inv(Scan(k))
    assert msg is None, f"{inv.__name__} fails on a correct state: {msg}"


def fires(k, inv, *words) -> str:
    msg = inv(Scan(k))
    assert msg, f"{inv.__name__} did not notice the corruption"
    for w in words:
        assert str(w) in msg, f"{inv.__name__}: {w!r} not in {msg!r}"
    return msg


def slot_of(k, pid: int, page: int) -> int:
    """The slot a swapped page references (through a PTE or a PMD swap entry)."""
    mm = k.mms[pid]
    r = page // N
    if mm.pmd_kind[r] == PMD_SWAP:
        return int(mm.pmd_swp_off[r]) + page % N
    assert mm.pmd_kind[r] == PMD_TABLE and mm.pte_kind[page] == PTE_SWAP
    return int(mm.pte_swp_off[page])


def pfn_of(k, pid: int, page: int) -> int:
    mm = k.mms[pid]
    r = page // N
    if mm.pmd_kind[r] == PMD_HUGE:
        return int(mm.pmd_pfn[r]) + page % N
    assert mm.pte_kind[page] == PTE_PRESENT
    return int(mm.pte_pfn[page])


def cached_slot(k) -> tuple[int, int]:
    slots = np.flatnonzero(k.swap.cache >= 0)
    assert slots.size, "the state should have a swap-cache folio"
    s = int(slots[0])
    return s, int(k.swap.cache[s])


def free_slot(k) -> int:
    return int(np.flatnonzero(~k.swap.used)[-1])


@pytest.fixture(params=KERNELS, ids=["legacy", "pmd"])
def k(request):
    return build(request.param)


# ================================================================================================
def test_state_is_realistic(k):
    """The base state holds every invariant and contains what the corruptions below rely on."""
    assert check_invariants(k) is None
    sw, mem = k.swap, k.mem
    assert sw.count[slot_of(k, 0, 5)] == 2 and sw.count[slot_of(k, 1, SHARED_SWP)] == 2
    assert sw.count[slot_of(k, 0, EXCL_SWP)] == 1
    assert (sw.cache >= 0).any() and mem.writeback[:mem.high_water].any()
    assert k.mms[0].pmd_kind[1] == k.mms[1].pmd_kind[1] == PMD_HUGE
    assert pfn_of(k, 0, SHARED_PRES) == pfn_of(k, 1, SHARED_PRES)
    assert k.mms[1].pte_kind[FAULTED] == PTE_SWAP and k.mms[0].pte_kind[FAULTED] == PTE_PRESENT
    excl = k.mms[0].pmd_swp_excl[3] if k.mms[0].pmd_kind[3] == PMD_SWAP else k.mms[0].pte_swp_excl[1536]
    assert excl and k.mms[0].pte_swp_excl[EXCL_SWP]


# ---- swap_count_matches_entries -----------------------------------------------------------------
@pytest.mark.parametrize("delta,page", [(1, 5), (-1, 5), (1, SHARED_SWP), (-1, FAULTED)],
                         ids=["bumped-thp-slot", "dropped-thp-slot", "bumped-pte-slot",
                              "dropped-pte-slot"])
def test_swap_count_matches_entries(k, delta, page):
    from pmdswap_fuzz.models.invariants import swap_count_matches_entries as inv
    holds(k, inv)
    s = slot_of(k, 1, page)
    k.swap.count[s] += delta
    fires(k, inv, f"slot {s}", f"count {int(k.swap.count[s])}", "page-table references")


def test_swap_count_entry_removed_without_put(k):
    """The other side of the same mistake: an entry cleared without putting its slot."""
    from pmdswap_fuzz.models.invariants import swap_count_matches_entries as inv
    mm = k.mms[1]
    s = slot_of(k, 1, SHARED_SWP)
    mm.pte_kind[SHARED_SWP] = 0
    mm.swapents -= 1
    fires(k, inv, f"slot {s}")


# ---- exclusive_implies_count_one ----------------------------------------------------------------
def test_exclusive_implies_count_one_shared_pte_marked_exclusive(k):
    from pmdswap_fuzz.models.invariants import exclusive_implies_count_one as inv
    holds(k, inv)
    k.mms[1].pte_swp_excl[SHARED_SWP] = True
    fires(k, inv, "pid 1", f"slot {slot_of(k, 1, SHARED_SWP)}", "count is 2")


def test_exclusive_implies_count_one_exclusive_entry_duplicated(k):
    """A dup of an exclusive entry's slots (e.g. fork forgetting to clear the bit)."""
    from pmdswap_fuzz.models.invariants import exclusive_implies_count_one as inv
    s = slot_of(k, 0, 1536 + 7)
    k.swap.count[s] += 1
    fires(k, inv, "pid 0", f"slot {s}")


def test_exclusive_implies_count_one_shared_pmd_entry_marked_exclusive():
    from pmdswap_fuzz.models.invariants import exclusive_implies_count_one as inv
    k = build(PmdSwapKernel)
    assert k.mms[1].pmd_kind[0] == PMD_SWAP and not k.mms[1].pmd_swp_excl[0]
    k.mms[1].pmd_swp_excl[0] = True
    fires(k, inv, "pid 1", f"slot {int(k.mms[1].pmd_swp_off[0])}", "count is 2")


# ---- free_slots_are_clean -----------------------------------------------------------------------
def test_free_slots_are_clean_free_slot_with_count(k):
    from pmdswap_fuzz.models.invariants import free_slots_are_clean as inv
    holds(k, inv)
    s = free_slot(k)
    k.swap.count[s] = 1
    fires(k, inv, f"free slot {s}")


def test_free_slots_are_clean_freed_while_cached(k):
    from pmdswap_fuzz.models.invariants import free_slots_are_clean as inv
    s, _ = cached_slot(k)
    k.swap.used[s] = False
    fires(k, inv, f"free slot {s}")


def test_free_slots_are_clean_leaked_slot(k):
    from pmdswap_fuzz.models.invariants import free_slots_are_clean as inv
    s = free_slot(k)
    k.swap.used[s] = True
    fires(k, inv, f"slot {s}", "leak")


def test_free_slots_are_clean_foreign_slot_is_not_a_leak():
    """Fragment's slots belong to another user: allocated, no count, no folio, and no leak."""
    from pmdswap_fuzz.models.invariants import free_slots_are_clean as inv
    for cls in KERNELS:
        k = build(cls, STATE_OPS + [O.Fragment()])
        assert k.swap.foreign.sum() > 1
        holds(k, inv)


# ---- swap_cache_consistent ----------------------------------------------------------------------
def test_swap_cache_consistent_caches_freed_page(k):
    from pmdswap_fuzz.models.invariants import swap_cache_consistent as inv
    holds(k, inv)
    s, pfn = cached_slot(k)
    free_pfn = int(np.flatnonzero(k.mem.head[:k.mem.high_water] < 0)[0])
    k.swap.cache[s] = free_pfn
    fires(k, inv, f"slot {s}", "freed page")


def test_swap_cache_consistent_folio_swap_disagrees(k):
    from pmdswap_fuzz.models.invariants import swap_cache_consistent as inv
    s, pfn = cached_slot(k)
    k.mem.swap[pfn] = s + 1
    fires(k, inv, f"slot {s}", "folio->swap disagrees")


def test_swap_cache_consistent_cache_entry_cleared(k):
    """A cache entry cleared while the folio still says it is in the swap cache (folio->swap set).

    The docstring promises that the swap cache and folio->swap agree; only the direction
    cache -> folio is checked, so this corruption goes unnoticed (reported as a suspected gap)."""
    from pmdswap_fuzz.models.invariants import swap_cache_consistent as inv
    s, pfn = cached_slot(k)
    assert k.mem.swap[pfn] == s
    k.swap.cache[s] = -1
    fires(k, inv, f"slot {s}")


def test_swap_cache_consistent_folio_cached_with_no_device(k):
    from pmdswap_fuzz.models.invariants import swap_cache_consistent as inv
    assert k.apply(O.Swapoff()) == O.OK
    holds(k, inv)
    k.mem.swap[pfn_of(k, 0, SHARED_PRES)] = 7
    fires(k, inv, "no device")


# ---- rss_counters_match -------------------------------------------------------------------------
@pytest.mark.parametrize("field,delta", [("anonpages", 1), ("anonpages", -N), ("swapents", 1)])
def test_rss_counters_match(k, field, delta):
    from pmdswap_fuzz.models.invariants import rss_counters_match as inv
    holds(k, inv)
    mm = k.mms[1]
    setattr(mm, field, getattr(mm, field) + delta)
    fires(k, inv, "pid 1", "MM_ANONPAGES/MM_SWAPENTS", f"{mm.anonpages}/{mm.swapents}")


# ---- mapcounts_match ----------------------------------------------------------------------------
def test_mapcounts_match_pte_mapcount(k):
    from pmdswap_fuzz.models.invariants import mapcounts_match as inv
    holds(k, inv)
    pfn = pfn_of(k, 0, SHARED_PRES)
    assert k.mem.mapcount[pfn] == 2
    k.mem.mapcount[pfn] += 1
    fires(k, inv, f"pfn {pfn}", "mapcount 3", "mapped 2x")


def test_mapcounts_match_entire_mapcount(k):
    from pmdswap_fuzz.models.invariants import mapcounts_match as inv
    head = int(k.mms[0].pmd_pfn[1])
    assert k.mem.entire_mapcount[head] == 2
    k.mem.entire_mapcount[head] -= 1
    fires(k, inv, f"folio {head}", "entire_mapcount 1", "PMD-mapped 2x")


def test_mapcounts_match_mapped_page_freed(k):
    from pmdswap_fuzz.models.invariants import mapcounts_match as inv
    pfn = pfn_of(k, 1, 1050)
    k.mem.head[pfn] = -1
    fires(k, inv, f"pfn {pfn}", "mapped but free")


# ---- no_leaked_folio ----------------------------------------------------------------------------
@pytest.mark.parametrize("order", [0, 9])
def test_no_leaked_folio_allocated_and_dropped(k, order):
    from pmdswap_fuzz.models.invariants import no_leaked_folio as inv
    holds(k, inv)
    head = k.mem.alloc_folio(order)
    fires(k, inv, f"folio {head}", f"order {order}", "neither mapped nor cached")


def test_no_leaked_folio_unmapped_without_free(k):
    """A PTE cleared (mapcount dropped) but the folio not freed: the unmap path forgot the put."""
    from pmdswap_fuzz.models.invariants import no_leaked_folio as inv
    mm = k.mms[1]
    pfn = pfn_of(k, 1, 1050)
    assert k.mem.mapcount[pfn] == 1 and k.mem.swap[pfn] < 0
    mm.pte_kind[1050] = 0
    mm.anonpages -= 1
    k.mem.mapcount[pfn] = 0
    fires(k, inv, f"folio {pfn}")


# ---- writeback_only_in_swapcache ----------------------------------------------------------------
def test_writeback_only_in_swapcache_freed_folio(k):
    from pmdswap_fuzz.models.invariants import writeback_only_in_swapcache as inv
    holds(k, inv)  # the cached THP is under writeback: allowed
    assert k.mem.writeback[:k.mem.high_water].any()
    free_pfn = int(np.flatnonzero(k.mem.head[:k.mem.high_water] < 0)[0])
    k.mem.writeback[free_pfn] = True
    fires(k, inv, f"folio {free_pfn}", "writeback")


def test_writeback_only_in_swapcache_folio_left_cache(k):
    from pmdswap_fuzz.models.invariants import writeback_only_in_swapcache as inv
    pfn = pfn_of(k, 1, 1050)
    assert k.mem.swap[pfn] < 0
    k.mem.writeback[pfn] = True
    fires(k, inv, f"folio {pfn}")


# ---- writable_implies_exclusive -----------------------------------------------------------------
def test_writable_implies_exclusive_pte_on_shared_page(k):
    from pmdswap_fuzz.models.invariants import writable_implies_exclusive as inv
    assert k.mms[1].pte_write[1050]  # the COW copy is writable: allowed
    holds(k, inv)
    k.mms[1].pte_write[SHARED_PRES] = True
    fires(k, inv, "pid 1", "writable PTE", "not anon-exclusive")


def test_writable_implies_exclusive_pte_on_zero_page(k):
    from pmdswap_fuzz.models.invariants import writable_implies_exclusive as inv
    mm = k.mms[0]
    assert k.apply(O.Mmap(0, 1100, 8, hugepage=False)) == O.OK
    assert k.apply(O.Fault(0, 1102)) == O.OK  # read fault on a none page: the zero page
    assert mm.pte_kind[1102] == PTE_PRESENT and mm.pte_pfn[1102] == ZERO_PFN
    holds(k, inv)
    mm.pte_write[1102] = True
    fires(k, inv, "pid 0", "writable PTE")


def test_writable_implies_exclusive_pmd_on_shared_thp(k):
    from pmdswap_fuzz.models.invariants import writable_implies_exclusive as inv
    k.mms[0].pmd_write[1] = True
    fires(k, inv, "pid 0", "writable PMD", "region 1")


# ---- entries_inside_vmas ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [PTE_PRESENT, PTE_SWAP], ids=["present", "swap"])
def test_entries_inside_vmas_pte_outside_vma(k, kind):
    from pmdswap_fuzz.models.invariants import entries_inside_vmas as inv
    holds(k, inv)
    assert k.mms[0].find_vma(OUTSIDE) is None and k.mms[0].pmd_kind[OUTSIDE // N] == PMD_TABLE
    k.mms[0].pte_kind[OUTSIDE] = kind
    fires(k, inv, "pid 0", f"page {OUTSIDE}", "outside every VMA")


def test_entries_inside_vmas_entry_left_after_vma_shrunk(k):
    """munmap forgot to zap: the VMA shrank, its last PTE stayed."""
    from pmdswap_fuzz.models.invariants import entries_inside_vmas as inv
    mm = k.mms[1]
    i = next(j for j, v in enumerate(mm.vmas) if v.start == 1024)
    mm.vmas[i] = replace(mm.vmas[i], end=1031)
    fires(k, inv, "pid 1", "page 1031")


def _split_vma_at(mm, page: int) -> None:
    i = next(j for j, v in enumerate(mm.vmas) if v.start <= page < v.end)
    v = mm.vmas[i]
    mm.vmas[i:i + 1] = [replace(v, end=page), replace(v, start=page)]


def test_entries_inside_vmas_present_huge_entry_crosses_boundary(k):
    """A VMA split inside a PMD-mapped THP without splitting the PMD."""
    from pmdswap_fuzz.models.invariants import entries_inside_vmas as inv
    assert k.mms[0].pmd_kind[1] == PMD_HUGE
    _split_vma_at(k.mms[0], N + 100)
    fires(k, inv, "pid 0", "region 1", "crosses a VMA boundary")


def test_entries_inside_vmas_swap_pmd_crosses_boundary():
    """The same with a PMD swap entry (PMD model only: legacy holds PTE swap entries there)."""
    from pmdswap_fuzz.models.invariants import entries_inside_vmas as inv
    k = build(PmdSwapKernel)
    assert k.mms[0].pmd_kind[3] == PMD_SWAP
    _split_vma_at(k.mms[0], 3 * N + 100)
    fires(k, inv, "pid 0", "region 3", "crosses a VMA boundary")


# ---- nothing_references_removed_device ----------------------------------------------------------
def _after_swapoff(k):
    assert k.apply(O.Swapoff()) == O.OK and k.swap is None
    return k


def test_nothing_references_removed_device_pte(k):
    from pmdswap_fuzz.models.invariants import nothing_references_removed_device as inv
    _after_swapoff(k)
    holds(k, inv)
    mm = k.mms[1]
    assert mm.pmd_kind[2] == PMD_TABLE
    mm.pte_kind[1080] = PTE_SWAP
    mm.pte_swp_off[1080] = 9
    fires(k, inv, "pid 1", "after swapoff")


def test_nothing_references_removed_device_pmd(k):
    from pmdswap_fuzz.models.invariants import nothing_references_removed_device as inv
    _after_swapoff(k)
    mm = k.mms[0]
    mm.clear_pmd(1, PMD_SWAP)
    mm.pmd_swp_off[1] = N
    fires(k, inv, "pid 0", "after swapoff")


def test_nothing_references_removed_device_counter(k):
    from pmdswap_fuzz.models.invariants import nothing_references_removed_device as inv
    _after_swapoff(k)
    k.mms[0].swapents = 1
    fires(k, inv, "pid 0")


# ---- all_free_after_exit ------------------------------------------------------------------------
def test_all_free_after_exit(k):
    from pmdswap_fuzz.models.invariants import all_free_after_exit as inv
    assert k.swap.used[1:].any()
    for op in (O.Exit(1), O.Exit(0)):
        assert k.apply(op) == O.OK
    assert (k.swap.cache >= 0).any()  # writeback still holds the THP in the cache: not checked yet
    holds(k, inv)
    assert k.apply(O.Evict()) == O.OK
    assert not k.mms and not (k.swap.cache >= 0).any()
    holds(k, inv)
    s = free_slot(k)
    k.swap.used[s] = True
    fires(k, inv, f"slot {s}", "after every process exited")


def test_all_free_after_exit_slot_with_count_left(k):
    """A put missed at exit: the slot keeps a count and stays allocated."""
    from pmdswap_fuzz.models.invariants import all_free_after_exit as inv
    s = slot_of(k, 1, FAULTED)
    for op in (O.Exit(1), O.Exit(0), O.Evict()):
        assert k.apply(op) == O.OK
    k.swap.used[s] = True
    k.swap.count[s] = 1
    fires(k, inv, f"slot {s}")


# ---- writable_implies_soft_dirty ----------------------------------------------------------------
def test_writable_implies_soft_dirty(k):
    """After clear_refs every entry is clean and write-protected; making one writable again without
    marking it soft-dirty is what pte_needs_soft_dirty_wp() exists to prevent."""
    from pmdswap_fuzz.models.invariants import writable_implies_soft_dirty as inv
    mm = k.mms[0]
    assert k.apply(O.ClearRefs(0)) == O.OK
    holds(k, inv)
    pres = np.flatnonzero(np.repeat(mm.pmd_kind == PMD_TABLE, N) & (mm.pte_kind == PTE_PRESENT)
                          & (mm.pte_pfn != 0))
    assert pres.size
    p = int(pres[0])
    k.mem.anon_exclusive[mm.pte_pfn[p]] = True  # keep writable_implies_exclusive out of the way
    mm.pte_write[p] = True
    fires(k, inv, "pid 0", f"page {p}", "not soft-dirty")


# ================================================================================================
COVERED = {
    "swap_count_matches_entries", "exclusive_implies_count_one", "free_slots_are_clean",
    "swap_cache_consistent", "rss_counters_match", "mapcounts_match", "no_leaked_folio",
    "writeback_only_in_swapcache", "writable_implies_exclusive", "writable_implies_soft_dirty",
    "entries_inside_vmas",
    "nothing_references_removed_device", "all_free_after_exit",
}


def test_every_invariant_has_tests():
    """A predicate added to INVARIANTS without tests here fails this test."""
    names = [inv.__name__ for inv in INVARIANTS]
    assert len(set(names)) == len(names)
    assert set(names) == COVERED
    for inv in INVARIANTS:
        assert inv.__doc__ and inv.__doc__.strip(), f"{inv.__name__} has no one-line meaning"


def test_check_invariants_names_first_failure(k):
    """check_invariants returns (name, message) of the first failing predicate in table order."""
    k.mms[0].anonpages += 1  # rss_counters_match
    k.mem.alloc_folio(0)  # no_leaked_folio, later in the table
    name, msg = check_invariants(k)
    assert name == "rss_counters_match" and "pid 0" in msg
    k.mms[0].anonpages -= 1
    name, msg = check_invariants(k)
    assert name == "no_leaked_folio"


def test_exit_checks_the_rss_counters_before_dropping_the_mm():
    """check_mm() (kernel/fork.c): an exiting process's counters must be zero once everything is
    unmapped; invariants run after the op, when the mm is gone, so exit checks them itself."""
    from pmdswap_fuzz.models.errors import ModelBug
    from pmdswap_fuzz.models.legacy import LegacyKernel

    class ZapForgetsSwapents(LegacyKernel):
        def zap_pte_range(self, mm, lo, hi):
            before = mm.swapents
            super().zap_pte_range(mm, lo, hi)
            mm.swapents = before  # BUG: MM_SWAPENTS not decremented

    k = build(LegacyKernel, [O.Mmap(0, 0, 64, hugepage=False), O.Write(0, 0, 4, 1),
                             O.Pageout(0, 0, 4), O.Fork(0)])
    assert k.apply(O.Exit(1)) == O.OK
    k = build(ZapForgetsSwapents, [O.Mmap(0, 0, 64, hugepage=False), O.Write(0, 0, 4, 1),
                                   O.Pageout(0, 0, 4), O.Fork(0)])
    with pytest.raises(ModelBug, match="check_mm: pid 1 exits with MM_ANONPAGES 0, MM_SWAPENTS 4"):
        k.apply(O.Exit(1))
