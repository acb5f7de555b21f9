"""The legacy model against Linux 7.3 (the series' base tree): one scenario per place where the
shared core was changed to follow the 7.3 source (docs/models.md, "Following Linux 7.3", items
M1-M12). Each asserts the exact 7.3 outcome, with the kernel function it comes from; each has a
trace in corpus/realkernel that the real 7.3 kernel agrees with (tests/test_realkernel.py)."""

from __future__ import annotations

import errno

import numpy as np

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.mm import MINCORE_UNSET, PMD_NONE, PMD_TABLE
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, observe
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel
from scenario_helpers import apply, assert_counters, assert_pages, assert_slots, val

N = O.HPAGE_PMD_NR
THP_SLOT = 512  # the first whole cluster (slot 0 is the header)


def _thp(k, start: int = 0, value: int = 1) -> None:
    apply(k, O.Mmap(0, start, N, hugepage=True))
    apply(k, O.Write(0, start, N, value=value))


# ---- M1: CONFIG_PT_RECLAIM ----------------------------------------------------------------------
def test_m1_dontneed_of_a_whole_table_frees_it():
    """madvise_dontneed_single_vma() zaps with .reclaim_pt (mm/madvise.c); zap_pte_range() frees a
    table the zap covered whole (mm/memory.c pte_table_reclaim_possible, zap_empty_pte_table): the
    PMD is none and the next fault maps a THP, not a 4 KiB page."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Pageout(0, 0, N))  # 512 swap PTEs
    assert k.mms[0].pmd_kind[0] == PMD_TABLE
    apply(k, O.Dontneed(0, 0, N))
    assert k.mms[0].pmd_kind[0] == PMD_NONE
    apply(k, O.Fault(0, 7, write=False))
    assert_pages(k, 0, np.arange(N), state=PRESENT, pmd_level=True, contents=0)
    assert_counters(k, 0, N, 0)


def test_m1_partial_dontneed_and_madv_free_keep_the_table():
    """Not >= PMD_SIZE of this table: no reclaim; MADV_FREE never asks for it (no .reclaim_pt)."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Pageout(0, 0, N))
    apply(k, O.Dontneed(0, 0, N - 1))
    assert k.mms[0].pmd_kind[0] == PMD_TABLE
    apply(k, O.Free(0, 0, N))
    assert k.mms[0].pmd_kind[0] == PMD_TABLE
    apply(k, O.Fault(0, 7, write=False))
    assert_pages(k, 0, [7], state=PRESENT, pmd_level=False)  # the zero page
    assert_counters(k, 0, 0, 0)


def test_m1_dontneed_across_two_vmas_frees_no_table():
    """The zap runs per VMA (madvise_walk_vmas): a 2 MiB split by a VMA boundary is never covered
    whole by one zap_pte_range(), so the table stays."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Mprotect(0, 0, 8, O.PROT_READ))  # two VMAs, the PMD split
    apply(k, O.Dontneed(0, 0, N))
    assert k.mms[0].pmd_kind[0] == PMD_TABLE


# ---- M2: soft-dirty on a split of a dirty PMD ---------------------------------------------------
def test_m2_reclaim_split_of_a_dirty_pmd_sets_soft_dirty():
    """__split_huge_pmd_locked() (mm/huge_memory.c): `if (dirty) entry = pte_mkdirty(entry)`, and
    x86's pte_mkdirty() sets _PAGE_SOFT_DIRTY; clear_refs kept the PMD dirty. So a legacy pageout
    after clear_refs leaves 512 soft-dirty swap PTEs (try_to_unmap_one() copies the bit)."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.ClearRefs(0))
    assert_pages(k, 0, np.arange(N), soft_dirty=False)
    apply(k, O.Pageout(0, 0, N))
    assert_pages(k, 0, np.arange(N), state=SWAPPED, soft_dirty=True)


def test_m2_partial_mprotect_split_sets_soft_dirty_but_folio_split_does_not():
    """A VMA split is a non-freeze split (soft-dirty from dirty); split_folio()'s unmap_folio() is
    a freeze split through migration entries, and remove_migration_pte() (mm/migrate.c) takes
    soft-dirty from the entry only (pte_clear_soft_dirty() otherwise)."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.ClearRefs(0))
    apply(k, O.Mprotect(0, 0, 8, O.PROT_READ))
    assert_pages(k, 0, np.arange(N), state=PRESENT, pmd_level=False, soft_dirty=True)
    k2 = LegacyKernel()
    _thp(k2)
    apply(k2, O.ClearRefs(0))
    apply(k2, O.Pageout(0, 0, 8))  # partial: split_folio(), then the 8 pages go out
    assert_pages(k2, 0, np.arange(8, N), state=PRESENT, pmd_level=False, soft_dirty=False)
    assert_pages(k2, 0, np.arange(8), state=SWAPPED, soft_dirty=False)


def test_m2_the_series_keeps_the_pmd_bit():
    """The series on top of 7.3: set_pmd_swap_entry() keeps only the PMD's soft-dirty bit (as
    set_pmd_migration_entry() does), so the PMD model's entry is clean where legacy's 512 swap PTEs
    are soft-dirty; the model says so with the D9 event the oracle tolerates."""
    k = PmdSwapKernel()
    _thp(k)
    apply(k, O.ClearRefs(0))
    k.apply(O.Pageout(0, 0, N))
    assert ("pmd_swapout_dirty_not_sd", 0, 0) in k.events
    assert_pages(k, 0, np.arange(N), state=SWAPPED, soft_dirty=False)


# ---- M5: COW of a PTE-mapped large folio in the swap cache ---------------------------------------
def test_m5_large_folio_reuse_frees_the_swap_cache():
    """__wp_can_reuse_large_anon_folio() (mm/memory.c): folio_free_swap() first, then reuse if
    folio_large_mapcount() == folio_ref_count(). After a fork whose child has exited, the parent's
    write to a page of the large folio the read fault mapped from the swap cache reuses it in place:
    the folio leaves the swap cache and its 512 slots are freed; no page is copied."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Pageout(0, 0, N))  # 512 swap PTEs, the large folio cached under writeback
    apply(k, O.Fault(0, 0, write=False))  # the whole cached folio is mapped as one batch
    apply(k, O.Fork(0))  # the pages lose PageAnonExclusive
    apply(k, O.Exit(1))
    apply(k, O.Evict())  # writeback done; the mapped folio stays cached
    assert_slots(k, THP_SLOT + np.arange(N), count=0, cached=True, free=False)
    pfn = int(k.mms[0].pte_pfn[9])
    apply(k, O.Write(0, 9, 1, value=2))
    assert int(k.mms[0].pte_pfn[9]) == pfn
    assert_slots(k, THP_SLOT + np.arange(N), count=0, cached=False, free=True)
    assert_pages(k, 0, [9], contents=val(2, [9]), writable=True)
    assert_counters(k, 0, N, 0)


