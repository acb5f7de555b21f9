"""Scenario tests for the PMD-SWAP kernel model (models/pmd_swap.py), in the style of selftests/mm/cow.c.

Three groups, each test named after what it covers:
  1. `test_matrix[<case>-with_<setup>]`: memory setups x test cases, as cow.c does (a PMD-mapped THP;
     a THP swapped out as one PMD swap entry whose folio is still in the swap cache; the same entry
     after memory.reclaim evicted the folio; on a synchronous zram-like device; after fork, where both
     processes hold the PMD swap entry with per-slot counts 2 and neither entry is exclusive);
  2. `test_pmd_swap_<name>`: every scenario of the series' selftest tools/testing/selftests/mm/pmd_swap.c
     in its newest version (docs/kernel-behaviour.md section 5), one test each;
  3. `test_fallback_<name>`: every condition of docs/kernel-behaviour.md section 2 under which this
     kernel behaves
     like legacy, reached through ops, asserting the legacy representation afterwards.
A fourth group, `test_differential[<scenario>]`, replays the op list of every scenario above through
`fuzz.runner.run_trace` (both models plus the oracle) and requires no divergence: the oracle must accept
two correct models.

Expected values are what the kernel with the series does (docs/kernel-behaviour.md sections 0-2, 4, 5,
docs/research-notes.md), not what the model happens to do: a failure is a model bug unless the cited
section says otherwise. Each case's docstring cites its section and says [I] where the expected
behaviour is an inference (marked [I] in docs/kernel-behaviour.md or models/pmd_swap.py).

Layout: pid 0 maps one MADV_HUGEPAGE VMA over pages [0, 512) (region 0, PMD aligned) and writes value 1,
so page i holds (1 << 16) | i. Slot 0 of the swap device is the header, so the first 512-slot cluster,
the one a PMD swap entry gets, is slots 512..1023 (subpage i -> slot 512 + i). Move targets: page 1024
(region 2, aligned) and page 1280 (unaligned). Faults touch page 3.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import numpy as np
import pytest

from pmdswap_fuzz.fuzz.runner import run_trace
from pmdswap_fuzz.models import ops as O
from scenario_helpers import apply, assert_counters, assert_pages, assert_slots, val
from pmdswap_fuzz.models.mm import MINCORE_UNSET
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, UNMAPPED, observe
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel

N = O.HPAGE_PMD_NR
ALL = np.arange(N)
LO, HI = np.arange(N // 2), np.arange(N // 2, N)  # the two halves of region 0
BASE = 512  # first slot of the first free cluster (slot 0 is the swap header)
SLOTS = BASE + ALL  # slot of subpage i of a PMD swap entry: base + i
P = 3  # the page the fault cases touch
DST = 1024  # PMD-aligned page in region 2
DST_UNALIGNED = 1280  # half-way into region 2
EBUSY = -errno.EBUSY

# Every PmdSwapKernel a scenario creates, with the ops applied to it (for the differential replay).
_CREATED: list[PmdSwapKernel] = []


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def new_kernel() -> PmdSwapKernel:
    k = PmdSwapKernel()
    k.test_ops = []  # the ops `apply` ran on it, in order
    _CREATED.append(k)
    return k


def vmas(k: PmdSwapKernel, pid: int = 0) -> list[tuple[int, int, int]]:
    return [(a, b, p) for a, b, p, _h, _u in observe(k).procs[pid].vmas]


def thp(k: PmdSwapKernel) -> None:
    """mmap 2 MiB + MADV_HUGEPAGE + write value 1: a PMD-mapped THP (do_huge_pmd_anonymous_page)."""
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Write(0, 0, N, value=1))


def assert_pmd_swap_entry(k: PmdSwapKernel, pid: int, pages=ALL, slots=SLOTS, excl=None, **more) -> None:
    """A PMD swap entry over region 0: every subpage swapped, PMD-level, offset base+i, data intact."""
    want = dict(state=SWAPPED, pmd_level=True, swp_off=slots, contents=val(1, pages))
    if excl is not None:
        want["exclusive"] = excl
    want.update(more)
    assert_pages(k, pid, pages, **want)


def assert_pte_swap_entries(k: PmdSwapKernel, pid: int, pages, slots=None, **more) -> None:
    """The legacy representation: PTE swap entries (pmd_level False), offsets base+i by default."""
    want = dict(state=SWAPPED, pmd_level=False, contents=val(1, pages))
    want["swp_off"] = BASE + np.asarray(pages) % N if slots is None else slots
    want.update(more)
    assert_pages(k, pid, pages, **want)


def assert_thp(k: PmdSwapKernel, pid: int, pages=ALL, contents=None, **more) -> None:
    """The whole 2 MiB present under one PMD (check_huge_anon), data intact."""
    want = dict(state=PRESENT, pmd_level=True,
                contents=val(1, np.asarray(pages) % N) if contents is None else contents)
    want.update(more)
    assert_pages(k, pid, pages, **want)


# ------------------------------------------------------------------------------------------------
# 1. setups (cow.c "memory setups")
# ------------------------------------------------------------------------------------------------
@dataclass
class Setup:
    """What a setup built, in kernel terms, so the cases can state the kernel's outcome."""

    k: PmdSwapKernel
    swapped: bool  # region 0 of pid 0 is one PMD swap entry (else a PMD-mapped THP)
    cached: bool  # its PMD-sized folio is still in the swap cache (async device, under writeback)
    excl: bool  # the entry (or THP) is anon-exclusive
    count: int  # per-slot count (page-table references), 0 for the present THP
    sync: bool  # SWP_SYNCHRONOUS_IO device
    pids: tuple[int, ...]  # processes mapping the data


def setup_pmd_thp() -> Setup:
    """PMD-mapped THP: MADV_HUGEPAGE + write -> do_huge_pmd_anonymous_page (§0)."""
    k = new_kernel()
    thp(k)
    return Setup(k, False, False, True, 0, False, (0,))


def setup_swapped_cached() -> Setup:
    """MADV_PAGEOUT on an async device: one PMD swap entry (§1.1 PMD column, v2 15/16); the PMD-sized
    folio stays in the swap cache under writeback until a later reclaim pass."""
    k = new_kernel()
    thp(k)
    apply(k, O.Pageout(0, 0, N))
    return Setup(k, True, True, True, 1, False, (0,))


def setup_swapped_evicted() -> Setup:
    """The PMD swap entry after memory.reclaim (`Evict`): writeback done, the folio left the cache."""
    s = setup_swapped_cached()
    apply(s.k, O.Evict())
    s.cached = False
    return s


def setup_swapped_sync() -> Setup:
    """The PMD swap entry on a SWP_SYNCHRONOUS_IO device (zram-like): written at once, not cached."""
    k = new_kernel()
    apply(k, O.Swapoff())
    apply(k, O.Swapon(sync=True))
    thp(k)
    apply(k, O.Pageout(0, 0, N))
    return Setup(k, True, False, True, 1, True, (0,))


