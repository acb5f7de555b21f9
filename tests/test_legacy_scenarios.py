"""Scenario matrix for the LEGACY kernel model (models/legacy.py), in the style of selftests/mm/cow.c.

Every test builds one memory setup on a fresh `LegacyKernel()` (a PMD-mapped THP, a PTE-mapped THP, a
swapped-out THP still in the swap cache, evicted, on a synchronous device, a single swapped PTE, a THP
swapped out of a fragmented device, a swapped THP shared after fork) and runs one case on it. The
expected values are what the mid-2026 mm-new kernel does (docs/kernel-behaviour.md sections 0,
1 LEGACY column, 5;
docs/research-notes.md), not what the model happens to do: a failure here is a model bug unless the
cited section says otherwise.

Address space used throughout: pid 0 maps one MADV_HUGEPAGE VMA over pages [0, 512) (region 0, PMD
aligned) and writes value 1, so page i holds (1 << 16) | i. The swap device's slot 0 is the header:
a THP swapped out whole gets the cluster at slots 512..1023 (subpage i -> slot 512 + i), order-0 slots
start at 1. Aligned move targets start at page 1024 (region 2).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import numpy as np
import pytest

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.errors import BadOp
from pmdswap_fuzz.models.invariants import check_invariants
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.mm import PMD_NONE, PMD_TABLE
from scenario_helpers import apply, assert_counters, assert_pages, assert_slots, val
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, UNMAPPED, observe

N = O.HPAGE_PMD_NR
THP_SLOT = 512  # first slot of the first free 512-slot cluster (slot 0 is the swap header)
DST = 1024  # a PMD-aligned page in region 2
SINGLE_PAGE = 5  # the page the single-PTE setup writes
EBUSY, ENOENT = -errno.EBUSY, -errno.ENOENT


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------










def vmas(k: LegacyKernel, pid: int = 0) -> list[tuple[int, int, int]]:
    return [(a, b, p) for a, b, p, _h, _u in observe(k).procs[pid].vmas]


# ------------------------------------------------------------------------------------------------
# setups (cow.c "memory setups")
# ------------------------------------------------------------------------------------------------
@dataclass
class Setup:
    """What a setup built, in kernel terms, so the cases can state the kernel's outcome."""

    k: LegacyKernel
    pages: np.ndarray  # pages of pid 0 holding data (value 1)
    swapped: bool  # the data pages are PTE swap entries
    slots: np.ndarray | None  # swap offset of each data page
    cached: bool  # the slots are in the swap cache (async device: still under writeback)
    large_cached: bool  # ... held by one 512-page folio: a fault maps the whole batch (§1.2 step 3)
    excl: bool  # the entries (or present pages) are anon-exclusive
    count: int  # per-slot count (page-table references)
    sync: bool  # SWP_SYNCHRONOUS_IO device
    pmd_mapped: bool  # present and PMD-mapped
    pids: tuple[int, ...]  # processes mapping the data

    @property
    def n(self) -> int:
        return int(self.pages.size)

    @property
    def p(self) -> int:
        """The page the fault cases touch."""
        return int(self.pages[3]) if self.n > 3 else int(self.pages[0])

    @property
    def pi(self) -> int:
        return int(np.flatnonzero(self.pages == self.p)[0])


def _thp(k: LegacyKernel) -> None:
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Write(0, 0, N, value=1))


def setup_pmd_thp() -> Setup:
    """PMD-mapped THP: MADV_HUGEPAGE + write -> do_huge_pmd_anonymous_page."""
    k = LegacyKernel()
    _thp(k)
    return Setup(k, np.arange(N), False, None, False, False, True, 0, False, True, (0,))


def setup_pte_thp() -> Setup:
    """PTE-mapped THP: mprotect(RO) of one page splits the VMA and the PMD; mprotect(RW) merges back."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Mprotect(0, 0, 1, O.PROT_READ))
    apply(k, O.Mprotect(0, 0, 1, O.PROT_RW))
    return Setup(k, np.arange(N), False, None, False, False, True, 0, False, False, (0,))


def setup_swapped_thp() -> Setup:
    """Swapped-out THP, async device: the 512-page folio stays in the swap cache under writeback."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Pageout(0, 0, N))
    return Setup(k, np.arange(N), True, THP_SLOT + np.arange(N), True, True, True, 1, False, False, (0,))


def setup_swapped_thp_evicted() -> Setup:
    """Swapped-out THP, then memory.reclaim (`Evict`): writeback done, folio gone from the cache."""
    s = setup_swapped_thp()
    apply(s.k, O.Evict())
    s.cached = s.large_cached = False
    return s


def setup_swapped_thp_sync() -> Setup:
    """THP swapped out to a SWP_SYNCHRONOUS_IO device (zram-like): written at once, leaves the cache."""
    k = LegacyKernel()
    apply(k, O.Swapoff())
    apply(k, O.Swapon(sync=True))
    _thp(k)
    apply(k, O.Pageout(0, 0, N))
    return Setup(k, np.arange(N), True, THP_SLOT + np.arange(N), False, False, True, 1, True, False, (0,))