# ---- M9: MADV_PAGEOUT / MADV_FREE skip a shared large folio and go on ------------------------------
def _shared_head_private_tail() -> LegacyKernel:
    """Pages 0..299 map the large folio shared with the child; 300..511 are the parent's own
    order-0 copies (COW after fork), in the same PTE table."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Fork(0))
    apply(k, O.Write(0, 300, N - 300, value=2))
    return k


def test_m9_pageout_skips_the_shared_folio_and_pages_out_the_rest():
    """madvise_cold_or_pageout_pte_range() (mm/madvise.c): a large folio not fully mapped in the
    range that folio_maybe_mapped_shared() is skipped with `continue`; the walk goes on."""
    k = _shared_head_private_tail()
    apply(k, O.Pageout(0, 0, N))
    assert_pages(k, 0, np.arange(300), state=PRESENT)
    assert_pages(k, 0, np.arange(300, N), state=SWAPPED, contents=val(2, np.arange(300, N)))
    assert_counters(k, 0, 300, N - 300)


def test_m9_madv_free_marks_the_rest_lazyfree():
    """madvise_free_pte_range(): the same `continue`; the private pages after the shared folio are
    made lazyfree, so a later pageout discards them (zeros) without swapping."""
    k = _shared_head_private_tail()
    apply(k, O.Free(0, 0, N))
    apply(k, O.Pageout(0, 0, N))
    assert_pages(k, 0, np.arange(300), state=PRESENT, contents=val(1, np.arange(300)))
    assert_pages(k, 0, np.arange(300, N), state=NONE, contents=0)
    assert_counters(k, 0, 300, 0)


# ---- M6: VMA merging ------------------------------------------------------------------------------
def _vmas(k, pid: int = 0):
    return [(v.start, v.end) for v in k.mms[pid].vmas]


def test_m6_adjacent_mmaps_merge_and_fault_a_thp():
    """A new anonymous mapping has no anon_vma and merges with its neighbour (vma_merge_new_range(),
    is_mergeable_anon_vma() case 2, mm/vma.c): two half-region mmaps are one VMA, so the aligned
    2 MiB lies inside a VMA and a fault maps a THP."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N // 2, hugepage=True))
    apply(k, O.Write(0, 0, 1, value=1))  # the first VMA gets its anon_vma
    apply(k, O.Mmap(0, N // 2, N // 2, hugepage=True))
    assert _vmas(k) == [(0, N)]
    apply(k, O.Dontneed(0, 0, N))
    apply(k, O.Fault(0, N - 1, write=False))
    assert_pages(k, 0, np.arange(N), state=PRESENT, pmd_level=True)


def test_m6_vm_softdirty_is_sticky_on_merge():
    """VM_SOFTDIRTY is in VMA_STICKY_FLAGS (include/linux/mm.h): it does not block a merge and the
    merged VMA has it, so after clear_refs a neighbour's mmap makes every page of the old VMA read
    soft-dirty again (pagemap ORs VM_SOFTDIRTY in, fs/proc/task_mmu.c)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.Write(0, 0, 16, value=1))
    apply(k, O.ClearRefs(0))
    assert_pages(k, 0, np.arange(16), soft_dirty=False)
    apply(k, O.Mmap(0, N, N, hugepage=False))
    assert _vmas(k) == [(0, 2 * N)]
    assert_pages(k, 0, np.arange(16), soft_dirty=True)


def test_m6_no_merge_with_a_fork_childs_anon_vma():
    """is_mergeable_anon_vma(): a VMA forked with an anon_vma (vma_is_fork_child()) does not take
    in a neighbour without one; the parent's does."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.Write(0, 0, 1, value=1))
    apply(k, O.Fork(0))
    apply(k, O.Mmap(1, N, N, hugepage=False))
    assert _vmas(k, 1) == [(0, N), (N, 2 * N)]
    apply(k, O.Mmap(0, N, N, hugepage=False))
    assert _vmas(k, 0) == [(0, 2 * N)]


def test_m6_only_the_changed_range_is_merged():
    """dup_userfaultfd() drops a fork child's uffd registration, but dup_mmap() merges nothing, so
    the child's three VMAs, now equal, stay apart; an mmap elsewhere and clear_refs (which clears
    VM_SOFTDIRTY in place) do not merge them either; an mprotect over them does (vma_modify()).
    Found by kernel-check --generate on 7.3 (seed 1, sequence 550)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.UffdRegister(0, 100, 100))
    apply(k, O.Fork(0))
    assert _vmas(k, 1) == [(0, 100), (100, 200), (200, N)]
    assert not any(v.uffd_wp for v in k.mms[1].vmas)
    apply(k, O.Mmap(1, 2 * N, N, hugepage=False))
    apply(k, O.ClearRefs(1))
    assert _vmas(k, 1) == [(0, 100), (100, 200), (200, N), (2 * N, 3 * N)]
    apply(k, O.Mprotect(1, 0, N, prot=O.PROT_READ))
    assert _vmas(k, 1) == [(0, N), (2 * N, 3 * N)]


def test_m6_two_anon_vmas_do_not_merge():
    """Two VMAs that each have their own anon_vma stay two (case 3 needs the same anon_vma): an
    mremap of a faulted VMA next to another faulted one."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.Write(0, 0, 1, value=1))
    apply(k, O.Mmap(0, 2 * N, N, hugepage=False))
    apply(k, O.Write(0, 2 * N, 1, value=2))
    apply(k, O.MremapMove(0, 2 * N, N, N))
    assert _vmas(k) == [(0, N), (N, 2 * N)]


def test_m6_hugepage_mmap_merges_first_so_the_neighbour_is_soft_dirty_again():
    """`mmap hugepage=1` is mmap() then MADV_HUGEPAGE. __mmap_region() merges the plain new range
    into a plain neighbour (vma_merge_new_range(), mm/vma.c:2899) and __mmap_complete() sets
    VM_SOFTDIRTY on the whole merged VMA (mm/vma.c:2765); MADV_HUGEPAGE (vma_modify_flags(),
    mm/madvise.c:170) splits the range off again and the neighbour keeps VM_SOFTDIRTY, so after
    clear_refs all its pages, present ones too, read soft-dirty (fs/proc/task_mmu.c:2012, :2084).
    The split-off VMA keeps the merged VMA's anon_vma. Real 7.3: gen-s1-25 op 3, corpus
    linux73-m6-madv_hugepage_merged_neighbour_softdirty.trace."""
    for k in (LegacyKernel(), PmdSwapKernel()):
        apply(k, O.Mmap(0, N, N, hugepage=False))
        apply(k, O.Write(0, N + 88, 4, value=1))
        apply(k, O.ClearRefs(0))
        assert_pages(k, 0, np.arange(N, 2 * N), soft_dirty=False)
        apply(k, O.Mmap(0, 0, N, hugepage=True))
        a, b = k.mms[0].vmas
        assert [(a.start, a.end, a.hugepage), (b.start, b.end, b.hugepage)] == \
            [(0, N, True), (N, 2 * N, False)]
        assert a.softdirty and b.softdirty and a.anon_vma == b.anon_vma != 0
        assert_pages(k, 0, np.arange(0, 2 * N), soft_dirty=True)
        # no plain neighbour: nothing else becomes soft-dirty
        apply(k, O.ClearRefs(0))
        apply(k, O.Mmap(0, 3 * N, N, hugepage=True))
        assert_pages(k, 0, np.arange(0, 2 * N), soft_dirty=False)
        assert_pages(k, 0, np.arange(3 * N, 4 * N), soft_dirty=True)
        # between a plain prev and a VM_HUGEPAGE next: merged into prev (soft-dirty again), then
        # split off and merged into next (vma_merge_existing_range(), sticky flags mm/vma.c:892-1073)
        apply(k, O.Mmap(0, 2 * N, N, hugepage=True))
        assert [(v.start, v.end, v.hugepage) for v in k.mms[0].vmas] == \
            [(0, N, True), (N, 2 * N, False), (2 * N, 4 * N, True)]
        assert_pages(k, 0, np.arange(0, N), soft_dirty=False)
        assert_pages(k, 0, np.arange(N, 4 * N), soft_dirty=True)
        apply(k, O.Write(0, 2 * N, 1, value=3))
        assert_pages(k, 0, np.arange(2 * N, 3 * N), state=PRESENT, pmd_level=True)


# ---- M3: zero-filled subpages go to the shared zero page on a split ------------------------------
def test_m3_split_maps_zero_filled_subpages_to_the_zero_page():
    """__folio_split() remaps with TTU_USE_SHARED_ZEROPAGE; try_to_map_unused_to_zeropage()
    (mm/migrate.c) maps each zero-filled subpage to the zero page and drops MM_ANONPAGES. A THP
    written on one page, then paged out half: one page goes to swap, 511 read the zero page, and
    MADV_PAGEOUT skips zero-page PTEs."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Write(0, 3, 1, value=1))  # the THP; every other subpage stays zero-filled
    apply(k, O.ClearRefs(0))
    apply(k, O.UffdRegister(0, 0, N))
    apply(k, O.UffdWp(0, 0, N, True))
    apply(k, O.Pageout(0, 0, N // 2))
    assert_pages(k, 0, [3], state=SWAPPED, contents=val(1, [3]))
    rest = np.setdiff1d(np.arange(N), [3])
    # the zero page keeps the migration entry's soft-dirty (clear) and uffd-wp bits
    assert_pages(k, 0, rest, state=PRESENT, contents=0, pmd_level=False, writable=False,
                 soft_dirty=False, uffd_wp=True)
    assert (k.mms[0].pte_pfn[rest] == 0).all()
    assert_counters(k, 0, 0, 1)
    assert k.mem.live_folios().size == 1  # only page 3's folio, in the swap cache


def test_m3_split_of_a_cached_folio_frees_its_unmapped_pages():
    """free_folio_and_swap_cache() on the new folios after the split: a subpage the split finds
    unmapped, whose slot nobody references, leaves the swap cache and is freed; mapped ones stay
    cached."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Write(0, 0, N, value=1))
    apply(k, O.Pageout(0, 0, N))  # cached large folio under writeback, 512 swap PTEs
    apply(k, O.Fault(0, 0, write=False))  # the whole cached folio mapped as one batch
    apply(k, O.Evict())  # writeback done; the mapped folio stays cached
    apply(k, O.Munmap(0, 100, N - 100))
    assert_slots(k, THP_SLOT + np.arange(N), count=0, cached=True)
    apply(k, O.SplitThp())
    assert_slots(k, THP_SLOT + np.arange(100), count=0, cached=True, free=False)
    assert_slots(k, THP_SLOT + np.arange(100, N), count=0, cached=False, free=True)
    assert_pages(k, 0, np.arange(100), state=PRESENT, contents=val(1, np.arange(100)))


# ---- M4: zero-filled folios go to the zeromap ----------------------------------------------------
def test_m4_zero_filled_thp_is_marked_not_written():
    """swap_writeout() (mm/page_io.c): is_folio_zero_filled() -> swap_zeromap_folio_set(), no I/O:
    no PSWPOUT or THP_SWPOUT, and the folio is clean and not under writeback, so shrink_folio_list()
    drops it from the swap cache at once even on a disk. A read fault then reads one order-0 page
    without I/O (swap_read_folio_zeromap(): no PSWPIN)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Fault(0, 0, write=False))  # a zeroed THP (use_zero_page=0)
    apply(k, O.Pageout(0, 0, N))
    assert (k.vmstat["pswpout"], k.vmstat["thp_swpout"]) == (0, 0)
    assert_slots(k, THP_SLOT + np.arange(N), count=1, cached=False, free=False)
    assert_pages(k, 0, np.arange(N), state=SWAPPED)
    apply(k, O.Fault(0, 5, write=False))
    assert_pages(k, 0, [5], state=PRESENT, contents=0, pmd_level=False)
    assert_counters(k, 0, 1, N - 1)
    assert k.vmstat["pswpin"] == 0


def test_m4_a_folio_with_data_is_written_and_its_zero_pages_read_back():
    """One non-zero word makes the folio not zero-filled: it is written whole (512 PSWPOUT, one
    THP_SWPOUT), and a later read of a page that held zeros is real I/O (PSWPIN 1)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Write(0, 3, 1, value=1))
    apply(k, O.Pageout(0, 0, N))
    assert (k.vmstat["pswpout"], k.vmstat["thp_swpout"]) == (N, 1)
    apply(k, O.Evict())
    apply(k, O.Fault(0, 5, write=False))
    assert_pages(k, 0, [5], state=PRESENT, contents=0)
    assert k.vmstat["pswpin"] == 1


# ---- M8: UFFDIO_MOVE --------------------------------------------------------------------------------
def _uffd_area(k, huge: bool = False) -> None:
    apply(k, O.Mmap(0, 0, 2 * N, hugepage=huge))
    apply(k, O.UffdRegister(0, 0, 2 * N))


def test_m8_error_codes():
    """move_pages() (mm/userfaultfd.c): a range past its VMA's end is -EINVAL ("fully within a
    single existing vma"), so is a dst VMA not registered with this uffd (validate_move_areas());
    no VMA at an address is -ENOENT."""
    k = LegacyKernel()
    _uffd_area(k)
    apply(k, O.Write(0, 0, 4, value=1))
    apply(k, O.UffdMove(0, 0, 2 * N - 2, 4), expect=-errno.EINVAL)
    apply(k, O.Mmap(0, 3 * N, N, hugepage=False))  # not registered
    apply(k, O.UffdMove(0, 0, 3 * N, 4), expect=-errno.EINVAL)
    apply(k, O.UffdMove(0, 0, 2 * N + 100, 4), expect=-errno.ENOENT)


def test_m8_overlapping_ranges_move_page_by_page():
    """7.3 has no overlap check: the loop moves page by page, each dst PTE none when it is
    reached."""
    k = LegacyKernel()
    _uffd_area(k)
    apply(k, O.Write(0, 2, 4, value=1))
    apply(k, O.UffdMove(0, 2, 0, 4))
    assert_pages(k, 0, np.arange(4), state=PRESENT, contents=val(1, np.arange(2, 6)))
    assert_pages(k, 0, [4, 5], state=NONE)


def test_m8_short_move_is_eagain():
    """A move that stops after moving some pages returns the bytes moved (move_pages()), and the
    ioctl turns that into -EAGAIN (userfaultfd_move()); the moved pages stay moved."""
    k = LegacyKernel()
    _uffd_area(k)
    apply(k, O.Write(0, 0, 2, value=1))  # page 2 stays none: -ENOENT there
    apply(k, O.UffdMove(0, 0, 100, 4), expect=-errno.EAGAIN)
    assert_pages(k, 0, [100, 101], state=PRESENT, contents=val(1, [0, 1]))
    assert_pages(k, 0, [0, 1], state=NONE)


def test_m8_zero_page_moves_as_a_fresh_pte():
    """move_zeropage_pte(): the dst gets a fresh zero-page PTE from vm_page_prot: the source's
    uffd-wp and soft-dirty bits are not carried, so a later store there does not trap."""
    k = LegacyKernel()
    _uffd_area(k)
    apply(k, O.Fault(0, 3, write=False))
    apply(k, O.ClearRefs(0))
    apply(k, O.UffdWp(0, 0, 8, True))
    assert_pages(k, 0, [3], uffd_wp=True)
    apply(k, O.UffdMove(0, 3, 10, 1))
    assert_pages(k, 0, [10], state=PRESENT, contents=0, uffd_wp=False, soft_dirty=False)
    apply(k, O.Write(0, 10, 1, value=2))


def test_m8_large_folio_exclusivity_is_its_first_page():
    """move_pages_ptes() checks PageAnonExclusive(&folio->page) of a large folio, the first page,
    not the subpage: a subpage made exclusive by a reuse after fork does not make it movable."""
    k = LegacyKernel()
    _uffd_area(k, huge=True)
    apply(k, O.Write(0, 0, N, value=1))
    apply(k, O.Mprotect(0, 0, 1, O.PROT_READ))  # split the PMD: a PTE-mapped large folio
    apply(k, O.Mprotect(0, 0, 1, O.PROT_RW))
    apply(k, O.Fork(0))  # no page is exclusive now
    apply(k, O.Exit(1))
    apply(k, O.Write(0, 5, 1, value=2))  # reuse of the large folio: page 5 alone exclusive
    assert k.mem.anon_exclusive[int(k.mms[0].pte_pfn[5])]
    assert not k.mem.anon_exclusive[int(k.mms[0].pte_pfn[0])]
    apply(k, O.UffdMove(0, 5, N + 5, 1), expect=-errno.EBUSY)


# ---- M7: mremap -----------------------------------------------------------------------------------
def test_m7_shrink_may_cross_vma_boundaries():
    """check_prep_vma() (mm/mremap.c) returns early when nothing new is mapped ("We permit crossing
    of boundaries for the range being unmapped due to a shrink"), so a shrink whose old range spans
    two VMAs unmaps the tail; a no-resize call over two VMAs is a no-op; growing still needs one."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 64, hugepage=False))
    apply(k, O.Mprotect(0, 32, 32, O.PROT_READ))  # two VMAs
    apply(k, O.Write(0, 0, 8, value=1))
    apply(k, O.MremapShrink(0, 0, 64, 64))
    apply(k, O.MremapShrink(0, 0, 64, 16))
    assert [(v.start, v.end) for v in k.mms[0].vmas] == [(0, 16)]
    assert_pages(k, 0, np.arange(8), state=PRESENT, contents=val(1, np.arange(8)))
    apply(k, O.Mmap(0, 16, 16, hugepage=False))
    apply(k, O.Mprotect(0, 16, 16, O.PROT_READ))
    apply(k, O.MremapShrink(0, 0, 32, 48), expect=-errno.EFAULT)


def test_m7_mremap_drops_the_uffd_context_of_the_merged_vma():
    """The rig's userfaultfd has no UFFD_FEATURE_EVENT_REMAP. copy_vma() (mm/vma.c:1944) merges
    the moved range with a compatible neighbour first (vma_merge_copied_range(): same flags and
    uffd context; an unfaulted VMA takes the new address as its pgoff), and only then does
    mremap_userfaultfd_prep(new_vma) (mm/mremap.c:1345) call userfaultfd_reset_ctx()
    (mm/userfaultfd.c:3215, :2257) on new_vma, which is the whole merged VMA: the registered
    neighbour A loses VM_UFFD_WP too, while its PTEs keep their uffd-wp bits (pagemap bit 57)
    and a store no longer traps. Moving A, now without a context, keeps those bits (move_ptes()
    clears them only under vma_has_uffd_without_event_remap(), mm/mremap.c:201). A partial move
    of a registered VMA clears the bits of the moved entries and leaves the rest registered."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 64, hugepage=False))
    apply(k, O.Write(0, 0, 64, value=1))
    apply(k, O.UffdRegister(0, 0, 64))
    apply(k, O.UffdWp(0, 0, 64, True))
    apply(k, O.Mmap(0, 512, 64, hugepage=False))
    apply(k, O.UffdRegister(0, 512, 64))
    apply(k, O.MremapMove(0, 512, 64, 64))  # unfaulted: pgoff 64, merges with A
    assert [(v.start, v.end, v.uffd_wp) for v in k.mms[0].vmas] == [(0, 128, False)]
    assert_pages(k, 0, np.arange(64), state=PRESENT, uffd_wp=True, contents=val(1, np.arange(64)))
    apply(k, O.Write(0, 0, 1, value=2))  # no trap: the VMA is not registered any more
    assert_pages(k, 0, [0], contents=val(2, [0]))
    apply(k, O.MremapMove(0, 0, 64, 1024))  # no context: the bits move with the entries
    assert_pages(k, 0, np.arange(1025, 1088), state=PRESENT, uffd_wp=True)
    # a registered VMA moved in part: the moved entries lose the bit, the rest stays registered
    apply(k, O.Mmap(0, 1536, 64, hugepage=False))
    apply(k, O.Write(0, 1536, 64, value=3))
    apply(k, O.UffdRegister(0, 1536, 64))
    apply(k, O.UffdWp(0, 1536, 64, True))
    apply(k, O.MremapMove(0, 1568, 32, 1792))
    assert [(v.start, v.end, v.uffd_wp) for v in k.mms[0].vmas][-2:] == [(1536, 1568, True),
                                                                         (1792, 1824, False)]
    assert_pages(k, 0, np.arange(1536, 1568), uffd_wp=True)
    assert_pages(k, 0, np.arange(1792, 1824), state=PRESENT, uffd_wp=False,
                 contents=val(3, np.arange(1568, 1600)))


def test_m7_move_of_several_vmas():
    """mremap(MREMAP_FIXED | MREMAP_MAYMOVE) with old_len == new_len is vrm_move_only()
    (mm/mremap.c:1727), so do_mremap() calls remap_move() (:1933): every VMA of the range moves,
    each to the previous one's new end plus the same gap (:1963-1977); each mremap_to() unmaps
    only its own destination (:1503), so a mapping in the destination of a hole stays. A hole at
    the start, or no VMA at all, is -EFAULT (:1959, :1940); a uffd-armed VMA (vma_multi_allowed(),
    :1752) is -EFAULT as the first VMA when the range goes past it (nothing moved) and as a later
    one (the earlier VMAs stay moved, :1988)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 32, hugepage=False))
    apply(k, O.Write(0, 0, 32, value=1))
    apply(k, O.Mmap(0, 48, 16, hugepage=False))
    apply(k, O.Write(0, 48, 16, value=2))
    apply(k, O.Mmap(0, 1056, 16, hugepage=False))  # the hole's destination
    apply(k, O.Write(0, 1056, 16, value=3))
    apply(k, O.MremapMove(0, 0, 64, 1024))
    assert _vmas(k) == [(1024, 1056), (1056, 1072), (1072, 1088)]
    assert_pages(k, 0, np.arange(1024, 1056), state=PRESENT, contents=val(1, np.arange(32)))
    assert_pages(k, 0, np.arange(1056, 1072), state=PRESENT, contents=val(3, np.arange(1056, 1072)))
    assert_pages(k, 0, np.arange(1072, 1088), state=PRESENT, contents=val(2, np.arange(48, 64)))
    apply(k, O.MremapMove(0, 1000, 100, 0), expect=-errno.EFAULT)  # hole at the start
    apply(k, O.MremapMove(0, 0, 100, 1024), expect=-errno.EFAULT)  # no VMA in the range
    apply(k, O.MremapMove(0, 1024, 100, 0))  # a hole at the end is allowed
    assert _vmas(k) == [(0, 32), (32, 48), (48, 64)]
    apply(k, O.UffdRegister(0, 32, 16))
    apply(k, O.MremapMove(0, 32, 32, 512), expect=-errno.EFAULT)  # armed first VMA, more follow
    assert _vmas(k) == [(0, 32), (32, 48), (48, 64)]
    apply(k, O.MremapMove(0, 0, 64, 512), expect=-errno.EFAULT)  # armed second VMA
    assert _vmas(k) == [(32, 48), (48, 64), (512, 544)]
    assert_pages(k, 0, np.arange(512, 544), state=PRESENT, contents=val(1, np.arange(32)))
    apply(k, O.MremapMove(0, 32, 16, 1536))  # armed, alone: moved
    assert [(v.start, v.end, v.uffd_wp) for v in k.mms[0].vmas][-1] == (1536, 1552, False)


def test_m6_a_new_anon_vma_is_borrowed_from_a_neighbour_so_mprotect_can_remerge():
    """find_mergeable_anon_vma() (mm/vma.c): the first fault in B takes A's anon_vma when the two
    differ only in access flags (anon_vma_compatible()), so A and B merge once mprotect makes their
    flags equal again."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 64, hugepage=False))
    apply(k, O.Write(0, 0, 1, value=1))
    apply(k, O.Mprotect(0, 0, 64, O.PROT_READ))
    apply(k, O.Mmap(0, 64, 64, hugepage=False))
    apply(k, O.Write(0, 64, 1, value=2))
    assert _vmas(k) == [(0, 64), (64, 128)]
    apply(k, O.Mprotect(0, 0, 64, O.PROT_RW))
    assert _vmas(k) == [(0, 128)]


def test_m6_pgoffs_must_be_contiguous():
    """is_mergeable_vma() needs vma_end_pgoff(prev) == vma_start_pgoff(next): a faulted VMA moved
    by mremap keeps its vm_pgoff, so it does not merge with its new neighbour; an unfaulted one
    takes the new address as its pgoff (copy_vma(), mm/vma.c:1960-1966: "update its anonymous
    pgoff to match the new location to increase its chance of merging") and merges."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 64, hugepage=False))
    apply(k, O.Mmap(0, 512, 64, hugepage=False))
    apply(k, O.Write(0, 512, 1, value=1))
    apply(k, O.MremapMove(0, 512, 64, 64))
    assert _vmas(k) == [(0, 64), (64, 128)]
    apply(k, O.Mmap(0, 1024, 64, hugepage=False))
    apply(k, O.Mmap(0, 512, 64, hugepage=False))
    apply(k, O.MremapMove(0, 512, 64, 1088))
    assert _vmas(k) == [(0, 64), (64, 128), (1024, 1152)]


def test_reclaim_frees_a_stale_dirty_swap_cache_folio():
    """swap_writeout() (mm/page_io.c) starts with folio_free_swap(): a dirty folio nothing maps
    and whose slot nobody references leaves the swap cache instead of being written again."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 64, hugepage=False))
    apply(k, O.Write(0, 0, 1, value=1))
    apply(k, O.Pageout(0, 0, 1))  # cached under writeback
    apply(k, O.Write(0, 0, 1, value=2))  # exclusive write: folio_free_swap() refused (writeback)
    apply(k, O.Munmap(0, 0, 1))  # unmapped, slot count 0, still under writeback: stays cached
    assert_slots(k, [1], count=0, cached=True, free=False)
    apply(k, O.Evict())
    assert_slots(k, [1], count=0, cached=False, free=True)
    assert k.mem.live_folios().size == 0


# ---- found by kernel-check --generate ------------------------------------------------------------
def test_uffd_register_needs_one_vma_in_the_range_not_all_of_it():
    """userfaultfd_register() (7.3 mm/userfaultfd.c:3718): `vma = vma_find(&vmi, end); if (!vma)
    goto out_unlock;` (-EINVAL) and then every VMA found is registered; holes are fine."""
    for k in (LegacyKernel(), PmdSwapKernel()):
        apply(k, O.Mmap(0, 52, 75))
        assert k.apply(O.UffdRegister(0, 0, N)) == O.OK
        assert [(v.start, v.end, v.uffd_wp) for v in k.mms[0].vmas] == [(52, 127, True)]
        assert k.apply(O.UffdRegister(0, 1024, N)) == -errno.EINVAL  # no VMA at all
        apply(k, O.Mmap(0, 1024, 8))
        assert k.apply(O.UffdRegister(0, 1020, 8)) == O.OK  # a VMA in the second half only
        assert [(v.start, v.end, v.uffd_wp) for v in k.mms[0].vmas][1:] == [
            (1024, 1028, True), (1028, 1032, False)]


def test_fork_copies_no_page_tables_of_a_vma_without_anon_vma():
    """vma_needs_copy() (7.3 mm/memory.c:1564): only zero-page read faults, so no anon_vma: the
    child's page tables stay empty and it reads zero-filled pages by faulting them in."""
    for k in (LegacyKernel(), PmdSwapKernel()):
        apply(k, O.Mmap(0, 1536, 16))
        apply(k, O.Fault(0, 1540, write=False))  # do_anonymous_page(): the shared zero page
        assert k.mms[0].vmas[0].anon_vma == 0
        apply(k, O.Fork(0))
        assert_pages(k, 0, [1540], state=PRESENT)
        assert_pages(k, 1, [1540], state=NONE)
        apply(k, O.Write(0, 1541, 1, value=5))  # now it has an anon_vma: the next fork copies
        apply(k, O.Fork(0))
        assert_pages(k, 2, [1540, 1541], state=PRESENT)


def _settle(k) -> None:
    """The disk finishes writeback between ops (as in kernel-check)."""
    from pmdswap_fuzz.fuzz.kernelcheck import end_all_writeback
    end_all_writeback(k)


def test_uffd_wp_read_then_write_keeps_the_swap_cache_clean():
    """do_swap_page() (7.3 mm/memory.c:5234) frees the swap cache only on a write fault by the
    exclusive user (should_try_to_free_swap(), :4649). A read fault first maps the cached THP
    read-only (uffd-wp) and keeps it cached and clean; the store then traps in do_wp_page(), so
    the next pageout unmaps the clean swap-cache folio with no I/O. A write fault straight on the
    swap PTE frees the swap cache (folio_free_swap() dirties the folio) and the pageout writes it
    again. (Under qemu's single-threaded TCG the C reproducer's `lock addl` was a load then a
    store, the first case, where the model made it the second.)"""
    for read_first, pswpout in ((True, 0), (False, N)):
        k = LegacyKernel()
        _thp(k, value=3)
        apply(k, O.UffdRegister(0, 0, N))
        apply(k, O.UffdWp(0, 0, N, True))
        apply(k, O.Pageout(0, 0, N))
        _settle(k)
        if read_first:
            apply(k, O.Fault(0, 256, write=False))
        apply(k, O.Fault(0, 256, write=True), expect=O.UFFD_WP_TRAP)
        assert_pages(k, 0, np.arange(N), state=PRESENT, uffd_wp=True, contents=val(3, np.arange(N)))
        assert_slots(k, np.arange(THP_SLOT, THP_SLOT + N), count=0, cached=read_first,
                     free=not read_first)
        before = k.vmstat["pswpout"]
        apply(k, O.Pageout(0, 0, N))
        _settle(k)
        assert k.vmstat["pswpout"] - before == pswpout
        assert_pages(k, 0, np.arange(N), state=SWAPPED)


def test_evict_drops_every_written_back_swap_cache_folio():
    """evict is memcg reclaim with every mapped page mlocked: a written-back swap-cache folio
    nothing maps is freed (shrink_folio_list(), __remove_mapping()), so the next fault reads the
    slot back (one PSWPIN). The C reproducer asks memory.reclaim for anon only (swappiness=max,
    7.3 mm/vmscan.c user_proactive_reclaim()); asked for SwapCached's size, file pages could
    meet the target and the swap cache stayed (found by kernel-check: no pswpin)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 4, hugepage=False))
    apply(k, O.Write(0, 0, 4, value=5))
    apply(k, O.Pageout(0, 0, 4))
    _settle(k)
    apply(k, O.Write(0, 0, 1, value=9))
    apply(k, O.Pageout(0, 0, 4))
    _settle(k)
    apply(k, O.Evict())
    assert not observe(k).swap_cached.any()
    before = k.vmstat["pswpin"]
    apply(k, O.Fault(0, 1, write=False))
    assert k.vmstat["pswpin"] - before == 1


def test_pageout_without_a_swap_device_still_splits_a_thp():
    """shrink_folio_list() (7.3 mm/vmscan.c:1280-1297): folio_alloc_swap() fails with no device at
    all as with a full one, so a large folio is split (THP_SWPOUT_FALLBACK) and its pages stay."""
    for k in (LegacyKernel(), PmdSwapKernel()):
        _thp(k, 1024, value=6)
        apply(k, O.Swapoff())
        before = k.vmstat["thp_swpout_fallback"]
        apply(k, O.Pageout(0, 1024, N))
        assert k.vmstat["thp_swpout_fallback"] == before + 1
        assert k.mms[0].pmd_kind[2] == PMD_TABLE  # split: PTE-mapped now
        assert_pages(k, 0, np.arange(1024, 1024 + N), state=PRESENT)


# ---- MADV_WILLNEED and mincore (issue 11's new ops, legacy side) ---------------------------------
def test_mincore_answers_per_pte():
    """mincore_pte_range() (7.3 mm/mincore.c:162): a present THP is resident whole (:172), a
    swap PTE iff its slot is cached (mincore_swap(), :48), a none PTE is not; a page in no VMA
    ends the call with -ENOMEM and the bytes before it are written (do_mincore() per VMA)."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Mincore(0, 0, N))
    assert (k.output == 1).all()
    apply(k, O.Pageout(0, 0, N))  # the async disk keeps the folio cached under writeback
    apply(k, O.Dontneed(0, 0, 10))
    apply(k, O.Mincore(0, 0, N + 2), expect=-errno.ENOMEM)
    assert (k.output[:10] == 0).all() and (k.output[10:N] == 1).all()
    assert (k.output[N:] == MINCORE_UNSET).all()
    apply(k, O.Evict())
    apply(k, O.Mincore(0, 0, N))
    assert (k.output[10:] == 0).all()


def test_willneed_reads_each_swapped_slot_order0():
    """swapin_walk_pmd_entry() (7.3 mm/madvise.c:196): read_swap_cache_async() for each swap PTE
    of the range: one order-0 folio per uncached slot, mapped by nobody, so the PTEs stay swap
    entries; a present THP is skipped (no PTE table, :211)."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Willneed(0, 0, N))  # present THP: nothing to read
    assert k.vmstat["pswpin"] == 0
    apply(k, O.Pageout(0, 0, N))
    apply(k, O.Evict())
    apply(k, O.Willneed(0, 5, 20))
    assert_pages(k, 0, np.arange(N), state=SWAPPED)
    assert_slots(k, THP_SLOT + np.arange(5, 25), cached=True)
    assert_slots(k, THP_SLOT + np.arange(25, N), cached=False)
    assert {int(k.mem.order[k.swap.cache[THP_SLOT + i]]) for i in range(5, 25)} == {0}
    assert k.vmstat["pswpin"] == 20
    apply(k, O.Fault(0, 7, write=False))  # swapped in from the cache: no device read
    assert k.vmstat["pswpin"] == 20
    assert_pages(k, 0, [7], state=PRESENT, contents=val(1, [7]))


def test_cold_splits_a_partly_covered_thp_and_reclaims_nothing():
    """madvise_cold() (7.3 mm/madvise.c:604) is the MADV_PAGEOUT walk with pageout=false
    (madvise_cold_or_pageout_pte_range(), :362): a THP the range covers whole is only
    deactivated, one it covers in part is split (the zero-filled subpages go to the zero
    page, M3), one mapped shared is left alone, and nothing is unmapped or written."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.Write(0, 0, 300, value=1))  # pages 300.. stay zero-filled
    apply(k, O.Cold(0, 0, N))
    assert_pages(k, 0, np.arange(N), state=PRESENT, pmd_level=True)
    apply(k, O.Cold(0, 10, 20))
    assert k.mms[0].pmd_kind[0] == PMD_TABLE
    assert_pages(k, 0, np.arange(300), state=PRESENT, pmd_level=False, contents=val(1, np.arange(300)))
    assert_pages(k, 0, np.arange(300, N), state=PRESENT, contents=0)
    assert k.mem.nr_pages(int(k.mem.head[k.mms[0].pte_pfn[5]])) == 1
    assert k.vmstat["pswpout"] == 0
    assert_counters(k, 0, 300, 0)
    _thp(k, start=2 * N, value=2)
    apply(k, O.Fork(0))
    apply(k, O.Cold(0, 2 * N + 10, 20))  # folio_maybe_mapped_shared(): "Do not interfere"
    assert_pages(k, 0, 2 * N + np.arange(N), state=PRESENT, pmd_level=True)


def test_split_huge_pages_leaves_an_unmapped_swap_cache_thp_whole():
    """split_huge_pages_all() (7.3 mm/huge_memory.c:4719) -> split_folio() -> __folio_split():
    `anon_vma = folio_get_anon_vma(folio); if (!anon_vma) return -EBUSY` (:4197), NULL for a folio
    nothing maps (mm/rmap.c:602). A THP swapped out to a disk stays in the swap cache, whole, so
    the next fault maps all 512 pages (do_swap_page(): the folio is in the VMA and the PMD and
    swap_pte_batch() finds 512 entries) and the next pageout writes it as one THP. A mapped
    swap-cache THP is split. Found by kernel-check --generate (seed 1: 49, 673, 717)."""
    k = LegacyKernel()
    _thp(k, value=3)
    apply(k, O.Pageout(0, 0, N))
    _settle(k)
    apply(k, O.SplitThp())
    assert k.mem.nr_pages(k.swap.cached_head(k.mem, THP_SLOT)) == N
    apply(k, O.Fault(0, 5, write=False))
    assert_pages(k, 0, np.arange(N), state=PRESENT, contents=val(3, np.arange(N)))
    before = k.vmstat["thp_swpout"]
    apply(k, O.Pageout(0, 0, N))
    assert k.vmstat["thp_swpout"] == before  # clean in the swap cache: no I/O, but whole
    assert_pages(k, 0, np.arange(N), state=SWAPPED, swp_off=np.arange(THP_SLOT, THP_SLOT + N))
    # mapped (a read fault keeps it cached): split_thp splits it, the next fault maps one page
    k = LegacyKernel()
    _thp(k, value=3)
    apply(k, O.Pageout(0, 0, N))
    _settle(k)
    apply(k, O.Fault(0, 5, write=False))
    assert_pages(k, 0, np.arange(N), state=PRESENT)
    apply(k, O.SplitThp())
    assert k.mem.nr_pages(int(k.mem.head[k.mms[0].pte_pfn[5]])) == 1
    apply(k, O.Pageout(0, 0, N))
    _settle(k)
    apply(k, O.Fault(0, 7, write=False))
    assert_pages(k, 0, [7], state=PRESENT, contents=val(3, 7))
    assert_pages(k, 0, [6, 8], state=SWAPPED)


def test_zswap_takes_a_thp_so_a_disk_swap_cache_keeps_nothing():
    """swap_writeout() (7.3 mm/page_io.c:238): zswap_store() (mm/zswap.c:1488) takes the folio, a
    THP too, before any device write; it is clean and not under writeback, so shrink_folio_list()
    (mm/vmscan.c:1411-1431) drops it from a disk's swap cache at once, and the next fault swaps in
    one order-0 page (swapin_readahead(); zswap_load()). Without zswap the THP stays cached until
    evict and the fault maps it whole. zswap enabled after the pageout finds the THP still cached.
    Found by kernel-check --generate (seed 1: 295, 316, 590, 772)."""
    for zswap_first, write in ((True, False), (True, True), (False, False)):
        k = LegacyKernel()
        _thp(k, value=3)
        if zswap_first:
            apply(k, O.ZswapEnable())
        before = k.vmstat["thp_swpout"]
        apply(k, O.Pageout(0, 0, N))
        _settle(k)
        if not zswap_first:
            apply(k, O.ZswapEnable())
        assert k.vmstat["thp_swpout"] - before == (0 if zswap_first else 1)
        assert_slots(k, np.arange(THP_SLOT, THP_SLOT + N), count=1, cached=not zswap_first)
        apply(k, O.Fault(0, 5, write=write))
        whole = np.arange(N) if not zswap_first else np.array([5])
        assert_pages(k, 0, whole, state=PRESENT, contents=val(3, whole))
        assert_pages(k, 0, np.setdiff1d(np.arange(N), whole), state=SWAPPED)


# ---- kernel-check --generate seed 1: the last 14 of the 22 saved disagreements --------------------
def test_fork_gives_each_child_vma_its_own_anon_vma():
    """anon_vma_fork() (7.3 mm/rmap.c:382): parent VMAs that share one anon_vma get one each in
    the child, so the child's uffd registration over them merges nothing and a UFFDIO_MOVE into
    the range is -EINVAL, not within one VMA (sequences 277, 708, 915). The parent's merge."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.Mmap(0, 2 * N, N, hugepage=False))
    apply(k, O.Write(0, 0, 4, value=1))
    apply(k, O.Write(0, 2 * N, 4, value=2))
    apply(k, O.UffdRegister(0, 100, 100))
    apply(k, O.Fork(0))
    anon = [v.anon_vma for v in k.mms[1].vmas]
    assert len(set(anon)) == len(anon) and 0 not in anon
    apply(k, O.UffdRegister(1, 0, N))
    assert _vmas(k, 1)[:3] == [(0, 100), (100, 200), (200, N)]
    apply(k, O.UffdMove(1, 2 * N, 0, N), expect=-errno.EINVAL)
    apply(k, O.UffdRegister(0, 0, N))
    assert _vmas(k, 0)[0] == (0, N)


def test_evict_mlock_pass_merges_what_fork_left_apart():
    """The rig's evict mlocks and munlocks every VMA; mlock_fixup() (7.3 mm/mlock.c:467) goes
    through vma_modify_flags(), which merges compatible neighbours with sticky VM_SOFTDIRTY:
    a fork child's VMAs that differed only in the parent's uffd registration become one, and
    the page clear_refs had cleared reads soft-dirty (sequence 266)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=True))
    apply(k, O.UffdRegister(0, 0, N))
    apply(k, O.ClearRefs(0))
    apply(k, O.Mmap(0, N, N, hugepage=True))
    apply(k, O.Fork(0))
    apply(k, O.Write(1, N, 4, value=3))
    assert _vmas(k, 1) == [(0, N), (N, 2 * N)]
    assert_pages(k, 1, np.arange(N), soft_dirty=False)
    apply(k, O.Evict())
    assert _vmas(k, 1) == [(0, 2 * N)]
    assert_pages(k, 1, np.arange(N), soft_dirty=True)