def setup_after_fork() -> Setup:
    """Evicted PMD swap entry, then fork (§1.3 PMD column): both processes hold a PMD swap entry over
    the same 512 slots (count 2 each); the parent's entry is no longer exclusive [I: required by EX]."""
    s = setup_swapped_evicted()
    apply(s.k, O.Fork(0))
    s.excl, s.count, s.pids = False, 2, (0, 1)
    return s


SETUPS = {
    "PMD-mapped_THP": setup_pmd_thp,
    "PMD_swap_entry_in_swapcache": setup_swapped_cached,
    "PMD_swap_entry_evicted": setup_swapped_evicted,
    "PMD_swap_entry_on_sync_device": setup_swapped_sync,
    "PMD_swap_entry_after_fork": setup_after_fork,
}


# ------------------------------------------------------------------------------------------------
# 1. cases (cow.c "test cases")
# ------------------------------------------------------------------------------------------------
def _others_untouched(s: Setup, pages=ALL) -> None:
    """Every process but pid 0 still holds its PMD swap entry with the data."""
    for pid in s.pids[1:]:
        assert_pmd_swap_entry(s.k, pid, pages)
        assert_counters(s.k, pid, 0, N)


def _put_slots(s: Setup, slots: np.ndarray) -> None:
    """Slots pid 0 dropped its reference to (§0 slot lifecycle, §1.5): count - 1; a 0-count slot is
    freed unless still cached (the async setup's folio is under writeback and is not looked up by the
    zap, pmd_swap.c munmap); memory.reclaim then frees it."""
    k = s.k
    left = s.count - 1
    assert_slots(k, slots, count=left, cached=s.cached, free=left == 0 and not s.cached)
    if s.cached:
        apply(k, O.Evict())
        assert_slots(k, slots, count=left, cached=False, free=left == 0)


def case_setup_pagemap(s: Setup) -> None:
    """The setup itself, as pagemap/smaps show it (§0, §1.1 PMD column, §1.12, §1.13; pmd_swap.c
    basic/pagemap): every subpage swapped, offset base+i (frame type | (base+i) << 5), bit 63 clear,
    no uffd-wp, SD from VM_SOFTDIRTY; VmSwap 2 MiB; thp_swpout_pmd went up, nothing split."""
    k = s.k
    if not s.swapped:
        assert_thp(k, 0, writable=True, exclusive=True, swp_off=-1)
        assert_counters(k, 0, N, 0)
        assert k.vmstat["thp_swpout_pmd"] == 0
        return
    for pid in s.pids:
        assert_pmd_swap_entry(k, pid, excl=s.excl, uffd_wp=False, soft_dirty=True, writable=False)
        assert_counters(k, pid, 0, N)
        po = observe(k).procs[pid]
        assert po.smaps == ((0, N, 0, N, 0),)  # Rss 0, Swap 2 MiB, AnonHugePages 0
    assert_slots(k, SLOTS, count=s.count, cached=s.cached, free=False)
    assert k.vmstat["thp_swpout_pmd"] == 1
    assert k.vmstat["thp_swpout_fallback"] == 0
    assert k.vmstat["thp_split_pmd"] == 0  # TTU_SPLIT_HUGE_PMD was dropped (v2 15/16)
    assert k.vmstat["pswpout"] == N


def case_read_fault(s: Setup) -> None:
    """Read fault (§1.2 PMD column steps 1-4, §1.10): do_huge_pmd_swap_page() maps the whole 2 MiB
    under one PMD (thp_swpin_pmd + 1; an uncached entry is read in one PMD-order swapin_sync() read);
    the PMD is exclusive iff the entry was, and never writable when not exclusive; all 512 slots are
    put. [I] The swap cache is dropped as should_try_to_free_swap() would: on a sync device only."""
    k = s.k
    apply(k, O.Fault(0, P))
    if not s.swapped:
        assert_thp(k, 0, writable=True, exclusive=True)
        assert k.vmstat["thp_swpin_pmd"] == 0
        return
    assert_thp(k, 0, exclusive=s.excl, uffd_wp=False)
    if not s.excl:
        assert_pages(k, 0, ALL, writable=False)
    assert_counters(k, 0, N, 0)
    assert k.vmstat["thp_swpin_pmd"] == 1
    assert k.vmstat["thp_swpin_pmd_fallback"] == 0
    assert k.vmstat["pswpin"] == (0 if s.cached else N)
    left = s.count - 1
    cached = not (s.sync and left == 0)
    assert_slots(k, SLOTS, count=left, cached=cached, free=left == 0 and not cached)
    _others_untouched(s)


def case_write_fault(s: Setup) -> None:
    """Write fault (§1.2 PMD column steps 3-4, 6; §3.2 D5, D11): an exclusive entry maps the whole THP
    writable and dirty, soft-dirty on all 512 pages; a shared one (after fork) maps RO, then
    do_huge_pmd_wp_page() cannot reuse the THP (the other process still references its slots), splits
    the PMD and COWs one 4 KiB page. [I] As in Linux 7.3's do_swap_page() (research-notes Q1(c)),
    should_try_to_free_swap() frees the swap cache on a write fault by the exclusive user, unless
    the folio is still under writeback (the async setup before `evict`)."""
    k = s.k
    apply(k, O.Write(0, P, 1, value=2))
    want = np.where(ALL == P, val(2, ALL), val(1, ALL))
    if not s.swapped:
        assert_thp(k, 0, contents=want, writable=True)
        return
    assert k.vmstat["thp_swpin_pmd"] == 1
    assert_counters(k, 0, N, 0)
    if s.excl:
        assert_thp(k, 0, contents=want, writable=True, exclusive=True, soft_dirty=True)
        cached = s.cached  # under writeback: folio_free_swap() refuses
        assert_slots(k, SLOTS, count=0, cached=cached, free=not cached)
    else:
        assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False, contents=want)
        assert_pages(k, 0, [P], writable=True, exclusive=True, soft_dirty=True)
        assert_pages(k, 0, np.setdiff1d(ALL, [P]), writable=False, exclusive=False)
        assert_slots(k, SLOTS, count=s.count - 1, cached=True)
    _others_untouched(s)


def _fork_then_write(s: Setup, writer_is_child: bool) -> None:
    k = s.k
    child = len(s.pids)
    apply(k, O.Fork(0))
    # copy_huge_non_present_pmd(): one dup of 512 slots; parent and child entries not exclusive
    for pid in (0, child):
        if s.swapped:
            assert_pmd_swap_entry(k, pid, excl=False)
        else:
            assert_thp(k, pid, writable=False, exclusive=False)
    if s.swapped:
        assert_slots(k, SLOTS, count=s.count + 1)
    w, o = (child, 0) if writer_is_child else (0, child)
    apply(k, O.Write(w, P, 1, value=2))
    # COW isolation: the writer sees its data, every other process keeps value 1 everywhere
    assert_pages(k, w, ALL, state=PRESENT, contents=np.where(ALL == P, val(2, ALL), val(1, ALL)))
    assert_pages(k, w, [P], writable=True, exclusive=True, pmd_level=False)
    if s.swapped:
        assert_pmd_swap_entry(k, o, excl=False)
        assert_slots(k, SLOTS, count=s.count)
    else:
        assert_thp(k, o, writable=False)
    for pid in s.pids[1:]:
        if pid != w:
            assert_pmd_swap_entry(k, pid)