def setup_single_pte() -> Setup:
    """Single swapped PTE: non-hugepage VMA, one page written and paged out (order-0 slot 1)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.Write(0, SINGLE_PAGE, 1, value=1))
    apply(k, O.Pageout(0, SINGLE_PAGE, 1))
    return Setup(k, np.array([SINGLE_PAGE]), True, np.array([1]), True, False, True, 1, False, False, (0,))


def setup_fragmented() -> Setup:
    """Fragmented device: no free cluster, folio_alloc_swap(order 9) fails, thp_swpout_fallback,
    the folio is split and its 512 pages get order-0 slots 1, 2, ... 512 (§1.1, §2 item 2)."""
    k = LegacyKernel()
    apply(k, O.Fragment())
    _thp(k)
    apply(k, O.Pageout(0, 0, N))
    return Setup(k, np.arange(N), True, 1 + np.arange(N), True, False, True, 1, False, False, (0,))


def setup_after_fork() -> Setup:
    """Swapped-out (evicted) THP, then fork: parent and child share every slot (count 2, EXCL clear)."""
    s = setup_swapped_thp_evicted()
    apply(s.k, O.Fork(0))
    s.excl, s.count, s.pids = False, 2, (0, 1)
    return s


SETUPS = {
    "PMD-mapped_THP": setup_pmd_thp,
    "PTE-mapped_THP": setup_pte_thp,
    "swapped-out_THP_in_swapcache": setup_swapped_thp,
    "swapped-out_THP_evicted": setup_swapped_thp_evicted,
    "swapped-out_THP_sync_device": setup_swapped_thp_sync,
    "single_swapped_PTE": setup_single_pte,
    "swapped-out_THP_fragmented_device": setup_fragmented,
    "swapped-out_THP_after_fork": setup_after_fork,
}


# ------------------------------------------------------------------------------------------------
# cases (cow.c "test cases")
# ------------------------------------------------------------------------------------------------
def _expect_data_intact(s: Setup, pid: int = 0, pages=None) -> None:
    pages = s.pages if pages is None else pages
    assert_pages(s.k, pid, pages, contents=val(1, pages))


def _faulted(s: Setup) -> np.ndarray:
    """Pages one fault on s.p maps: the whole folio when a large folio is cached and the PTEs are one
    uniform batch (§1.2 step 3, research-notes Q1(b)), else only the faulting page (page-cluster 0,
    no mTHP, and alloc_swap_folio never uses PMD order, §1.2 step 1)."""
    return s.pages if s.large_cached else np.array([s.p])


def case_setup_state(s: Setup) -> None:
    """The setup itself (§1.1 swap-out, LEGACY column; §0 slot layout; §1.13 RSS/VmSwap)."""
    k, pages = s.k, s.pages
    _expect_data_intact(s)
    if not s.swapped:
        assert_pages(k, 0, pages, state=PRESENT, pmd_level=s.pmd_mapped, writable=True,
                     exclusive=True, soft_dirty=True, uffd_wp=False)
        assert_counters(k, 0, s.n, 0)
        assert_slots(k, THP_SLOT + np.arange(N), count=0, cached=False, free=True)
        assert k.vmstat["thp_split_pmd"] == (0 if s.pmd_mapped else 1)
        return
    for pid in s.pids:
        # try_to_unmap_one(): swap PTE = (type, base+i) + SD + UW + EXCL; the PMD was split first
        assert_pages(k, pid, pages, state=SWAPPED, swp_off=s.slots, exclusive=s.excl,
                     soft_dirty=True, uffd_wp=False, pmd_level=False, contents=val(1, pages))
        assert_counters(k, pid, 0, s.n)
    assert_slots(k, s.slots, count=s.count, cached=s.cached, free=False)
    if s.n == N:
        fallback = s.slots[0] != THP_SLOT
        assert k.vmstat["thp_split_pmd"] == 1
        assert k.vmstat["thp_swpout"] == (0 if fallback else 1)
        assert k.vmstat["thp_swpout_fallback"] == (1 if fallback else 0)
        assert k.vmstat["thp_swpout_pmd"] == 0  # legacy never installs a PMD swap entry
    assert k.vmstat["pswpout"] == s.n


def case_read_fault(s: Setup) -> None:
    """Read fault (§1.2 LEGACY steps 1, 3, 5, 6; research-notes Q1(a)-(c)): a cached large folio in a
    uniform batch is mapped whole, else one order-0 page; writable iff exclusive (SD set, VMA has
    VM_SOFTDIRTY); the cache is kept after a read on an async device, dropped on a sync one."""
    k, p = s.k, s.p
    apply(k, O.Fault(0, p, write=False))
    _expect_data_intact(s)
    if not s.swapped:
        assert_pages(k, 0, s.pages, state=PRESENT, pmd_level=s.pmd_mapped, writable=True)
        assert_counters(k, 0, s.n, 0)
        return
    m = _faulted(s)
    rest = np.setdiff1d(s.pages, m)
    assert_pages(k, 0, m, state=PRESENT, pmd_level=False, writable=s.excl, exclusive=s.excl,
                 soft_dirty=True)
    assert_pages(k, 0, rest, state=SWAPPED, swp_off=s.slots[np.isin(s.pages, rest)])
    assert_counters(k, 0, m.size, s.n - m.size)
    assert k.vmstat["pswpin"] == (0 if s.cached else 1)  # a swap-cache hit reads nothing
    mslots = s.slots[np.isin(s.pages, m)]
    left = s.count - 1
    # should_try_to_free_swap(): SWP_SYNCHRONOUS_IO -> folio_free_swap(), which needs count 0
    cached = not (s.sync and left == 0)
    assert_slots(k, mslots, count=left, cached=cached, free=not cached and left == 0)
    for pid in s.pids[1:]:  # the other process is untouched
        assert_pages(k, pid, s.pages, state=SWAPPED, swp_off=s.slots, contents=val(1, s.pages))
        assert_counters(k, pid, 0, s.n)


def case_write_fault(s: Setup) -> None:
    """Write fault (§1.2 LEGACY steps 5-7; research-notes Q1(c)/(d)): an exclusive entry maps writable
    and dirty at once, and Linux 7.3's should_try_to_free_swap() (FAULT_FLAG_WRITE && exclusive)
    then drops the folio from the swap cache unless it is still under writeback; a shared entry
    maps RO and do_wp_page() copies."""
    k, p = s.k, s.p
    apply(k, O.Fault(0, p, write=True))
    _expect_data_intact(s)
    if not s.swapped:
        assert_pages(k, 0, s.pages, state=PRESENT, pmd_level=s.pmd_mapped, writable=True)
        assert_counters(k, 0, s.n, 0)
        return
    m = _faulted(s)
    others = np.setdiff1d(m, [p])
    assert_pages(k, 0, [p], state=PRESENT, writable=True, exclusive=True, soft_dirty=True,
                 pmd_level=False)
    # a batch write maps all nr PTEs from one template: writable + dirty + soft-dirty (notes item 1)
    assert_pages(k, 0, others, state=PRESENT, writable=s.excl, exclusive=s.excl, soft_dirty=True)
    assert_pages(k, 0, np.setdiff1d(s.pages, m), state=SWAPPED)
    assert_counters(k, 0, m.size, s.n - m.size)
    left = s.count - 1
    under_writeback = s.cached and not s.sync  # the async pageout's folio, not yet evicted
    cached = not (left == 0 and (s.sync or (s.excl and not under_writeback)))
    assert_slots(k, s.slots[np.isin(s.pages, m)], count=left, cached=cached,
                 free=not cached and left == 0)
    for pid in s.pids[1:]:
        assert_pages(k, pid, s.pages, state=SWAPPED, contents=val(1, s.pages))


def _fork_then_write(s: Setup, writer_is_child: bool) -> None:
    k, p = s.k, s.p
    child = len(s.pids)
    apply(k, O.Fork(0))
    # copy_nonpresent_pte(): +1 per slot, EXCL cleared on parent and child (§1.3, notes Q3);
    # copy_huge_pmd()/copy_present_ptes(): both write-protected, no longer exclusive
    for pid in (0, child):
        _expect_data_intact(s, pid)
        if s.swapped:
            assert_pages(k, pid, s.pages, state=SWAPPED, swp_off=s.slots, exclusive=False)
        else:
            assert_pages(k, pid, s.pages, state=PRESENT, writable=False, exclusive=False,
                         pmd_level=s.pmd_mapped)
    if s.swapped:
        assert_slots(k, s.slots, count=s.count + 1)
    w, o = (child, 0) if writer_is_child else (0, child)
    apply(k, O.Write(w, p, 1, value=2))
    # COW isolation: the writer sees its new data, the other process keeps value 1 everywhere
    assert_pages(k, w, [p], state=PRESENT, contents=val(2, [p]), writable=True, exclusive=True,
                 pmd_level=False)
    rest = np.setdiff1d(s.pages, [p])
    _expect_data_intact(s, w, rest)
    _expect_data_intact(s, o)
    if s.swapped:
        m = _faulted(s)
        assert_pages(k, w, np.setdiff1d(m, [p]), state=PRESENT, writable=False, exclusive=False)
        assert_pages(k, w, np.setdiff1d(s.pages, m), state=SWAPPED)
        assert_pages(k, o, s.pages, state=SWAPPED, swp_off=s.slots, exclusive=False)
        assert_counters(k, w, m.size, s.n - m.size)
        assert_counters(k, o, 0, s.n)
        inm = np.isin(s.pages, m)
        assert_slots(k, s.slots[inm], count=s.count, cached=True)  # still referenced: stays cached
        assert_slots(k, s.slots[~inm], count=s.count + 1)
    else:
        # do_huge_pmd_wp_page() on a shared THP splits the PMD (writer only) and do_wp_page() copies
        assert_pages(k, w, rest, state=PRESENT, writable=False, pmd_level=False)
        assert_pages(k, o, s.pages, state=PRESENT, writable=False, pmd_level=s.pmd_mapped)
        assert_counters(k, w, s.n, 0)
        assert_counters(k, o, s.n, 0)


def case_fork_child_writes(s: Setup) -> None:
    """Basic COW after fork(), child writes (§1.3, §1.2 step 7, §3.1 I1; cow.c test_cow_in_child)."""
    _fork_then_write(s, writer_is_child=True)


def case_fork_parent_writes(s: Setup) -> None:
    """COW after fork(), parent writes (§1.3, §1.2 step 7; pmd_swap.c fork_cow parent side)."""
    _fork_then_write(s, writer_is_child=False)


def _unmapped_slots_after_put(s: Setup, gone: np.ndarray) -> None:
    """Slots whose page-table reference was put (§1.5, §0 slot lifecycle): count - 1; a 0-count slot is
    freed unless its folio is still cached (under writeback, or other slots of the folio in use);
    memory.reclaim then frees it."""
    k = s.k
    if not s.swapped or not gone.size:
        return
    gslots = s.slots[np.isin(s.pages, gone)]
    left = s.count - 1
    assert_slots(k, gslots, count=left, cached=s.cached and left == 0,
                 free=left == 0 and not s.cached)
    apply(k, O.Evict())
    assert_slots(k, gslots, count=left, cached=False, free=left == 0)


def case_munmap_partial(s: Setup) -> None:
    """Partial munmap of [0, 256) (§1.5 LEGACY; pmd_swap.c split_munmap): the rest stays as it was."""
    k = s.k
    apply(k, O.Munmap(0, 0, N // 2))
    gone, kept = s.pages[s.pages < N // 2], s.pages[s.pages >= N // 2]
    assert vmas(k) == [(N // 2, N, O.PROT_RW)]
    assert_pages(k, 0, gone, state=UNMAPPED, contents=0)
    _expect_data_intact(s, 0, kept)
    if s.swapped:
        assert_pages(k, 0, kept, state=SWAPPED, swp_off=s.slots[s.pages >= N // 2])
        assert_counters(k, 0, 0, kept.size)
        assert_slots(k, s.slots[s.pages >= N // 2], count=s.count)
    else:
        # vma_adjust_trans_huge() split the PMD at the new VMA boundary
        assert_pages(k, 0, kept, state=PRESENT, pmd_level=False)
        assert_counters(k, 0, kept.size, 0)
    _unmapped_slots_after_put(s, gone)
    for pid in s.pids[1:]:
        assert_pages(k, pid, s.pages, state=SWAPPED, contents=val(1, s.pages))


def case_munmap_whole(s: Setup) -> None:
    """munmap of the whole VMA (§1.5; pmd_swap.c munmap: VmSwap drops by 2 MiB, slots freed)."""
    k = s.k
    apply(k, O.Munmap(0, 0, N))
    assert vmas(k) == []
    assert_pages(k, 0, s.pages, state=UNMAPPED, contents=0)
    assert_counters(k, 0, 0, 0)
    _unmapped_slots_after_put(s, s.pages)
    for pid in s.pids[1:]:
        assert_pages(k, pid, s.pages, state=SWAPPED, contents=val(1, s.pages), swp_off=s.slots)


def case_mprotect_partial(s: Setup) -> None:
    """mprotect(PROT_READ) of [0, 256) (§1.4 LEGACY: swap PTEs untouched; pmd_swap.c split_mprotect)."""
    k, p = s.k, s.p
    apply(k, O.Mprotect(0, 0, N // 2, O.PROT_READ))
    assert vmas(k) == [(0, N // 2, O.PROT_READ), (N // 2, N, O.PROT_RW)]
    _expect_data_intact(s)
    if s.swapped:
        assert_pages(k, 0, s.pages, state=SWAPPED, swp_off=s.slots, exclusive=s.excl,
                     soft_dirty=True)
        assert_slots(k, s.slots, count=s.count)
        assert_counters(k, 0, 0, s.n)
    else:
        ro = s.pages[s.pages < N // 2]
        assert_pages(k, 0, s.pages, state=PRESENT, pmd_level=False)
        assert_pages(k, 0, ro, writable=False)
        assert_pages(k, 0, np.setdiff1d(s.pages, ro), writable=True)
        assert_counters(k, 0, s.n, 0)
    apply(k, O.Write(0, p, 1, value=2), expect=O.SIGSEGV)  # p lies in the read-only half
    _expect_data_intact(s)


def case_mprotect_whole(s: Setup) -> None:
    """mprotect RO then RW over the whole PMD (§1.4; pmd_swap.c mprotect: still swapped, data intact)."""
    k, p = s.k, s.p
    apply(k, O.Mprotect(0, 0, N, O.PROT_READ))
    assert vmas(k) == [(0, N, O.PROT_READ)]
    apply(k, O.Mprotect(0, 0, N, O.PROT_RW))
    assert vmas(k) == [(0, N, O.PROT_RW)]
    _expect_data_intact(s)
    if s.swapped:
        assert_pages(k, 0, s.pages, state=SWAPPED, swp_off=s.slots, exclusive=s.excl)
        assert_slots(k, s.slots, count=s.count)
    else:
        # change_huge_pmd()/change_pte_range() with MM_CP_TRY_CHANGE_WRITABLE: exclusive -> writable
        assert_pages(k, 0, s.pages, state=PRESENT, pmd_level=s.pmd_mapped, writable=True)
    apply(k, O.Write(0, p, 1, value=2))
    assert_pages(k, 0, [p], contents=val(2, [p]), state=PRESENT)


def _zap_then_read(s: Setup, op: O.Op, table_freed: bool) -> None:
    k, p = s.k, s.p
    apply(k, op)
    assert k.mms[0].pmd_kind[p // N] == (PMD_NONE if table_freed else PMD_TABLE)
    if s.swapped:
        assert_pages(k, 0, s.pages, state=NONE, contents=0)
        assert_counters(k, 0, 0, 0)
        _unmapped_slots_after_put(s, s.pages)
    apply(k, O.Fault(0, p, write=False))
    if table_freed:
        # MADV_DONTNEED of the whole 2 MiB frees the emptied PTE table (CONFIG_PT_RECLAIM,
        # zap_pte_range() in mm/memory.c): the PMD is none, so the read faults a zeroed THP
        # (in a MADV_HUGEPAGE VMA; else a new table and the zero page)
        huge = k.mms[0].find_vma(p).hugepage
        assert_pages(k, 0, s.pages if huge else [p], state=PRESENT, contents=0, pmd_level=huge)
        assert_counters(k, 0, N if huge else 0, 0)
    else:
        # MADV_FREE keeps the PTE table, so a read maps the shared zero page (§1.5)
        assert_pages(k, 0, [p], state=PRESENT, contents=0, pmd_level=False)
        assert_counters(k, 0, 0, 0)
    for pid in s.pids[1:]:
        assert_pages(k, pid, s.pages, state=SWAPPED, contents=val(1, s.pages), swp_off=s.slots)


def case_madv_free(s: Setup) -> None:
    """MADV_FREE (§1.6 LEGACY, notes Q7; pmd_swap.c madvise_free): swap PTEs are dropped (slot put,
    MM_SWAPENTS -= nr) and a later read gives zeros. A present THP becomes lazyfree: its data stays
    until reclaim discards it; a discarded PMD mapping leaves pmd_none (__discard_anon_folio_pmd_locked
    clears the PMD and zaps the deposited table), so the next read faults a fresh THP."""
    k, p = s.k, s.p
    if s.swapped:
        _zap_then_read(s, O.Free(0, 0, N), table_freed=False)
        return
    apply(k, O.Free(0, 0, N))
    _expect_data_intact(s)
    assert_pages(k, 0, s.pages, state=PRESENT, pmd_level=s.pmd_mapped)
    apply(k, O.Pageout(0, 0, N))  # reclaim discards the clean lazyfree folio, no swap slot used
    assert_pages(k, 0, s.pages, state=NONE, contents=0)
    assert_counters(k, 0, 0, 0)
    assert_slots(k, THP_SLOT + np.arange(N), count=0, free=True)
    assert k.vmstat["pswpout"] == 0
    apply(k, O.Fault(0, p, write=False))
    if s.pmd_mapped:
        # pmd_none + MADV_HUGEPAGE: do_huge_pmd_anonymous_page() (use_zero_page=0): a zeroed THP
        assert_pages(k, 0, s.pages, state=PRESENT, contents=0, pmd_level=True)
        assert_counters(k, 0, N, 0)
    else:
        assert_pages(k, 0, [p], state=PRESENT, contents=0, pmd_level=False)
        assert_counters(k, 0, 0, 0)


def case_madv_dontneed(s: Setup) -> None:
    """MADV_DONTNEED (§1.5 LEGACY zap): swap PTEs put their slots, reads give zeros; a PMD-mapped THP is
    zapped whole (zap_huge_pmd: PMD none), and a PTE table the zap covered whole is freed
    (CONFIG_PT_RECLAIM, M1), so in every case the next read faults a fresh THP."""
    k, p = s.k, s.p
    if s.swapped:
        _zap_then_read(s, O.Dontneed(0, 0, N), table_freed=True)
        return
    apply(k, O.Dontneed(0, 0, N))
    assert_pages(k, 0, s.pages, state=NONE, contents=0)
    assert_counters(k, 0, 0, 0)
    apply(k, O.Fault(0, p, write=False))
    assert_pages(k, 0, s.pages, state=PRESENT, contents=0, pmd_level=True)
    assert_counters(k, 0, N, 0)


def _mremap(s: Setup, dst: int) -> np.ndarray:
    k = s.k
    apply(k, O.ClearRefs(0))  # so the test can see whether the move sets soft-dirty
    apply(k, O.MremapMove(0, 0, N, dst))
    new = s.pages + dst
    assert vmas(k) == [(dst, dst + N, O.PROT_RW)]
    assert_pages(k, 0, s.pages, state=UNMAPPED)
    assert_pages(k, 0, new, contents=val(1, s.pages))  # page order preserved
    if s.swapped:
        assert_pages(k, 0, new, state=SWAPPED, swp_off=s.slots, exclusive=s.excl)
        assert_slots(k, s.slots, count=s.count)  # counts do not change (§1.7)
        assert_counters(k, 0, 0, s.n)
    else:
        assert_counters(k, 0, s.n, 0)
    for pid in s.pids[1:]:
        assert_pages(k, pid, s.pages, state=SWAPPED, contents=val(1, s.pages), swp_off=s.slots)
    return new


def case_mremap_aligned(s: Setup) -> None:
    """mremap to a PMD-aligned dst (§1.7 LEGACY, notes Q4; D7): move_normal_pmd() moves the PTE table,
    so every entry keeps its soft-dirty bit (cleared by clear_refs here; copy_vma() does not set
    VM_SOFTDIRTY). A PMD-mapped THP goes through move_huge_pmd()/move_soft_dirty_pmd(): SD set."""
    new = _mremap(s, DST)
    if s.pmd_mapped:
        assert_pages(s.k, 0, new, state=PRESENT, pmd_level=True, soft_dirty=True)
    else:
        assert_pages(s.k, 0, new, soft_dirty=False, pmd_level=False)


def case_mremap_unaligned(s: Setup) -> None:
    """mremap to dst = 1024 + 7 (§1.7 LEGACY, notes Q4; D7): move_ptes() sets soft-dirty on every moved
    entry (move_soft_dirty_pte), present or swap; a PMD-mapped THP is split first."""
    new = _mremap(s, DST + 7)
    assert_pages(s.k, 0, new, soft_dirty=True, pmd_level=False)


def case_uffdio_move(s: Setup) -> None:
    """UFFDIO_MOVE of the data to a registered dst (§1.9 LEGACY, notes Q5; D8): a swap PTE needs EXCL
    (else -EBUSY) and must not have a large folio in the swap cache (-EBUSY, no split); a moved swap PTE
    keeps its slot, EXCL and UW and gains SD. After eviction the same move succeeds."""
    k = s.k
    apply(k, O.Mmap(0, DST, N, hugepage=True))
    apply(k, O.UffdRegister(0, DST, N))
    src, n = int(s.pages[0]), s.n
    move = O.UffdMove(0, src, DST + src, n)
    dst_pages = s.pages + DST
    if s.swapped and (not s.excl or s.large_cached):
        apply(k, move, expect=EBUSY)
        assert_pages(k, 0, s.pages, state=SWAPPED, swp_off=s.slots, contents=val(1, s.pages))
        assert_pages(k, 0, dst_pages, state=NONE)
        if not s.excl:
            return
        apply(k, O.Evict())  # memory.reclaim drops the large folio from the swap cache
        assert_slots(k, s.slots, cached=False, count=1)
    apply(k, move)
    assert_pages(k, 0, s.pages, state=NONE, contents=0)
    assert_pages(k, 0, dst_pages, contents=val(1, s.pages))
    if s.swapped:
        assert_pages(k, 0, dst_pages, state=SWAPPED, swp_off=s.slots, exclusive=True,
                     soft_dirty=True, uffd_wp=False)
        assert_slots(k, s.slots, count=1)
        assert_counters(k, 0, 0, n)
        # the moved entries fault in normally: one order-0 page (legacy never maps a THP here)
        apply(k, O.Fault(0, int(dst_pages[0])))
        assert_pages(k, 0, dst_pages[:1], state=PRESENT, contents=val(1, s.pages[:1]),
                     pmd_level=False)
    else:
        # move_pages_huge_pmd() moves a PMD-mapped THP whole; a PTE-mapped one is split_folio()-ed
        assert_pages(k, 0, dst_pages, state=PRESENT, pmd_level=s.pmd_mapped, writable=True,
                     soft_dirty=True)
        assert_counters(k, 0, n, 0)


def case_uffd_wp(s: Setup) -> None:
    """uffd-wp (§1.4 MM_CP_UFFD_WP on swap PTEs, §1.10, notes Q1(a)): the UW bit is set on swap entries,
    comes back on the PTE at swap-in (forcing RO), a write traps (UFFD_WP_TRAP) and succeeds once
    the page is unprotected."""
    k, p = s.k, s.p
    apply(k, O.UffdRegister(0, 0, N))
    apply(k, O.UffdWp(0, 0, N, enable=True))
    assert_pages(k, 0, s.pages, uffd_wp=True, contents=val(1, s.pages))
    if s.swapped:
        assert_pages(k, 0, s.pages, state=SWAPPED, swp_off=s.slots)
    apply(k, O.Fault(0, p, write=False))
    m = _faulted(s) if s.swapped else s.pages
    assert_pages(k, 0, m, state=PRESENT, uffd_wp=True, writable=False, contents=val(1, m))
    assert_counters(k, 0, m.size, s.n - m.size if s.swapped else 0)
    apply(k, O.Write(0, p, 1, value=2), expect=O.UFFD_WP_TRAP)
    assert_pages(k, 0, [p], contents=val(1, [p]), uffd_wp=True)
    apply(k, O.UffdWp(0, p, 1, enable=False))
    assert_pages(k, 0, [p], uffd_wp=False)
    apply(k, O.Write(0, p, 1, value=2))
    assert_pages(k, 0, [p], contents=val(2, [p]), writable=True)
    assert_pages(k, 0, np.setdiff1d(s.pages, [p]), uffd_wp=True)
    for pid in s.pids[1:]:  # the child is not registered (no EVENT_FORK)
        assert_pages(k, pid, s.pages, uffd_wp=False, contents=val(1, s.pages))


def case_soft_dirty(s: Setup) -> None:
    """clear_refs 4 then pageout (§1.11 LEGACY, notes Q6; §1.2 step 5): SD clear on every swap entry
    (but a PMD-mapped THP's split sets it: a dirty PMD, M2); the swap-in of an SD-clear entry maps RO
    (pte_needs_soft_dirty_wp), so the write goes through do_wp_page() and sets SD on the written
    page only."""
    k, p = s.k, s.p
    apply(k, O.ClearRefs(0))
    assert_pages(k, 0, s.pages, soft_dirty=False)
    sd = False
    if not s.swapped:
        apply(k, O.Pageout(0, 0, N))  # a whole THP: slots 512.., folio cached under writeback
        slots = THP_SLOT + np.arange(N)
        m = s.pages  # the cached 512-page folio is mapped as one batch
        # Linux 7.3: reclaim splits a PMD-mapped THP (TTU_SPLIT_HUGE_PMD); clear_refs kept the PMD
        # dirty, and __split_huge_pmd_locked()'s pte_mkdirty() sets soft-dirty on x86, so all 512
        # swap PTEs are soft-dirty (mm/huge_memory.c, arch/x86/include/asm/pgtable.h pte_mkdirty)
        sd = s.pmd_mapped
    else:
        slots = s.slots
        m = _faulted(s)
    assert_pages(k, 0, s.pages, state=SWAPPED, swp_off=slots, soft_dirty=sd)
    apply(k, O.Write(0, p, 1, value=3))
    assert_pages(k, 0, [p], state=PRESENT, soft_dirty=True, writable=True, contents=val(3, [p]))
    # a soft-dirty entry needs no soft-dirty write-protection (pte_needs_soft_dirty_wp()), so the
    # batch maps writable
    assert_pages(k, 0, np.setdiff1d(m, [p]), state=PRESENT, soft_dirty=sd, writable=sd)
    assert_pages(k, 0, np.setdiff1d(s.pages, [p]), soft_dirty=sd,
                 contents=val(1, np.setdiff1d(s.pages, [p])))
    assert_counters(k, 0, m.size, s.n - m.size)


def case_swapoff(s: Setup) -> None:
    """swapoff (§1.8 LEGACY, notes Q2): every entry comes back through unuse_pte(): read-only even when
    exclusive, SD/UW kept, RMAP_EXCLUSIVE iff EXCL, one PTE at a time (never PMD-mapped); the device is
    gone and every content is intact. A later write reuses an exclusive page and copies a shared one."""
    k, p = s.k, s.p
    apply(k, O.Swapoff())
    o = observe(k)
    assert o.swap_count is None and o.swap_cached is None and o.swap_free is None
    for pid in s.pids:
        _expect_data_intact(s, pid)
        if s.swapped:
            assert_pages(k, pid, s.pages, state=PRESENT, writable=False, exclusive=s.excl,
                         soft_dirty=True, pmd_level=False)
            assert observe(k).procs[pid].smaps[0][4] == 0  # AnonHugePages 0 (D4)
        else:
            assert_pages(k, pid, s.pages, state=PRESENT, writable=True, pmd_level=s.pmd_mapped)
        assert_counters(k, pid, s.n, 0)
    apply(k, O.Write(0, p, 1, value=2))
    assert_pages(k, 0, [p], contents=val(2, [p]), writable=True, exclusive=True)
    for pid in s.pids[1:]:
        _expect_data_intact(s, pid)


CASES = {
    "setup_state": case_setup_state,
    "read_fault": case_read_fault,
    "write_fault": case_write_fault,
    "COW_after_fork_child_writes": case_fork_child_writes,
    "COW_after_fork_parent_writes": case_fork_parent_writes,
    "partial_munmap": case_munmap_partial,
    "munmap": case_munmap_whole,
    "partial_mprotect": case_mprotect_partial,
    "mprotect": case_mprotect_whole,
    "MADV_FREE": case_madv_free,
    "MADV_DONTNEED": case_madv_dontneed,
    "mremap_aligned": case_mremap_aligned,
    "mremap_unaligned": case_mremap_unaligned,
    "UFFDIO_MOVE": case_uffdio_move,
    "uffd-wp": case_uffd_wp,
    "soft-dirty": case_soft_dirty,
    "swapoff": case_swapoff,
}


@pytest.mark.parametrize("setup", list(SETUPS.values()), ids=list(SETUPS))
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_matrix(case, setup):
    """One cow.c-style cell: `case` on `setup` (id: case-setup)."""
    case(setup())


# ------------------------------------------------------------------------------------------------
# the series' selftest (tools/testing/selftests/mm/pmd_swap.c, docs/kernel-behaviour.md §5), legacy outcome
# ------------------------------------------------------------------------------------------------
def _swapped_thp(evict: bool = False) -> LegacyKernel:
    k = setup_swapped_thp().k
    if evict:
        apply(k, O.Evict())
    return k


def _read_all(k: LegacyKernel, pid: int, pages) -> None:
    for q in pages:
        apply(k, O.Fault(pid, int(q)))


ALL = np.arange(N)


def test_pmd_swap_basic():
    """pmd_swap.c basic (§5 v1): pattern intact after the fault-in. Legacy: the cached 512-page folio is
    mapped by the first fault as one PTE batch (§1.2 step 3), never PMD-mapped (D2)."""
    k = _swapped_thp()
    apply(k, O.Fault(0, 0))
    assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False, contents=val(1, ALL))
    assert observe(k).procs[0].smaps[0][4] == 0  # AnonHugePages
    assert k.vmstat["pswpin"] == 0  # a swap-cache hit reads nothing


def test_pmd_swap_basic_after_eviction():
    """pmd_swap.c basic after the cache is gone: each fault reads one order-0 page (§1.2 step 1, D1)."""
    k = _swapped_thp(evict=True)
    _read_all(k, 0, ALL)
    assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False, contents=val(1, ALL))
    assert k.vmstat["pswpin"] == N
    assert_counters(k, 0, N, 0)


def test_pmd_swap_fork():
    """pmd_swap.c fork (§5 v1; §1.3): parent and child both read the pattern."""
    k = _swapped_thp(evict=True)
    apply(k, O.Fork(0))
    assert_slots(k, THP_SLOT + ALL, count=2)
    _read_all(k, 1, ALL[::37])
    _read_all(k, 0, ALL[::53])
    for pid in (0, 1):
        assert_pages(k, pid, ALL, contents=val(1, ALL))


def test_pmd_swap_fork_cow():
    """pmd_swap.c fork_cow (§5 v1 + v2-era parent side): the child writes, the parent keeps its data;
    then the parent writes, the child keeps its data (§1.2 step 7, §3.1 I1)."""
    k = _swapped_thp(evict=True)
    apply(k, O.Fork(0))
    apply(k, O.Write(1, 0, N, value=7))
    assert_pages(k, 1, ALL, contents=val(7, ALL), state=PRESENT)
    assert_pages(k, 0, ALL, contents=val(1, ALL), state=SWAPPED, swp_off=THP_SLOT + ALL)
    assert_slots(k, THP_SLOT + ALL, count=1)
    apply(k, O.Write(0, 0, N, value=9))
    assert_pages(k, 0, ALL, contents=val(9, ALL))
    assert_pages(k, 1, ALL, contents=val(7, ALL))


def test_pmd_swap_cycles():
    """pmd_swap.c cycles (§5 v1): 5 rounds of pageout + fault-in, data intact each time. Legacy: the
    read-in order-0 folios stay in the swap cache (async device, read fault), so every later pageout
    reuses the same slots 512 + i (shrink_folio_list skips folio_alloc_swap for a swap-cache folio)."""
    k = LegacyKernel()
    _thp(k)
    for rnd in range(5):
        apply(k, O.Pageout(0, 0, N))
        assert_pages(k, 0, ALL, state=SWAPPED, swp_off=THP_SLOT + ALL, contents=val(1, ALL))
        apply(k, O.Evict())
        _read_all(k, 0, ALL[:: 1 if rnd == 4 else 17])
        apply(k, O.Fault(0, 0))
    assert_pages(k, 0, ALL, state=PRESENT, contents=val(1, ALL))


def test_pmd_swap_cycles_with_writes():
    """Cycles where the fault-in writes: Linux 7.3's should_try_to_free_swap() frees the swap cache
    on a write fault by the exclusive user (FAULT_FLAG_WRITE && exclusive, notes Q1(c)), so slot
    512 is freed, and the next pageout gives page 0 a new order-0 slot in the order-0 cluster while
    the other 511 keep 512 + i."""
    k = _swapped_thp(evict=True)
    apply(k, O.Write(0, 0, 1, value=2))
    assert_pages(k, 0, [0], state=PRESENT, contents=val(2, [0]))
    assert_slots(k, [THP_SLOT], count=0, cached=False, free=True)
    apply(k, O.Pageout(0, 0, N))
    assert_pages(k, 0, ALL[1:], state=SWAPPED, swp_off=THP_SLOT + ALL[1:])
    assert_pages(k, 0, [0], state=SWAPPED, contents=val(2, [0]))
    assert 0 < observe(k).procs[0].swp_off[0] < THP_SLOT


def test_pmd_swap_write():
    """pmd_swap.c write (§5 v1): write the first page, the rest intact. Legacy after eviction: only page 0
    becomes resident (D1), the other 511 stay swapped at 513.. (no THP residency)."""
    k = _swapped_thp(evict=True)
    apply(k, O.Write(0, 0, 1, value=2))
    assert_pages(k, 0, [0], state=PRESENT, contents=val(2, [0]), pmd_level=False)
    assert_pages(k, 0, ALL[1:], state=SWAPPED, swp_off=THP_SLOT + ALL[1:], contents=val(1, ALL[1:]))
    assert_counters(k, 0, 1, N - 1)


def test_pmd_swap_munmap():
    """pmd_swap.c munmap (§5 newest: VmSwap drops by 2 MiB; §1.5): every slot put and freed."""
    k = _swapped_thp(evict=True)
    assert_counters(k, 0, 0, N)
    apply(k, O.Munmap(0, 0, N))
    assert_slots(k, THP_SLOT + ALL, count=0, cached=False, free=True)
    assert_counters(k, 0, 0, 0)


def test_pmd_swap_mprotect():
    """pmd_swap.c mprotect (§5): RO then RW over the PMD, still swapped, data intact (§1.4)."""
    k = _swapped_thp()
    apply(k, O.Mprotect(0, 0, N, O.PROT_READ))
    apply(k, O.Mprotect(0, 0, N, O.PROT_RW))
    assert_pages(k, 0, ALL, state=SWAPPED, swp_off=THP_SLOT + ALL, contents=val(1, ALL))


def test_pmd_swap_mremap():
    """pmd_swap.c mremap (§5 newest: fixed aligned dst still swapped; §1.7): move_normal_pmd()."""
    k = _swapped_thp()
    apply(k, O.MremapMove(0, 0, N, DST))
    assert_pages(k, 0, DST + ALL, state=SWAPPED, swp_off=THP_SLOT + ALL, contents=val(1, ALL))
    apply(k, O.Fault(0, DST + 9))
    assert_pages(k, 0, DST + ALL, contents=val(1, ALL))


def test_pmd_swap_pagemap_offsets():
    """pmd_swap.c pagemap (§5 newest: `first + (idx << 5)`, bit 62 set, bit 63 clear; §1.12): legacy swap
    PTEs show slot base + i in page order, none of them PMD-level."""
    k = _swapped_thp()
    assert_pages(k, 0, ALL, state=SWAPPED, swp_off=THP_SLOT + ALL, pmd_level=False)


def test_pmd_swap_madvise_free():
    """pmd_swap.c madvise_free (§5; §1.6): not swapped afterwards, VmSwap down by 2 MiB, zeros."""
    k = _swapped_thp(evict=True)
    apply(k, O.Free(0, 0, N))
    assert_pages(k, 0, ALL, state=NONE, contents=0)
    assert_counters(k, 0, 0, 0)
    assert_slots(k, THP_SLOT + ALL, free=True)
    apply(k, O.Fault(0, 100))
    assert_pages(k, 0, [100], contents=0, state=PRESENT)


def test_pmd_swap_uffdio_move():
    """pmd_swap.c uffdio_move (§5; §1.9 LEGACY, D8): -EBUSY while the 512-page folio is cached; after
    eviction the 512 exclusive entries move PTE by PTE; dst swapped at 512 + i, data intact; the
    fault-in gives no THP in legacy (check_huge_anon(dst) is a PMD-model-only expectation)."""
    k = _swapped_thp()
    apply(k, O.Mmap(0, DST, N, hugepage=True))
    apply(k, O.UffdRegister(0, DST, N))
    apply(k, O.UffdMove(0, 0, DST, N), expect=EBUSY)
    apply(k, O.Evict())
    apply(k, O.UffdMove(0, 0, DST, N))
    assert_pages(k, 0, DST + ALL, state=SWAPPED, swp_off=THP_SLOT + ALL, contents=val(1, ALL))
    _read_all(k, 0, DST + ALL[:4])
    assert_pages(k, 0, DST + ALL[:4], state=PRESENT, pmd_level=False, contents=val(1, ALL[:4]))


def test_pmd_swap_uffdio_move_after_fork_ebusy():
    """UFFDIO_MOVE of a non-exclusive (forked) swap entry: -EBUSY (§1.9, notes Q5)."""
    k = _swapped_thp(evict=True)
    apply(k, O.Fork(0))
    apply(k, O.Mmap(0, DST, N, hugepage=True))
    apply(k, O.UffdRegister(0, DST, N))
    apply(k, O.UffdMove(0, 0, DST, N), expect=EBUSY)
    assert_pages(k, 0, ALL, state=SWAPPED, swp_off=THP_SLOT + ALL)


def test_pmd_swap_swapoff():
    """pmd_swap.c swapoff (§5; §1.8 LEGACY, D4): data intact, but legacy maps 512 PTEs read-only
    (AnonHugePages 0) where the PMD model maps a THP."""
    k = _swapped_thp(evict=True)
    apply(k, O.Swapoff())
    assert_pages(k, 0, ALL, state=PRESENT, pmd_level=False, writable=False, exclusive=True,
                 contents=val(1, ALL))
    assert observe(k).procs[0].smaps[0][4] == 0


def test_pmd_swap_split_munmap():
    """pmd_swap.c split_munmap (§5 newest: VmSwap down by >= 1 MiB, the rest swapped and correct)."""
    k = _swapped_thp(evict=True)
    apply(k, O.Munmap(0, 0, N // 2))
    assert_counters(k, 0, 0, N // 2)
    assert_pages(k, 0, ALL[N // 2:], state=SWAPPED, swp_off=THP_SLOT + ALL[N // 2:],
                 contents=val(1, ALL[N // 2:]))
    assert_slots(k, THP_SLOT + ALL[:N // 2], free=True)


def test_pmd_swap_split_mprotect():
    """pmd_swap.c split_mprotect (§5 newest: half RO, everything still swapped, data intact)."""
    k = _swapped_thp(evict=True)
    apply(k, O.Mprotect(0, 0, N // 2, O.PROT_READ))
    assert_pages(k, 0, ALL, state=SWAPPED, swp_off=THP_SLOT + ALL, contents=val(1, ALL))
    _read_all(k, 0, [0, N - 1])
    assert_pages(k, 0, [0, N - 1], state=PRESENT, contents=val(1, [0, N - 1]))
    assert_pages(k, 0, [0], writable=False)
    assert_pages(k, 0, [N - 1], writable=True)


def test_pmd_swap_swapin_sync():
    """pmd_swap.c swapin_sync (§5 newest: evict the cache, then require a THP after the fault). Legacy:
    alloc_swap_folio() never uses PMD order (§1.2 step 1), so one order-0 page comes in (D1)."""
    k = setup_swapped_thp_sync().k
    apply(k, O.Evict())
    apply(k, O.Fault(0, 0))
    assert_pages(k, 0, [0], state=PRESENT, pmd_level=False, contents=val(1, [0]))
    assert_pages(k, 0, ALL[1:], state=SWAPPED)
    assert observe(k).procs[0].smaps[0][4] == 0
    assert_slots(k, [THP_SLOT], free=True)  # SWP_SYNCHRONOUS_IO: the cache is dropped after mapping


def test_pmd_swap_mincore():
    """pmd_swap.c mincore (§5; §1.14 LEGACY: a swap PTE is resident iff its slot is cached): 1 while the
    async writeback keeps the folio cached, all 0 after eviction, and nothing faults in."""
    k = _swapped_thp()
    assert_slots(k, THP_SLOT + ALL, cached=True)
    apply(k, O.Evict())
    assert_slots(k, THP_SLOT + ALL, cached=False, count=1)
    assert_pages(k, 0, ALL, state=SWAPPED)


def test_pmd_swap_uffd_wp_before_swapout():
    """rwp_swapin-like (§5 v2-era; §1.10): wp on, swap out, fault in: UW survives on the swap entries and
    on the PTEs; a write traps; the batch of a cached large folio is mapped even with uffd armed."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.UffdRegister(0, 0, N))
    apply(k, O.UffdWp(0, 0, N, enable=True))
    apply(k, O.Pageout(0, 0, N))
    assert_pages(k, 0, ALL, state=SWAPPED, swp_off=THP_SLOT + ALL, uffd_wp=True)
    apply(k, O.Fault(0, 0))
    assert_pages(k, 0, ALL, state=PRESENT, uffd_wp=True, writable=False, contents=val(1, ALL))
    apply(k, O.Fault(0, 1, write=True), expect=O.UFFD_WP_TRAP)
    apply(k, O.Evict())
    apply(k, O.Pageout(0, 0, N))
    apply(k, O.Evict())
    assert_pages(k, 0, ALL, state=SWAPPED, uffd_wp=True)
    apply(k, O.Fault(0, 2))
    assert_pages(k, 0, [2], state=PRESENT, uffd_wp=True, writable=False)
    apply(k, O.Write(0, 2, 1, value=5), expect=O.UFFD_WP_TRAP)
    assert_pages(k, 0, [2], contents=val(1, [2]))


# ------------------------------------------------------------------------------------------------
# the model API: bad input raises BadOp, a missing in-range process is NOT_APPLICABLE
# ------------------------------------------------------------------------------------------------
def test_bad_op_pid_out_of_range():
    """A pid outside 0..MAX_PROCS-1 is not an op the kernel could receive: BadOp naming the field."""
    k = LegacyKernel()
    with pytest.raises(BadOp, match=r"pid 7 is outside 0\.\.3"):
        k.apply(O.Write(7, 0, 1))
    with pytest.raises(BadOp, match="pid"):
        k.apply(O.Mmap(-1, 0, 1))


def test_bad_op_negative_npages():
    k = LegacyKernel()
    with pytest.raises(BadOp, match=r"npages=-1 is outside 1\.\."):
        k.apply(O.Mmap(0, 0, -1))
    with pytest.raises(BadOp, match="npages"):
        k.apply(O.Write(0, 0, 0))


def test_bad_op_not_an_op():
    k = LegacyKernel()
    with pytest.raises(BadOp, match="not an op"):
        k.apply("mmap 0 0 512")
    with pytest.raises(BadOp, match="not an op"):
        k.apply(O.Op())


def test_missing_process_is_not_applicable():
    """An op on an in-range pid with no process returns NOT_APPLICABLE and changes nothing."""
    k = LegacyKernel()
    assert k.apply(O.Write(2, 0, 1)) == O.NOT_APPLICABLE
    assert k.apply(O.Fork(3)) == O.NOT_APPLICABLE
    assert sorted(observe(k).procs) == [0]
    assert check_invariants(k) is None