def test_change_protection_batch_takes_a_later_ptes_dirty_and_soft_dirty_bit():
    """change_present_ptes() on a batch of one large folio: modify_prot_start_ptes()
    (include/linux/pgtable.h:1669) ORs a later PTE's dirty bit into the first with pte_mkdirty(),
    which on x86 sets _PAGE_SOFT_DIRTY too, and writes that PTE to the whole batch: after
    clear_refs, UFFDIO_WRITEPROTECT of a dirty PTE-mapped THP makes it soft-dirty again
    (sequence 915). A batch whose only dirty PTE is its first becomes dirty throughout and keeps
    its soft-dirty bit."""
    for written in (N, 1):
        k = LegacyKernel()
        apply(k, O.Mmap(0, 0, N, hugepage=True))
        apply(k, O.Write(0, 0, written, value=5))
        apply(k, O.Mprotect(0, 500, 12, prot=O.PROT_READ))  # splits the PMD, dirty PTEs
        mm = k.mms[0]
        if written == 1:
            mm.pte_dirty[1:N] = False  # the read-fault THP's other pages, as reclaim sees them
        apply(k, O.ClearRefs(0))
        assert_pages(k, 0, np.arange(500), soft_dirty=False)
        apply(k, O.UffdRegister(0, 0, 500))
        apply(k, O.UffdWp(0, 0, 500, enable=True))
        want = written == N
        assert_pages(k, 0, np.arange(500), soft_dirty=want, uffd_wp=True)
        assert mm.pte_dirty[:500].all()