def case_fork_child_writes(s: Setup) -> None:
    """Basic COW after fork(), child writes (§1.3 PMD column, §1.2 step 6, §3.1 I1, §4 items 5, 20;
    cow.c test_cow_in_child): the entry is duplicated, neither copy exclusive ([I] for the parent's
    entry: required by invariant EX), the child's write copies and the parent reads its old data."""
    _fork_then_write(s, writer_is_child=True)


def case_fork_parent_writes(s: Setup) -> None:
    """COW after fork(), parent writes (§1.3, §1.2 step 6, §3.1 I1; pmd_swap.c fork_cow parent side);
    [I] the parent's entry loses EXCL at fork (required by invariant EX)."""
    _fork_then_write(s, writer_is_child=False)


def case_munmap_partial(s: Setup) -> None:
    """munmap of the upper half (§1.5 PMD column: partial -> split; §1.16; §4 item 17; pmd_swap.c
    split_munmap): the entry becomes 512 PTE swap entries, the lower half stays swapped with offsets
    base+i, the unmapped half's slots lose one reference each."""
    k = s.k
    apply(k, O.Munmap(0, N // 2, N // 2))
    assert vmas(k) == [(0, N // 2, O.PROT_RW)]
    assert_pages(k, 0, HI, state=UNMAPPED, contents=0)
    if not s.swapped:
        assert_pages(k, 0, LO, state=PRESENT, pmd_level=False, contents=val(1, LO))
        assert_counters(k, 0, N // 2, 0)
        return
    assert_pte_swap_entries(k, 0, LO, exclusive=s.excl)
    assert_counters(k, 0, 0, N // 2)
    assert_slots(k, BASE + LO, count=s.count, free=False)
    _put_slots(s, BASE + HI)
    assert_pte_swap_entries(k, 0, LO)  # still readable from the device after the cache went
    _others_untouched(s)


def case_munmap_whole(s: Setup) -> None:
    """munmap of the whole 2 MiB (§1.5 PMD column: zap_huge_pmd swap branch puts all 512 slots;
    pmd_swap.c munmap: VmSwap drops by 2 MiB, slots freed without looking up a folio)."""
    k = s.k
    apply(k, O.Munmap(0, 0, N))
    assert vmas(k) == []
    assert_pages(k, 0, ALL, state=UNMAPPED, contents=0)
    assert_counters(k, 0, 0, 0)
    if s.swapped:
        _put_slots(s, SLOTS)
    _others_untouched(s)


def case_mprotect_partial(s: Setup) -> None:
    """mprotect(PROT_READ) of the lower half (§1.4 PMD column: a VMA boundary inside the PMD ->
    __split_huge_pmd; pmd_swap.c split_mprotect): all 512 pages still swapped, now PTE entries with
    offsets base+i, counts unchanged."""
    k = s.k
    apply(k, O.Mprotect(0, 0, N // 2, O.PROT_READ))
    assert vmas(k) == [(0, N // 2, O.PROT_READ), (N // 2, N, O.PROT_RW)]
    if not s.swapped:
        assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False, contents=val(1, ALL))
        assert_pages(k, 0, LO, writable=False)
        return
    assert_pte_swap_entries(k, 0, ALL, exclusive=s.excl)
    assert_slots(k, SLOTS, count=s.count)
    assert_counters(k, 0, 0, N)
    _others_untouched(s)


def case_mprotect_whole(s: Setup) -> None:
    """mprotect(PROT_READ) of the whole 2 MiB (§1.4 PMD column: change_huge_pmd's swap branch, prep
    4/6; pmd_swap.c mprotect): the entry stays PMD-level; a later fault maps a read-only THP (the
    protection comes from the VMA) and a write gets SIGSEGV."""
    k = s.k
    apply(k, O.Mprotect(0, 0, N, O.PROT_READ))
    assert vmas(k) == [(0, N, O.PROT_READ)]
    if s.swapped:
        assert_pmd_swap_entry(k, 0, excl=s.excl)
        assert_slots(k, SLOTS, count=s.count)
    apply(k, O.Fault(0, P))
    assert_thp(k, 0, writable=False)
    apply(k, O.Write(0, P, 1, value=2), expect=O.SIGSEGV)
    assert_thp(k, 0)
    _others_untouched(s)


def case_madv_free_whole(s: Setup) -> None:
    """MADV_FREE over the whole 2 MiB (§1.6 PMD column; pmd_swap.c madvise_free): the entry is
    cleared, its slots put, pagemap no longer shows swapped, VmSwap drops by 2 MiB, reads give zeros.
    A present THP is only marked lazyfree: its data stays until reclaim discards it."""
    k = s.k
    apply(k, O.Free(0, 0, N))
    if not s.swapped:
        assert_thp(k, 0)
        apply(k, O.Pageout(0, 0, N))
        assert_pages(k, 0, ALL, state=NONE, contents=0)
        assert_counters(k, 0, 0, 0)
        return
    assert_pages(k, 0, ALL, state=NONE, contents=0)
    assert_counters(k, 0, 0, 0)
    _put_slots(s, SLOTS)
    _others_untouched(s)


def case_madv_free_partial(s: Setup) -> None:
    """MADV_FREE over the lower half (§1.6 PMD column, §2 item 7: partial -> split, then the PTE path
    [I]; research-notes item 10 says the series has no text on it): the lower half reads zeros, the
    upper half stays swapped as PTE entries with offsets base+i."""
    k = s.k
    apply(k, O.Free(0, 0, N // 2))
    if not s.swapped:
        # madvise_free_huge_pmd(): partial range -> split_folio(); lazyfree keeps the data till reclaim
        assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False, contents=val(1, ALL))
        return
    assert_pages(k, 0, LO, state=NONE, contents=0)
    assert_pte_swap_entries(k, 0, HI)
    assert_counters(k, 0, 0, N // 2)
    assert_slots(k, BASE + HI, count=s.count)
    _put_slots(s, BASE + LO)
    _others_untouched(s)


def case_madv_dontneed(s: Setup) -> None:
    """MADV_DONTNEED over the whole 2 MiB (§1.5 PMD column, §3.2 D6): zap_huge_pmd puts the 512 slots
    and leaves the PMD none, reads give zeros, and the next touch faults a fresh THP."""
    k = s.k
    apply(k, O.Dontneed(0, 0, N))
    assert_pages(k, 0, ALL, state=NONE, contents=0)
    assert_counters(k, 0, 0, 0)
    if s.swapped:
        _put_slots(s, SLOTS)
    apply(k, O.Fault(0, P))
    assert_thp(k, 0, contents=0)
    _others_untouched(s)


def case_mremap_aligned(s: Setup) -> None:
    """mremap to an aligned dst after clear_refs (§1.7 PMD column, §3.2 D7; pmd_swap.c mremap):
    move_huge_pmd moves the entry whole, still swapped and PMD-level at dst with offsets base+i and
    counts unchanged; [I] move_soft_dirty_pmd() marks the moved entry soft-dirty."""
    k = s.k
    apply(k, O.ClearRefs(0))
    apply(k, O.MremapMove(0, 0, N, DST))
    d = DST + ALL
    assert vmas(k) == [(DST, DST + N, O.PROT_RW)]
    assert_pages(k, 0, ALL, state=UNMAPPED)
    if s.swapped:
        assert_pmd_swap_entry(k, 0, d, excl=s.excl, soft_dirty=True, contents=val(1, ALL))
        assert_slots(k, SLOTS, count=s.count)
        apply(k, O.Fault(0, DST + P))
        assert_thp(k, 0, d)
    else:
        assert_thp(k, 0, d, soft_dirty=True)
    _others_untouched(s)


def case_mremap_unaligned(s: Setup) -> None:
    """mremap to an unaligned dst after clear_refs (§1.7 PMD column: unaligned -> split, then
    move_ptes sets soft-dirty on every moved entry; §3.2 D7): PTE swap entries at dst, offsets base+i."""
    k = s.k
    apply(k, O.ClearRefs(0))
    apply(k, O.MremapMove(0, 0, N, DST_UNALIGNED))
    d = DST_UNALIGNED + ALL
    assert vmas(k) == [(DST_UNALIGNED, DST_UNALIGNED + N, O.PROT_RW)]
    assert_pages(k, 0, ALL, state=UNMAPPED)
    if s.swapped:
        assert_pages(k, 0, d, state=SWAPPED, pmd_level=False, swp_off=SLOTS, soft_dirty=True,
                     contents=val(1, ALL), exclusive=s.excl)
        assert_slots(k, SLOTS, count=s.count)
    else:
        assert_pages(k, 0, d, state=PRESENT, pmd_level=False, soft_dirty=True, contents=val(1, ALL))
    _others_untouched(s)


def case_uffdio_move(s: Setup) -> None:
    """UFFDIO_MOVE of the whole 2 MiB to a registered aligned dst (§1.9 PMD column, §3.2 D8; pmd_swap.c
    uffdio_move): an exclusive entry moves without a split, dst shows swapped (offsets base+i), and
    the fault brings it back as a THP; [I] a non-exclusive entry (after fork) gets -EBUSY as
    move_swap_pte does."""
    k = s.k
    apply(k, O.Mmap(0, DST, N, hugepage=True))
    apply(k, O.UffdRegister(0, DST, N))
    d = DST + ALL
    if not s.excl:
        apply(k, O.UffdMove(0, 0, DST, N), expect=EBUSY)
        assert_pmd_swap_entry(k, 0, excl=False)
        assert_pages(k, 0, d, state=NONE)
        _others_untouched(s)
        return
    apply(k, O.UffdMove(0, 0, DST, N))
    assert_pages(k, 0, ALL, state=NONE, contents=0)
    if s.swapped:
        assert_pmd_swap_entry(k, 0, d, excl=True, contents=val(1, ALL))
        assert_slots(k, SLOTS, count=1)
        apply(k, O.Fault(0, DST + P))
    assert_thp(k, 0, d, contents=val(1, ALL))
    assert_counters(k, 0, N, 0)


def case_uffd_wp(s: Setup) -> None:
    """UFFDIO_WRITEPROTECT over the whole 2 MiB (§1.4 PMD column, §1.10;
    kernel-behaviour.md §5: not covered by
    the selftest): the entry stays PMD-level with uffd-wp; the swap-in keeps uffd-wp on the PMD (the
    whole 2 MiB, uffd armed or not) and maps it read-only; a write traps to the uffd."""
    k = s.k
    apply(k, O.UffdRegister(0, 0, N))
    apply(k, O.UffdWp(0, 0, N))
    if s.swapped:
        assert_pmd_swap_entry(k, 0, uffd_wp=True)
    apply(k, O.Fault(0, P))
    assert_thp(k, 0, uffd_wp=True, writable=False)
    apply(k, O.Fault(0, P, write=True), expect=O.UFFD_WP_TRAP)
    assert_thp(k, 0, uffd_wp=True, writable=False)
    for pid in s.pids[1:]:
        assert_pmd_swap_entry(k, pid, uffd_wp=False)


def case_soft_dirty(s: Setup) -> None:
    """clear_refs 4, then a write (§1.11, §3.2 D5, §4 items 7 and 9): [I] clear_soft_dirty_pmd()
    clears SD on the PMD swap entry (it stays PMD-level); the write after swap-in dirties the PMD, so
    all 512 pages show soft-dirty; a shared entry COWs one page and only that page is soft-dirty."""
    k = s.k
    apply(k, O.ClearRefs(0))
    if s.swapped:
        assert_pmd_swap_entry(k, 0, soft_dirty=False)
    else:
        assert_thp(k, 0, soft_dirty=False, writable=False)
    apply(k, O.Write(0, P, 1, value=2))
    if s.excl:
        assert_thp(k, 0, soft_dirty=True, writable=True,
                   contents=np.where(ALL == P, val(2, ALL), val(1, ALL)))
    else:
        assert_pages(k, 0, [P], state=PRESENT, soft_dirty=True, contents=val(2, [P]))
    _others_untouched(s)


def case_swapoff(s: Setup) -> None:
    """swapoff (§1.8 PMD column, v2 10/16 unuse_pmd; pmd_swap.c swapoff): checked before any touch,
    the whole range is PMD-mapped again in every process, read-only ([I] as unuse_pte), contents
    intact, and the device is gone."""
    k = s.k
    apply(k, O.Swapoff())
    assert observe(k).swap_count is None
    for pid in s.pids:
        if s.swapped:
            assert_thp(k, pid, writable=False, exclusive=s.excl)
        else:
            assert_thp(k, pid, writable=True)
        assert_counters(k, pid, N, 0)
    assert k.vmstat["thp_swpin_pmd_fallback"] == 0


SWAPPED_CASES = {
    "pagemap_offsets": case_setup_pagemap,
    "read_fault": case_read_fault,
    "write_fault": case_write_fault,
    "Basic_COW_after_fork()_child_writes": case_fork_child_writes,
    "Basic_COW_after_fork()_parent_writes": case_fork_parent_writes,
    "partial_munmap()": case_munmap_partial,
    "munmap()": case_munmap_whole,
    "partial_mprotect()": case_mprotect_partial,
    "mprotect()": case_mprotect_whole,
    "MADV_FREE": case_madv_free_whole,
    "partial_MADV_FREE": case_madv_free_partial,
    "MADV_DONTNEED": case_madv_dontneed,
    "mremap()_aligned": case_mremap_aligned,
    "mremap()_unaligned": case_mremap_unaligned,
    "UFFDIO_MOVE": case_uffdio_move,
    "UFFDIO_WRITEPROTECT": case_uffd_wp,
    "soft-dirty": case_soft_dirty,
    "swapoff": case_swapoff,
}

MATRIX = [(c, s) for c in SWAPPED_CASES for s in SETUPS]
MATRIX_IDS = [f"{c}-with_{s}" for c, s in MATRIX]


def run_matrix(case: str, setup: str) -> None:
    SWAPPED_CASES[case](SETUPS[setup]())


@pytest.mark.parametrize(("case", "setup"), MATRIX, ids=MATRIX_IDS)
def test_matrix(case: str, setup: str) -> None:
    """cow.c-style matrix: one setup (§0, §1.1, §1.3) and one case; each case's docstring cites its
    section of docs/kernel-behaviour.md and marks inferences [I]."""
    run_matrix(case, setup)


# ------------------------------------------------------------------------------------------------
# 2. the series' selftest pmd_swap.c, newest version (docs/kernel-behaviour.md section 5)
# ------------------------------------------------------------------------------------------------
def fixture_swapped(sync: bool = False) -> PmdSwapKernel:
    """The selftest fixture: mmap 2 MiB aligned, MADV_HUGEPAGE, fill the per-page pattern,
    MADV_PAGEOUT, require every page swapped and thp_swpout_pmd to have gone up (§5)."""
    k = new_kernel()
    if sync:
        apply(k, O.Swapoff())
        apply(k, O.Swapon(sync=True))
    thp(k)
    apply(k, O.Pageout(0, 0, N))
    assert_pmd_swap_entry(k, 0, excl=True)
    assert k.vmstat["thp_swpout_pmd"] == 1 and k.vmstat["thp_swpout_fallback"] == 0
    return k


def test_pmd_swap_basic() -> None:
    """pmd_swap.c basic (§5; §1.1, §1.2 PMD columns): the pattern is intact after the fault, which
    swaps the whole 2 MiB back in as a THP."""
    k = fixture_swapped()
    apply(k, O.Fault(0, 0))
    assert_thp(k, 0)
    assert k.vmstat["thp_swpin_pmd"] == 1


def test_pmd_swap_fork() -> None:
    """pmd_swap.c fork (§5; §1.3 PMD column): after fork both processes read the pattern; counts 2,
    neither entry exclusive ([I] for the parent's, §1.3), so each swap-in maps the THP read-only."""
    k = fixture_swapped()
    apply(k, O.Fork(0))
    assert_slots(k, SLOTS, count=2)
    for pid in (0, 1):
        assert_pmd_swap_entry(k, pid, excl=False)
    for pid in (1, 0):
        apply(k, O.Fault(pid, P))
        assert_thp(k, pid, writable=False)
    assert_pages(k, 0, ALL, contents=val(1, ALL))


def test_pmd_swap_fork_cow() -> None:
    """pmd_swap.c fork_cow (§5 incl. the v2-era parent-side COW; §1.2 step 6; §3.1 I1): the child
    writes and the parent keeps its data; then the parent writes and the child keeps its data.
    [I] relies on fork clearing the parent's EXCL (§1.3)."""
    k = fixture_swapped()
    apply(k, O.Fork(0))
    apply(k, O.Write(1, 0, 1, value=2))
    assert_pages(k, 1, [0], contents=val(2, [0]))
    assert_pmd_swap_entry(k, 0)
    apply(k, O.Fault(0, P))
    assert_pages(k, 0, ALL, contents=val(1, ALL))
    apply(k, O.Write(0, 1, 1, value=3))
    assert_pages(k, 0, [0, 1], contents=[val(1, 0), val(3, 1)])
    assert_pages(k, 1, [0, 1], contents=[val(2, 0), val(1, 1)])


def test_pmd_swap_cycles() -> None:
    """pmd_swap.c cycles (§5): five pageout/fault rounds, each swapping the THP out as one PMD swap
    entry and back in under one PMD with the pattern intact. Between rounds memory.reclaim lets the
    previous writeback finish (a disk completes it long before the next MADV_PAGEOUT)."""
    k = fixture_swapped()
    for rnd in range(5):
        if rnd:
            apply(k, O.Pageout(0, 0, N))
            assert_pmd_swap_entry(k, 0)
        assert k.vmstat["thp_swpout_pmd"] == rnd + 1
        apply(k, O.Fault(0, P))
        assert_thp(k, 0)
        assert k.vmstat["thp_swpin_pmd"] == rnd + 1
        apply(k, O.Evict())


def test_pmd_swap_write() -> None:
    """pmd_swap.c write (§5; §1.2 PMD column): writing the first byte swaps in a THP, the write lands,
    the rest of the pattern is intact."""
    k = fixture_swapped()
    apply(k, O.Write(0, 0, 1, value=7))
    assert_thp(k, 0, contents=np.where(ALL == 0, val(7, ALL), val(1, ALL)), writable=True)


def test_pmd_swap_munmap() -> None:
    """pmd_swap.c munmap (§5; §1.5): zap_huge_pmd frees the 512 slots without looking up a folio;
    VmSwap drops by at least 2 MiB."""
    k = fixture_swapped()
    apply(k, O.Evict())
    apply(k, O.Munmap(0, 0, N))
    assert_counters(k, 0, 0, 0)
    assert_slots(k, SLOTS, count=0, cached=False, free=True)


def test_pmd_swap_mprotect() -> None:
    """pmd_swap.c mprotect (§5; §1.4): RO then RW over the whole PMD; still swapped after each; the
    pattern reads back."""
    k = fixture_swapped()
    apply(k, O.Mprotect(0, 0, N, O.PROT_READ))
    assert_pmd_swap_entry(k, 0)
    apply(k, O.Mprotect(0, 0, N, O.PROT_RW))
    assert_pmd_swap_entry(k, 0)
    apply(k, O.Fault(0, P))
    assert_thp(k, 0)


def test_pmd_swap_mremap() -> None:
    """pmd_swap.c mremap (§5; §1.7): MREMAP_MAYMOVE|MREMAP_FIXED to an aligned dst: still swapped at
    dst; the pattern reads back there."""
    k = fixture_swapped()
    apply(k, O.MremapMove(0, 0, N, DST))
    assert_pmd_swap_entry(k, 0, DST + ALL, contents=val(1, ALL))
    apply(k, O.Fault(0, DST))
    assert_thp(k, 0, DST + ALL)


def test_pmd_swap_pagemap() -> None:
    """pmd_swap.c pagemap (§5; §1.12): every page has bit 62 and frame first + (idx << 5), i.e.
    offset base+i, and bit 63 clear."""
    k = fixture_swapped()
    po = observe(k).procs[0]
    assert (po.state[ALL] == SWAPPED).all()  # bit 62 set, bit 63 clear
    assert (po.swp_off[ALL] == po.swp_off[0] + ALL).all()
    assert po.swp_off[0] == BASE


def test_pmd_swap_madvise_free() -> None:
    """pmd_swap.c madvise_free (§5; §1.6): not swapped afterwards, VmSwap dropped, reads zeros."""
    k = fixture_swapped()
    apply(k, O.Free(0, 0, N))
    assert_pages(k, 0, ALL, state=NONE, contents=0)
    assert_counters(k, 0, 0, 0)
    apply(k, O.Fault(0, P))
    assert_pages(k, 0, ALL, contents=0)


def test_pmd_swap_uffdio_move() -> None:
    """pmd_swap.c uffdio_move (§5; §1.9): the whole PMD swap entry moves to a registered dst without a
    split, dst is swapped, the data reads back and check_huge_anon(dst) passes."""
    k = fixture_swapped()
    apply(k, O.Mmap(0, DST, N, hugepage=True))
    apply(k, O.UffdRegister(0, DST, N))
    apply(k, O.UffdMove(0, 0, DST, N))
    assert_pmd_swap_entry(k, 0, DST + ALL, contents=val(1, ALL))
    apply(k, O.Fault(0, DST + P))
    assert_thp(k, 0, DST + ALL)


def test_pmd_swap_swapoff() -> None:
    """pmd_swap.c swapoff (§5; §1.8, v2 10/16): with the device the only one, swapoff brings the THP
    back: checked before touching memory, then the data is intact and the device is gone ([I] the
    unuse_pmd body was not readable; the model maps it read-only like unuse_pte)."""
    k = fixture_swapped()
    apply(k, O.Swapoff())
    assert_thp(k, 0)
    assert observe(k).swap_count is None
    apply(k, O.Fault(0, P))
    assert_thp(k, 0)


def test_pmd_swap_split_munmap() -> None:
    """pmd_swap.c split_munmap (§5; §1.5, §2 item 7): unmapping half splits the entry; VmSwap drops by
    at least 1 MiB; the rest is still swapped and reads back correctly."""
    k = fixture_swapped()
    apply(k, O.Munmap(0, N // 2, N // 2))
    assert_counters(k, 0, 0, N // 2)
    assert_pte_swap_entries(k, 0, LO)
    apply(k, O.Fault(0, P))
    assert_pages(k, 0, LO, contents=val(1, LO))


def test_pmd_swap_split_mprotect() -> None:
    """pmd_swap.c split_mprotect (§5; §1.4, §2 item 7): half read-only: everything still swapped, the
    pattern intact."""
    k = fixture_swapped()
    apply(k, O.Mprotect(0, 0, N // 2, O.PROT_READ))
    assert_pte_swap_entries(k, 0, ALL)
    for p in (P, N // 2 + P):
        apply(k, O.Fault(0, p))
    assert_pages(k, 0, ALL, contents=val(1, ALL))


def test_pmd_swap_swapin_sync() -> None:
    """pmd_swap.c swapin_sync (§5; §1.2 step 1): evict the swap cache (memory.reclaim), then the fault
    must still give a THP, through the PMD-order swapin_sync() read."""
    k = fixture_swapped()
    apply(k, O.Evict())
    assert_slots(k, SLOTS, cached=False, count=1)
    apply(k, O.Fault(0, P))
    assert_thp(k, 0)
    assert k.vmstat["pswpin"] == N and k.vmstat["thp_swpin_pmd"] == 1


def test_pmd_swap_mincore() -> None:
    """pmd_swap.c mincore (§5; v7 answers per slot [S2]): over a PMD swap entry mincore reports 1
    for each slot the swap cache holds and 0 once evicted; it does not fault the entry in. A
    slot cached by a small folio after a split answers for itself."""
    k = fixture_swapped()
    assert_slots(k, SLOTS, cached=True)
    apply(k, O.Mincore(0, 0, N))
    assert (k.output == 1).all()
    apply(k, O.Evict())
    apply(k, O.Mincore(0, 0, N))
    assert (k.output == 0).all()
    assert_pmd_swap_entry(k, 0)
    assert_slots(k, SLOTS, cached=False)
    apply(k, O.Mincore(0, 0, N + 1), expect=-errno.ENOMEM)  # no VMA past the 2 MiB
    assert (k.output[:N] == 0).all() and k.output[N] == MINCORE_UNSET


def test_pmd_swap_madvise_willneed() -> None:
    """pmd_swap.c madvise_willneed (§5; v7 converts MADV_WILLNEED [S2], the rest [I]): after the
    fixture's eviction a whole-range MADV_WILLNEED reads the 512 slots into the swap cache as one
    PMD-sized folio, the entry stays, mincore reports them resident, and the fault then maps the
    THP from the cache without another device read."""
    k = fixture_swapped()
    apply(k, O.Evict())
    apply(k, O.Willneed(0, 0, N))
    assert_pmd_swap_entry(k, 0)
    assert_slots(k, SLOTS, cached=True)
    heads = {int(k.mem.head[k.swap.cache[s]]) for s in SLOTS}
    assert len(heads) == 1 and k.mem.nr_pages(heads.pop()) == N
    assert k.vmstat["pswpin"] == N
    apply(k, O.Mincore(0, 0, N))
    assert (k.output == 1).all()
    apply(k, O.Fault(0, P))
    assert_thp(k, 0)
    assert k.vmstat["pswpin"] == N and k.vmstat["thp_swpin_pmd"] == 1


def test_pmd_swap_madv_cold_leaves_the_entry() -> None:
    """[I] MADV_COLD over a PMD swap entry, whole or in part: nothing there is resident to
    deactivate, so the converted walker skips the entry (as MADV_PAGEOUT does, v7 [S2]): the
    entry, its slots and their counts stay, and the fault still maps the THP back whole."""
    k = fixture_swapped()
    apply(k, O.Cold(0, 0, N))
    apply(k, O.Cold(0, 100, 50))
    assert_pmd_swap_entry(k, 0)
    assert_slots(k, SLOTS, count=1)
    apply(k, O.Fault(0, P))
    assert_thp(k, 0)


def test_pmd_swap_madvise_willneed_partial_splits() -> None:
    """[I] a partial MADV_WILLNEED splits the entry, as a partial MADV_FREE does (v7 [S2]), and
    the PTE walk reads only the range's slots, order-0, as legacy does."""
    k = fixture_swapped()
    apply(k, O.Evict())
    apply(k, O.Willneed(0, 100, 50))
    assert_pte_swap_entries(k, 0, ALL)
    assert_slots(k, SLOTS[100:150], cached=True)
    assert_slots(k, np.concatenate([SLOTS[:100], SLOTS[150:]]), cached=False)
    assert k.vmstat["pswpin"] == 50


# ------------------------------------------------------------------------------------------------
# 3. fallbacks: docs/kernel-behaviour.md section 2, reached through ops, legacy representation afterwards
# ------------------------------------------------------------------------------------------------
def test_zswap_enabled_before_pageout_installs_then_splits_at_the_fault() -> None:
    """v7 [S2]: "zswap still stores order-0. Ranges that have zswap entries are split". The unmap
    installs the PMD swap entry (no zswap_never_enabled() gate, [I]: the unmap comes before
    swap_writeout() decides), zswap_store() takes all 512 pages (7.3 mm/page_io.c:238), so the
    folio leaves the swap cache at once and nothing reaches the device; the fault finds zswap
    entries in the range, splits (base+i, exclusive kept) and swaps in one page from zswap
    (zswap_load() marks it dirty and erases its entry, 7.3 mm/zswap.c:1639)."""
    k = new_kernel()
    apply(k, O.ZswapEnable())
    thp(k)
    apply(k, O.Pageout(0, 0, N))
    assert_pmd_swap_entry(k, 0, excl=True)
    assert k.vmstat["thp_swpout_pmd"] == 1 and k.vmstat["thp_swpout"] == 0
    assert k.swap.zswap[SLOTS].all() and (k.swap.cache[SLOTS] < 0).all()
    apply(k, O.Fault(0, P))
    assert k.vmstat["thp_swpin_pmd_fallback"] == 1 and k.vmstat["thp_swpin_pmd"] == 0
    assert_pages(k, 0, [P], state=PRESENT, pmd_level=False, contents=val(1, [P]), exclusive=True)
    assert_pte_swap_entries(k, 0, np.setdiff1d(ALL, [P]), exclusive=True)
    assert not k.swap.zswap[SLOTS[P]] and k.swap.zswap[np.delete(SLOTS, P)].all()
    assert k.vmstat["pswpin"] == 0  # from zswap, not the device


def test_zswap_enabled_after_pageout_leaves_the_range_whole() -> None:
    """v7's rule is per range: an entry written to the device before zswap was enabled has no
    slot in zswap, so the fault reads it whole under one PMD ([I]: v7 must let that read past
    7.3's zswap_load(), which fails every large folio once zswap was enabled; v2 fell back on
    the static key alone, as alloc_swap_folio() does for mTHP)."""
    k = fixture_swapped()
    apply(k, O.Evict())
    apply(k, O.ZswapEnable())
    assert not k.swap.zswap[SLOTS].any()
    apply(k, O.Fault(0, P))
    assert k.vmstat["thp_swpin_pmd"] == 1 and k.vmstat["thp_swpin_pmd_fallback"] == 0
    assert_thp(k, 0)


def test_fallback_no_free_cluster() -> None:
    """§2 item 2, §1.1 (folio_alloc_swap(order 9) fails, thp_swpout_fallback): the folio is split and
    swapped out at order 0 into unrelated slots; PTE entries, no PMD swap entry."""
    k = new_kernel()
    apply(k, O.Fragment())
    thp(k)
    apply(k, O.Pageout(0, 0, N))
    po = observe(k).procs[0]
    assert_pages(k, 0, ALL, state=SWAPPED, pmd_level=False, contents=val(1, ALL))
    assert len(set(po.swp_off[ALL].tolist())) == N
    assert po.swp_off[0] % N != 0  # not a naturally aligned cluster: order-0 slots
    assert k.vmstat["thp_swpout_fallback"] == 1 and k.vmstat["thp_swpout_pmd"] == 0
    apply(k, O.Evict())
    apply(k, O.Fault(0, P))
    assert_pages(k, 0, [P], state=PRESENT, pmd_level=False)
    assert_pages(k, 0, np.setdiff1d(ALL, [P]), state=SWAPPED, pmd_level=False)
    assert k.vmstat["thp_swpin_pmd"] == 0


def test_fallback_partially_mapped_folio() -> None:
    """§2 item 3, §1.1 (a partially mapped folio is split first): after a partial munmap of the
    PMD-mapped THP, MADV_PAGEOUT swaps the rest out as order-0 PTE entries."""
    k = new_kernel()
    thp(k)
    apply(k, O.Munmap(0, N // 2, N // 2))
    apply(k, O.Pageout(0, 0, N // 2))
    assert_pages(k, 0, LO, state=SWAPPED, pmd_level=False, contents=val(1, LO))
    assert k.vmstat["thp_swpout_pmd"] == 0 and k.vmstat["thp_swpout"] == 0
    assert_counters(k, 0, 0, N // 2)


def test_fallback_pte_mapped_folio() -> None:
    """§2 item 4 (the PMD was already split by an earlier operation): mprotect of one half and back
    leaves the THP PTE-mapped (VMAs merged); pageout keeps the folio whole (one cluster) but installs
    512 PTE swap entries with offsets base+i."""
    k = new_kernel()
    thp(k)
    apply(k, O.Mprotect(0, 0, N // 2, O.PROT_READ))
    apply(k, O.Mprotect(0, 0, N // 2, O.PROT_RW))
    assert vmas(k) == [(0, N, O.PROT_RW)]
    assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False)
    apply(k, O.Pageout(0, 0, N))
    assert_pte_swap_entries(k, 0, ALL)
    assert k.vmstat["thp_swpout_pmd"] == 0 and k.vmstat["thp_swpout"] == 1


def test_fallback_swapin_alloc_failure() -> None:
    """§2 item 8, §1.2 PMD step 5 (PMD folio allocation fails on swap-in): the entry is split into PTE
    entries base+i and the fault is handled at PTE level: one order-0 page comes in."""
    k = fixture_swapped()
    apply(k, O.Evict())
    apply(k, O.Fault(0, P, fail_alloc=True))
    assert k.vmstat["thp_swpin_pmd_fallback"] == 1 and k.vmstat["thp_swpin_pmd"] == 0
    assert_pages(k, 0, [P], state=PRESENT, pmd_level=False, contents=val(1, [P]), exclusive=True)
    assert_pte_swap_entries(k, 0, np.setdiff1d(ALL, [P]), exclusive=True)
    assert_counters(k, 0, 1, N - 1)


def test_fallback_swapoff_alloc_failure() -> None:
    """§2 item 9, §1.8 PMD column (allocation failure -> split, fall through to unuse_pte_range):
    swapoff still succeeds; every page is PTE-mapped, read-only, data intact; the device is gone."""
    k = fixture_swapped()
    apply(k, O.Evict())
    apply(k, O.Swapoff(fail_alloc=True))
    assert observe(k).swap_count is None
    assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False, writable=False, contents=val(1, ALL))
    assert_counters(k, 0, N, 0)


def _shared_entry_with_split_cache() -> PmdSwapKernel:
    """Evicted PMD swap entry, fork, the parent reads it back (the PMD-sized folio is cached and mapped
    by the parent, the child still holds its entry), then debugfs split_huge_pages splits the cached
    folio into 512 order-0 swap-cache folios (§1.16)."""
    k = fixture_swapped()
    apply(k, O.Evict())
    apply(k, O.Fork(0))
    apply(k, O.Fault(0, P))
    assert_thp(k, 0)
    apply(k, O.SplitThp())
    assert_slots(k, SLOTS, cached=True, count=1)
    assert_pmd_swap_entry(k, 1)
    return k


def test_fallback_swapcache_folio_not_pmd_sized() -> None:
    """§2 item 8, §1.16, v3 rule (a cache hit must be one PMD-sized folio): the child's fault on its
    PMD swap entry finds order-0 folios, splits the entry (PTE entries base+i) and maps only the
    faulting page from the cache."""
    k = _shared_entry_with_split_cache()
    apply(k, O.Fault(1, P))
    assert k.vmstat["thp_swpin_pmd_fallback"] == 1 and k.vmstat["thp_swpin_pmd"] == 1
    assert_pages(k, 1, [P], state=PRESENT, pmd_level=False, contents=val(1, [P]), writable=False)
    assert_pte_swap_entries(k, 1, np.setdiff1d(ALL, [P]), exclusive=False)


def test_fallback_mixed_swapcache() -> None:
    """§2 item 8, §1.16, §4 item 11, v3 rule (mixed per-slot cache): after the split above the parent
    unmaps its upper half and memory.reclaim drops those folios, so only slots base..base+255 are
    cached; the child's fault splits its entry and reads one page (from the cache or the device)."""
    k = _shared_entry_with_split_cache()
    apply(k, O.Munmap(0, N // 2, N // 2))
    apply(k, O.Evict())
    assert_slots(k, BASE + LO, cached=True)
    assert_slots(k, BASE + HI, cached=False, count=1)
    apply(k, O.Fault(1, N // 2 + P))
    assert k.vmstat["thp_swpin_pmd_fallback"] == 1
    assert_pages(k, 1, [N // 2 + P], state=PRESENT, pmd_level=False, contents=val(1, [N // 2 + P]))
    assert_pte_swap_entries(k, 1, np.setdiff1d(ALL, [N // 2 + P]), exclusive=False)
    apply(k, O.Fault(1, P))
    assert_pages(k, 1, [P], state=PRESENT, pmd_level=False, contents=val(1, [P]))


PARTIAL_OPS = {
    "partial_mprotect": [O.Mprotect(0, 0, N // 2, O.PROT_READ)],
    "partial_uffd_wp": [O.UffdRegister(0, 0, N), O.UffdWp(0, 0, N // 2)],
    # whole-range wp keeps the PMD entry with UW (§1.4); unprotecting half splits it: the split must
    # copy UW to all 512 PTEs (v2 08/16, §4 item 1), then the lower half is resolved
    "partial_uffd_wp_resolve": [O.UffdRegister(0, 0, N), O.UffdWp(0, 0, N),
                                O.UffdWp(0, 0, N // 2, enable=False)],
    "partial_munmap": [O.Munmap(0, 0, N // 2)],
    "partial_MADV_FREE": [O.Free(0, 0, N // 2)],
}
# uffd-wp expected afterwards on (lower half, upper half)
PARTIAL_UW = {"partial_uffd_wp": (True, False), "partial_uffd_wp_resolve": (False, True)}


@pytest.mark.parametrize("name", list(PARTIAL_OPS))
def test_fallback_partial_range(name: str) -> None:
    """§2 item 7, §1.4-§1.6, §1.16 (a partial range or a VMA boundary inside the 2 MiB splits the
    entry; v2 08/16): the pages outside the range stay swapped as PTE entries base+i, SD/UW/EXCL per
    entry; the next fault is a legacy one (one order-0 page, no PMD swap-in). partial MADV_FREE: [I]."""
    k = fixture_swapped()
    apply(k, O.Evict())
    for op in PARTIAL_OPS[name]:
        apply(k, op)
    assert k.vmstat["thp_split_pmd"] == 1
    uw_lo, uw_hi = PARTIAL_UW.get(name, (False, False))
    assert_pte_swap_entries(k, 0, HI, exclusive=True, uffd_wp=uw_hi)
    if name in ("partial_mprotect", "partial_uffd_wp", "partial_uffd_wp_resolve"):
        assert_pte_swap_entries(k, 0, LO, exclusive=True, uffd_wp=uw_lo)
    p = N // 2 + P
    apply(k, O.Fault(0, p))
    assert_pages(k, 0, [p], state=PRESENT, pmd_level=False, contents=val(1, [p]), uffd_wp=uw_hi)
    if uw_hi:
        apply(k, O.Fault(0, p, write=True), expect=O.UFFD_WP_TRAP)
    assert_pte_swap_entries(k, 0, np.setdiff1d(HI, [p]))
    assert k.vmstat["thp_swpin_pmd"] == 0 and k.vmstat["thp_swpin_pmd_fallback"] == 0


def test_pageout_while_writeback_in_flight() -> None:
    """§1.1 ("async device: it stays cached (under writeback) until a later reclaim pass"), §3.1 I1:
    a THP swapped in from the swap cache while its first writeback is still in flight, then paged out
    again: shrink_folio_list() keeps a folio under writeback (mm/vmscan.c folio_test_writeback ->
    activate/keep; not in docs/kernel-behaviour.md), so it stays mapped; the data must never be lost."""
    k = fixture_swapped()
    apply(k, O.Fault(0, P))
    apply(k, O.Pageout(0, 0, N))
    assert_pages(k, 0, ALL, contents=val(1, ALL))
    assert_thp(k, 0)
    apply(k, O.Evict())
    apply(k, O.Fault(0, P))
    assert_thp(k, 0)


# ------------------------------------------------------------------------------------------------
# 4. differential: every scenario above through both models and the oracle
# ------------------------------------------------------------------------------------------------
SCENARIOS: dict = {f"matrix:{i}": (lambda c=c, s=s: run_matrix(c, s))
                   for (c, s), i in zip(MATRIX, MATRIX_IDS, strict=False)}
SCENARIOS.update({name: fn for name, fn in sorted(globals().items())
                  if name.startswith(("test_pmd_swap_", "test_fallback_", "test_pageout_"))
                  and name != "test_fallback_partial_range"})
SCENARIOS.update({f"test_fallback_partial_range:{n}": (lambda n=n: test_fallback_partial_range(n))
                  for n in PARTIAL_OPS})


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_differential(name: str) -> None:
    """§8 (the oracle's rules) and §3: the same ops on both correct models give no divergence. The
    scenario's own assertions are checked by its own test; if one fails, the ops up to it are replayed."""
    _CREATED.clear()
    try:
        SCENARIOS[name]()
    except AssertionError:
        pass  # reported by the scenario's own test
    assert _CREATED
    for k in list(_CREATED):
        res = run_trace(list(k.test_ops))
        assert res.divergence is None, (
            f"oracle divergence on {k.test_ops}:\n{res.divergence.describe()}")