def test_evict_splits_a_partially_mapped_thp_without_the_zero_page():
    """Evict's reclaim splits a partially mapped THP while its VMA is VM_LOCKED, so
    try_to_map_unused_to_zeropage() (7.3 mm/migrate.c:313) refuses every zero-filled subpage:
    they stay mapped and counted, and split_huge_pages later finds nothing to split; the
    unmapped head is freed without a write (sequences 493, 579, 625, 636, 772, 866). Without
    the evict, split_huge_pages maps the zero-filled subpages to the zero page (M3)."""
    for evict in (True, False):
        k = LegacyKernel()
        apply(k, O.Mmap(0, 0, N, hugepage=True))
        apply(k, O.Write(0, 0, 1, value=6))
        apply(k, O.Write(0, 300, 1, value=7))
        apply(k, O.Dontneed(0, 0, 1))
        head = int(k.mem.head[k.mms[0].pte_pfn[300]])
        assert k.mem.nr_pages(head) == N
        pswpout = k.vmstat["pswpout"]
        if evict:
            apply(k, O.Evict())
            assert k.mem.nr_pages(int(k.mem.head[k.mms[0].pte_pfn[300]])) == 1
            assert k.vmstat["pswpout"] == pswpout
        apply(k, O.SplitThp())
        rss = int(observe(k).procs[0].rss_anon)
        assert rss == (N - 1 if evict else 1)
        assert_pages(k, 0, [300], state=PRESENT, contents=val(7, 300))


def test_mremap_copy_merges_with_its_own_source_vma():
    """copy_vma() (7.3 mm/vma.c, `can_self_merge`): an unfaulted VMA's copy landing right after
    the source merges with it and with a new neighbour before unmap_source_vma() cuts the old
    range out, so what is left of the source has the sticky VM_SOFTDIRTY (sequence 408)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 2 * N, hugepage=False))
    apply(k, O.ClearRefs(0))
    apply(k, O.Mmap(0, 3 * N, N, hugepage=False))
    apply(k, O.MremapMove(0, N, N, 2 * N))  # the source's tail, so its head is not adjacent
    assert _vmas(k) == [(0, N), (2 * N, 4 * N)]
    assert_pages(k, 0, np.arange(N), soft_dirty=True)


def test_uffd_register_skips_a_vma_registered_already():
    """userfaultfd_register_range() (7.3 mm/userfaultfd.c:2342): a VMA already registered into
    this userfaultfd is skipped, so registering part of it again splits neither the VMA nor its
    PMD-mapped THP (kernel-check --generate seed 1: 212, 516). A VMA not yet registered is
    split at the range's ends, and the THP with it."""
    k = LegacyKernel()
    _thp(k, value=8)
    apply(k, O.UffdRegister(0, 0, N))
    apply(k, O.UffdRegister(0, 100, 50))
    assert _vmas(k) == [(0, N)]
    assert k.mms[0].pmd_kind[0] != PMD_TABLE
    apply(k, O.Mmap(0, 2 * N, N, hugepage=True))
    apply(k, O.Write(0, 2 * N, N, value=9))
    apply(k, O.UffdRegister(0, 2 * N + 100, 50))
    assert _vmas(k)[1:] == [(2 * N, 2 * N + 100), (2 * N + 100, 2 * N + 150), (2 * N + 150, 3 * N)]
    assert k.mms[0].pmd_kind[2] == PMD_TABLE


# ---- kernel-check --generate seed 1: the last four open disagreements --------------------------
def test_zap_leaves_an_anon_folio_clean_so_madv_free_still_discards_it():
    """zap_present_folio_ptes() (7.3 mm/memory.c:1790) clears an anon folio's PTEs without
    folio_mark_dirty(): only a file folio takes the PTE's dirty bit (:1780). The child's
    MADV_FREE of a page still shared with the parent clears only its own PTE's dirty bit and
    marks the (clean) folio lazyfree; the parent's MADV_DONTNEED of its dirty PTE leaves the
    folio clean, so the child's MADV_PAGEOUT discards the page without a write (sequence 467)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.Write(0, 0, 8, value=3))
    apply(k, O.Fork(0))
    apply(k, O.Free(1, 0, 8))
    apply(k, O.Dontneed(0, 0, 8))
    pswpout = k.vmstat["pswpout"]
    apply(k, O.Pageout(1, 0, 8))
    assert_pages(k, 1, np.arange(8), state=NONE)
    assert k.vmstat["pswpout"] == pswpout
    assert_counters(k, 1, 0, 0)


def _partly_mapped_swap_cache_thp() -> LegacyKernel:
    """A THP swapped out whole to a disk: it stays in the swap cache after the write, which
    ends here as on the real disk (kernel-check ends the model's writeback after every op).
    [400, 512) is unmapped, so no fault can map the folio whole again, and pages 100..109 are
    written back in: ten dirty PTEs on a folio the swap cache keeps (its other slots are still
    referenced)."""
    k = LegacyKernel()
    _thp(k)
    apply(k, O.Pageout(0, 0, N))
    head = int(k.mem.head[k.swap.cache[THP_SLOT]])
    k.swap.end_writeback(k.mem, head)
    apply(k, O.Munmap(0, 400, N - 400))
    apply(k, O.Write(0, 100, 10, value=4))
    assert int(k.mem.head[k.mms[0].pte_pfn[100]]) == head
    assert k.mem.nr_pages(head) == N and k.mem.in_swapcache(head)
    return k


def test_split_takes_the_ptes_dirty_bit_and_evict_writes_the_pieces_out():
    """MADV_PAGEOUT splits the partly mapped swap-cache THP (madvise_cold_or_pageout_pte_range(),
    mm/madvise.c). try_to_migrate_one() (7.3 mm/rmap.c:2650) moves each PTE's dirty bit to the
    folio, so every piece is dirty: the ten mapped ones are written now, and reclaim during evict
    writes the 390 unmapped ones whose slots the swap PTEs still reference; the 112 whose slots
    the munmap freed are dropped by the split without a write (sequence 144: the kernel wrote
    343 pieces at evict, the model none)."""
    k = _partly_mapped_swap_cache_thp()
    pswpout = k.vmstat["pswpout"]
    apply(k, O.Pageout(0, 0, 400))
    assert k.vmstat["pswpout"] == pswpout + 10
    apply(k, O.Evict())
    assert k.vmstat["pswpout"] == pswpout + 400
    assert_pages(k, 0, np.arange(400), state=SWAPPED)
    assert_slots(k, THP_SLOT + np.arange(400), count=1, cached=False)
    apply(k, O.Fault(0, 105, write=False))
    apply(k, O.Fault(0, 200, write=False))
    assert_pages(k, 0, [105, 200], state=PRESENT, contents=[val(4, 105), val(1, 200)])


def test_a_thp_partly_unmapped_in_the_swap_cache_is_not_queued_for_deferred_split():
    """deferred_split_folio() (7.3 mm/huge_memory.c:4569) returns early for a folio in the swap
    cache, and reclaim adds a THP to the swap cache before try_to_unmap() takes its PTEs off one
    by one: the swapped-out THP is never flagged partially mapped, so evict's reclaim (the
    deferred-split shrinker, shrink_folio_list()) leaves it whole and writes nothing (the real
    kernel: pswpout +0 at evict when no MADV_PAGEOUT split it first). A THP that loses a page
    outside the swap cache is flagged, and evict splits it."""
    k = _partly_mapped_swap_cache_thp()
    head = int(k.mem.head[k.mms[0].pte_pfn[100]])
    assert not k.mem.partially_mapped[head]
    pswpout = k.vmstat["pswpout"]
    apply(k, O.Evict())
    assert k.vmstat["pswpout"] == pswpout
    assert k.mem.head[head] == head and k.mem.nr_pages(head) == N
    apply(k, O.Mmap(0, 2 * N, N, hugepage=True))
    apply(k, O.Write(0, 2 * N, N, value=5))
    apply(k, O.Dontneed(0, 2 * N, 1))
    other = int(k.mem.head[k.mms[0].pte_pfn[2 * N + 1]])
    assert k.mem.partially_mapped[other]
    apply(k, O.Evict())
    assert k.mem.nr_pages(int(k.mem.head[k.mms[0].pte_pfn[2 * N + 1]])) == 1


def test_a_write_to_a_read_only_vma_gives_it_no_anon_vma():
    """access_error() (7.3 arch/x86/mm/fault.c:1058, :1338) sends SIGSEGV for a write to a VMA
    without VM_WRITE before handle_mm_fault(), so no anon_vma_prepare(): the read fault after it
    maps the zero page, still without an anon_vma, and fork copies none of the VMA's page
    tables (vma_needs_copy(), mm/memory.c:1564). The child faults the zero page in itself
    (sequences 237, 355: a zero-page PTE in the model's child only, and a merge the kernel did
    not make, so an mremap over both VMAs gave 0 where the kernel gave -EFAULT)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.Mprotect(0, 0, N, prot=O.PROT_READ))
    assert k.apply(O.Write(0, 0, 1, value=6)) == O.SIGSEGV
    apply(k, O.Fault(0, 5, write=False))
    assert [v.anon_vma for v in k.mms[0].vmas] == [0]
    apply(k, O.Fork(0))
    assert_pages(k, 0, [5], state=PRESENT, contents=0)
    assert_pages(k, 1, [5], state=NONE)


def test_evict_keeps_a_zswap_readahead_folio_nothing_mapped():
    """Measured on the 7.3 kernel (sequence 405), reason not found in the source: MADV_WILLNEED
    reads zswap-held slots into order-0 folios that zswap_load() dirties (mm/zswap.c:1639);
    while nothing maps them they stay in the swap cache through evict. A folio a fault read
    from zswap and an exit unmapped again is written out (to zswap) and freed by evict."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 64, hugepage=False))
    apply(k, O.ZswapEnable())
    apply(k, O.Write(0, 0, 64, value=7))
    apply(k, O.Pageout(0, 0, 64))
    apply(k, O.Willneed(0, 0, 8))
    apply(k, O.Fork(0))
    apply(k, O.Fault(1, 20, write=False))
    apply(k, O.Exit(1))
    apply(k, O.Mincore(0, 0, 64))
    assert k.output[:8].all() and k.output[20] and not k.output[8:20].any()
    for _ in range(2):
        apply(k, O.Evict())
        apply(k, O.Mincore(0, 0, 64))
        assert k.output[:8].all() and not k.output[8:].any()
    for p in (3, 20):
        apply(k, O.Fault(0, p, write=False))
    assert_pages(k, 0, [3, 20], state=PRESENT, contents=[val(7, 3), val(7, 20)])


def test_a_write_that_traps_on_uffd_wp_gives_the_vma_no_anon_vma():
    """A write fault on a uffd-wp PTE (here the zero page's) ends in handle_userfault() from
    do_wp_page() before anything prepares an anon_vma, so fork copies none of the VMA's page
    tables and the child has no PTE where the parent has the zero page (sequence 589)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, N, hugepage=False))
    apply(k, O.UffdRegister(0, 0, N))
    apply(k, O.Fault(0, 5, write=False))
    apply(k, O.UffdWp(0, 0, N, enable=True))
    assert k.apply(O.Fault(0, 5, write=True)) == O.UFFD_WP_TRAP
    assert [v.anon_vma for v in k.mms[0].vmas] == [0]
    apply(k, O.Fork(0))
    assert_pages(k, 0, [5], state=PRESENT, contents=0)
    assert_pages(k, 1, [5], state=NONE)


def test_a_redirtied_lazyfree_folio_stays_dirty_so_a_shared_madv_free_skips_it():
    """try_to_unmap_one() marks the folio dirty from the cleared PTE (mm/rmap.c:2344) before
    ttu_anon_lazyfree_folio() sees it redirtied and makes it swap-backed again. The flag stays,
    so an MADV_FREE while fork shares the folio skips it (mm/madvise.c:753-764) and the child's
    pageout after COW swaps it out instead of keeping it as lazyfree again (sequence 915)."""
    k = LegacyKernel()
    apply(k, O.Mmap(0, 0, 4, hugepage=False))
    apply(k, O.Write(0, 0, 4, value=1))
    apply(k, O.Free(0, 0, 4))
    apply(k, O.Write(0, 0, 4, value=2))
    apply(k, O.Pageout(0, 0, 4))
    assert_pages(k, 0, range(4), state=PRESENT)
    pfn = int(k.mms[0].pte_pfn[0])
    assert k.mem.dirty[pfn] and not k.mem.lazyfree[pfn]
    apply(k, O.Fork(0))
    apply(k, O.Free(0, 0, 4))
    assert not k.mem.lazyfree[pfn]
    apply(k, O.Write(0, 0, 4, value=3))
    apply(k, O.Write(1, 0, 4, value=4))
    before = k.vmstat.get("pswpout", 0)
    apply(k, O.Pageout(1, 0, 4))
    assert k.vmstat["pswpout"] - before == 4
    assert_pages(k, 1, range(4), state=SWAPPED)
