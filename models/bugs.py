"""The bug catalogue: deliberately broken variants of the PMD-swap kernel, one kernel mistake each.

Each bug is a small subclass of `PmdSwapKernel` that overrides exactly one method, named after the
kernel function it breaks, with the buggy variant. With no bug the model is the correct
`PmdSwapKernel`; a bug switched off costs nothing. Every class docstring gives: the kernel function,
the mistake, where it comes from in the behaviour reference docs/kernel-behaviour.md (section 4 item N,
section 2, ...)
and the symptom the differential oracle (fuzz/oracle.py) reports. A few are documented BLIND SPOTS:
the mistake changes kernel state that the oracle cannot see through observe(); the docstring says why
and what would make it visible. tests/test_bugs.py checks that every other bug is found, minimised,
and that the minimised trace is clean without the bug.

How the variants are written, so a reader can trust "one mistake each":
  * where the mistake is a missing or wrong final assignment, the override calls the correct method
    and then applies the mistake to the state it just built (e.g. drops the soft-dirty bit it set);
    the end state is exactly what the buggy kernel function leaves behind;
  * where the mistake sits inside the control flow (`do_huge_pmd_swap_page`, `unuse_pmd`, ...), the
    override is a copy of the correct body from models/pmd_swap.py with the mistake marked `# BUG:`.
    The two long bodies are shared copies (`_swapin` and `_unuse`) switched by a `mistake` name.
    `COPIED_FROM` records a hash of each copied PmdSwapKernel method; tests/test_bugs.py fails when
    pmd_swap.py changes under a copy, so the copies are re-synced instead of silently drifting.

Registry: `BUGS` (name -> kernel class) and `make_pmd_kernel(bug)`.
"""

from __future__ import annotations

import hashlib
import inspect

import numpy as np

from . import ops as O
from .mm import MM, PMD_HUGE, PMD_NONE, PMD_SWAP, ModelBug, Vma, region_slice, regions_of
from .ops import HPAGE_PMD_NR
from .pmd_swap import PmdSwapKernel

__all__ = ["BUGS", "BLIND_SPOTS", "COPIED_FROM", "make_pmd_kernel", "copied_source_hash"]

N = HPAGE_PMD_NR


def copied_source_hash(fn) -> str:
    """Hash of a function's source (whitespace-normalised): detects edits under a copied body."""
    src = " ".join(inspect.getsource(fn).split())
    return hashlib.sha256(src.encode()).hexdigest()[:16]


# PmdSwapKernel methods whose body is copied below, with the hash of the version copied.
COPIED_FROM = {
    "do_huge_pmd_swap_page": "56669f03be1d2b12",
    "unuse_pmd": "2d1abdbf96a21cb3",
    "zap_huge_pmd": "eea65c9ddb1abe14",
    "change_huge_pmd": "9a007511a01481a8",
    "madvise_free_huge_pmd": "ae6473033f62cba9",
    "move_huge_pmd": "6db27510d84802d1",
    "move_pages_huge_pmd": "1a3cf01471b2bfba",
    "clear_soft_dirty_pmd": "6a27ee6856b70a15",
    "pagemap_pmd_range": "c76303cb8233bf22",
    "swapin_walk_huge_pmd": "a1f70f9c4d96b09d",
    "unmap_page_range": "22160124a9d0a3ee",
}


# =================================================================================================
# shared buggy copies of the two long bodies
# =================================================================================================
def _swapin(k: PmdSwapKernel, mm: MM, vma: Vma, r: int, page: int, write: bool, fail_alloc: bool,
            mistake: str) -> int | None:
    """Copy of PmdSwapKernel.do_huge_pmd_swap_page with one `mistake` switched on (BUG lines)."""
    mem, sw = k.mem, k.swap
    base = int(mm.pmd_swp_off[r])
    slots = np.arange(base, base + N)
    if k.zswap_may_hold(base) and mistake != "ignore_zswap":  # BUG (ignore_zswap)
        return k._swapin_fallback(mm, r)
    head = k._pmd_folio_in_swapcache(base)
    if head is None:
        if mistake != "mixed_cache":
            return k._swapin_fallback(mm, r)
        # BUG: a mixed or split cache is not a reason to fall back: read all 512 slots from the
        # device into a new folio that bypasses the swap cache (the old skip-swapcache read)
        head = mem.alloc_folio(9)
        mem.data[head:head + N] = sw.data[slots]
        k.vmstat["pswpin"] += N
    elif head < 0:
        if fail_alloc:
            if mistake == "oom":
                return O.SIGBUS  # BUG: VM_FAULT_OOM instead of VM_FAULT_FALLBACK
            return k._swapin_fallback(mm, r)
        head = mem.alloc_folio(9)
        sw.add_to_swap_cache(mem, head, base)
        if mistake == "slot_order":
            # BUG: the read starts at the faulting subpage's slot (the entry of vmf->address, not of
            # haddr) and wraps round the cluster: subpage i gets slot base + (i + idx) % 512
            idx = page - r * N
            mem.data[head:head + N] = sw.data[base + (np.arange(N) + idx) % N]
            k.vmstat["pswpin"] += N
        else:
            k.swap_read_folio(head)
    exclusive = bool(mm.pmd_swp_excl[r])
    if exclusive and mem.writeback[head] and sw.sync:
        exclusive = False
    sd, uw = bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r])
    rwp_restore = uw and vma.uffd_rwp
    excl_ok = exclusive or mistake == "ignore_exclusive"  # BUG (ignore_exclusive): no exclusivity check
    uw_ok = not (vma.uffd_wp and uw) or mistake == "ignore_uffd_wp"  # BUG (ignore_uffd_wp)
    sd_ok = not (not vma.softdirty and not sd) or mistake == "no_sd_wp"  # BUG (no_sd_wp)
    writable = excl_ok and not rwp_restore and bool(vma.prot & 2) and uw_ok and sd_ok
    free_cache = sw.sync or (write and exclusive)
    dirty = write and writable
    mm.clear_pmd(r, PMD_HUGE)
    mm.pmd_pfn[r] = head
    mm.pmd_write[r] = writable
    mm.pmd_dirty[r] = dirty
    mm.pmd_sd[r] = sd or dirty
    mm.pmd_uw[r] = uw
    mem.entire_mapcount[head] += 1
    if exclusive:
        mem.anon_exclusive[head:head + N] = True
    mm.anonpages += N
    mm.swapents -= N
    if mistake != "no_put":
        sw.put(slots)  # BUG (no_put): the 512 slots are never put
    if free_cache:
        k.folio_free_swap(head)
    k.vmstat["thp_swpin_pmd"] += 1
    k.events.append(("pmd_swapin", mm.pid, r, base))
    if write and not writable and not rwp_restore:
        if vma.uffd_wp and uw:
            return O.UFFD_WP_TRAP
        if k.do_huge_pmd_wp_page(mm, vma, r, page):
            return O.OK
        return None
    return O.OK


def _unuse(k: PmdSwapKernel, mm: MM, vma: Vma, r: int, fail_alloc: bool, mistake: str) -> int:
    """Copy of PmdSwapKernel.unuse_pmd with one `mistake` switched on (BUG lines)."""
    mem, sw = k.mem, k.swap
    base = int(mm.pmd_swp_off[r])
    head = k._pmd_folio_in_swapcache(base)
    if head is None and mistake == "mixed_cache":
        head = -1  # BUG: a split or mixed cache is read whole like an empty one
    zswap = k.zswap_may_hold(base) and mistake != "ignore_zswap"  # BUG (ignore_zswap)
    if head is None or (head < 0 and (fail_alloc or zswap)):
        k.split_huge_pmd_locked(mm, r)
        return 0
    if head < 0:
        head = mem.alloc_folio(9)
        sw.add_to_swap_cache(mem, head, base)
        if mistake == "reversed":
            # BUG: the read loop fills folio page i from slot base + 511 - i
            mem.data[head:head + N] = sw.data[base + N - 1 - np.arange(N)]
            k.vmstat["pswpin"] += N
        else:
            k.swap_read_folio(head)
    if mem.writeback[head]:
        sw.end_writeback(mem, head)
    excl = bool(mm.pmd_swp_excl[r])
    sd, uw = bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r])
    mm.clear_pmd(r, PMD_HUGE)
    mm.pmd_pfn[r] = head
    mm.pmd_sd[r] = sd
    mm.pmd_uw[r] = uw and mistake != "drop_uffd_wp"  # BUG (drop_uffd_wp): UW not restored
    if mistake == "writable":
        mm.pmd_write[r] = bool(vma.prot & 2)  # BUG: maybe_pmd_mkwrite(), whatever EXCL says
    mem.entire_mapcount[head] += 1
    if excl:
        mem.anon_exclusive[head:head + N] = True
    mm.swapents -= N
    mm.anonpages += N
    sw.put(np.arange(base, base + N))
    k.folio_free_swap(head)
    k.events.append(("pmd_unuse", mm.pid, r, base))
    return 0


def _was_swap_pmd(mm: MM, r: int) -> bool:
    return mm.pmd_kind[r] == PMD_SWAP


def _willneed(k: PmdSwapKernel, mm: MM, r: int, a: int, b: int, mistake: str) -> bool:
    """Copy of PmdSwapKernel.swapin_walk_huge_pmd with one `mistake` switched on (BUG lines)."""
    if mm.pmd_kind[r] != PMD_SWAP:
        return True
    base = int(mm.pmd_swp_off[r])
    head = k._pmd_folio_in_swapcache(base)
    if head is None and mistake == "mixed_cache":
        head = -1  # BUG: the v3 rule's "any other state splits" missed
    zswap = k.zswap_may_hold(base) and mistake != "ignore_zswap"  # BUG (ignore_zswap)
    if b - a != N or head is None or zswap:
        k.split_huge_pmd_locked(mm, r)
        return False
    if head < 0:
        head = k.mem.alloc_folio(9)
        k.swap.add_to_swap_cache(k.mem, head, base)
        if mistake != "not_read":  # BUG (not_read): no swap_read_folio(head)
            k.swap_read_folio(head)
        k.events.append(("pmd_readahead", mm.pid, r, base))
    return True


# =================================================================================================
# swap-out: set_pmd_swap_entry() / try_to_unmap_one()
# =================================================================================================
class SwapoutDropsSoftDirty(PmdSwapKernel):
    """set_pmd_swap_entry() (mm/huge_memory.c, v2 15/16): the new swap PMD is built from the swap
    entry alone, without pmd_swp_mksoft_dirty() when the present PMD was soft-dirty.
    From: kernel-behaviour.md 1.1 (install keeps SD/UW/EXCL), 4 item 1/9 (SD not carried).
    Symptom: a page written since clear_refs reads back not soft-dirty in pagemap once swapped out
    (oracle rule soft-dirty, at the pageout)."""

    def set_pmd_swap_entry(self, mm: MM, r: int, head: int) -> bool:
        ok = super().set_pmd_swap_entry(mm, r, head)
        mm.pmd_sd[r] = False  # BUG: pmd_swp_mksoft_dirty() missing
        return ok


class SwapoutDropsUffdWp(PmdSwapKernel):
    """set_pmd_swap_entry(): the new swap PMD lacks pmd_swp_mkuffd_wp() for a uffd-wp present PMD.
    From: kernel-behaviour.md 1.1, 4 item 1. Symptom: pagemap bit 57 clear on the swapped pages where
    legacy's PTE swap entries keep it; a later write is not trapped (rule uffd-wp, at the pageout)."""

    def set_pmd_swap_entry(self, mm: MM, r: int, head: int) -> bool:
        ok = super().set_pmd_swap_entry(mm, r, head)
        mm.pmd_uw[r] = False  # BUG: pmd_swp_mkuffd_wp() missing
        return ok


class SwapoutDropsRwp(PmdSwapKernel):
    """set_pmd_swap_entry(): the uffd bit is carried onto the swap PMD only for a uffd-wp VMA
    (`if (userfaultfd_wp(vma) && pmd_uffd(pmdval)) pmdswp = pmd_swp_mkuffd(pmdswp)`): written
    before 7.3's RWP reused the bit, so "RWP lost across swap-out of a PMD". Legacy's
    try_to_unmap_one() keeps it on all 512 PTE swap entries (pte_swp_mkuffd() when pte_uffd()).
    Symptom: pagemap bit 57 clear on the swapped-out pages of an RWP-protected THP where legacy
    has it (rule uffd-wp, at the pageout); a later swap-in is not PAGE_NONE, the access is never
    seen by the tracker."""

    def set_pmd_swap_entry(self, mm: MM, r: int, head: int) -> bool:
        vma = mm.find_vma(r * N)
        ok = super().set_pmd_swap_entry(mm, r, head)
        if vma is not None and not vma.uffd_wp:
            mm.pmd_uw[r] = False  # BUG: the bit kept only under userfaultfd_wp(vma)
        return ok


class SwapoutKeepsFolioExclusive(PmdSwapKernel):
    """set_pmd_swap_entry(): the exclusive mark is copied onto the swap PMD but
    folio_try_share_anon_rmap_pmd() is never called, so the swap-cache folio stays PageAnonExclusive
    while the entry (and after fork, two entries) reference it.
    From: kernel-behaviour.md 1.1 ("drop the exclusive mark"), 4 item 5/20 (exclusive on a shared folio).
    Symptom: after fork, a process that faults the cached folio back in and writes reuses it
    (do_huge_pmd_wp_page sees PageAnonExclusive) and the write shows up in the other process
    (rule contents)."""

    def set_pmd_swap_entry(self, mm: MM, r: int, head: int) -> bool:
        was = self.mem.anon_exclusive[head:head + N].copy()
        ok = super().set_pmd_swap_entry(mm, r, head)
        self.mem.anon_exclusive[head:head + N] = was  # BUG: the folio keeps PageAnonExclusive
        return ok


class SwapoutWrongCounters(PmdSwapKernel):
    """set_pmd_swap_entry(): MM_SWAPENTS is increased by 1 (one entry) instead of HPAGE_PMD_NR,
    copying the add_mm_counter() of the migration-entry path.
    From: kernel-behaviour.md 1.1 counters row, 4 item 4. Symptom: VmSwap off by 511 pages; "Bad
    rss-counter state" at exit (rule rss / invariant rss_counters_match, at the pageout)."""

    def set_pmd_swap_entry(self, mm: MM, r: int, head: int) -> bool:
        ok = super().set_pmd_swap_entry(mm, r, head)
        mm.swapents -= N - 1  # BUG: add_mm_counter(mm, MM_SWAPENTS, 1)
        return ok


# =================================================================================================
# swap-in: do_huge_pmd_swap_page()
# =================================================================================================
class SwapinIgnoresUffdWp(PmdSwapKernel):
    """do_huge_pmd_swap_page() (v1 11/13): writable = EXCL && VM_WRITE, without the !uffd-wp term.
    From: kernel-behaviour.md 1.2 PMD step 3, 1.10, 4 item 7 (second half).
    Symptom: a write to a uffd-wp protected swapped-out THP is not trapped: legacy returns the uffd
    trap, the PMD model completes the write (rule results, then contents)."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "ignore_uffd_wp")


class SwapinNoSoftDirtyWp(PmdSwapKernel):
    """do_huge_pmd_swap_page(): maps writable without the soft-dirty write-protect check of the PTE
    path (pte_needs_soft_dirty_wp: VMA without VM_SOFTDIRTY and an entry without SD).
    From: kernel-behaviour.md 1.2 PMD step 3 [I], 4 item 7.
    The kernel symptom is that after clear_refs a write through the writable PMD is never recorded
    (the CPU sets the dirty bit, not soft-dirty). The model's store path sets soft-dirty on every
    write, so the contents and soft-dirty rules cannot see it; the invariant
    writable_implies_soft_dirty (a tracked writable entry is soft-dirty) catches the writable PMD
    as soon as it is installed."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "no_sd_wp")


class SwapinIgnoresExclusive(PmdSwapKernel):
    """do_huge_pmd_swap_page(): writable = VM_WRITE && !uffd-wp, without the EXCL term, so a swap PMD
    shared after fork is mapped writable (the whole shared THP reused instead of COW).
    From: kernel-behaviour.md 1.2 PMD steps 3 and 6, 4 item 20. Symptom: a write after fork shows up in the
    other process (rule contents), and a writable PMD maps a folio that is not anon-exclusive
    (invariant writable_implies_exclusive)."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "ignore_exclusive")


class SwapinMixedCacheReadsDevice(PmdSwapKernel):
    """do_huge_pmd_swap_page(): ignores a mixed or split swap cache (v3 rule: whole-PMD read only when
    no slot is cached) and reads all 512 slots from the device into a new folio, bypassing the small
    cached folios.
    From: kernel-behaviour.md 1.2 PMD step 1 [R9], 1.16, 4 item 11 (Lance's mixed-cache case).
    Symptom: a whole-2 MiB swap-in over a mixed cache (rule v3-cache-rule: the pmd_swapin tolerance
    holds only from an empty cache or the one PMD-sized folio). The generator reaches the mixed
    state with `mixed_cache_cycle` (page out, fork, evict, the child reads the THP back, split_thp,
    the child pages part of it out). The contents stay right in the model: a slot a swap PMD
    references is never written in place (COW), reclaim always starts writeback on a dirty
    swap-cache folio, and a folio under writeback cannot be split (folio_check_splittable():
    -EBUSY, 7.3 mm/huge_memory.c:3955), so the device copy equals the cached pages; the kernel's
    stale-data symptom needs a cached folio newer than the device, which this model never has."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "mixed_cache")


class SwapinWrongSlotOrder(PmdSwapKernel):
    """do_huge_pmd_swap_page() / swapin_alloc_pmd_folio(): the PMD-order read starts at the faulting
    subpage's entry (vmf->address) instead of the PMD-aligned one (haddr) and wraps round the cluster,
    so subpage i holds slot base + (i + idx) % 512.
    From: kernel-behaviour.md 4 item 2 (wrong sub-slot offset, unaligned address), section 6 (Huang 2018:
    a THP-sized chunk with values from another offset). Symptom: page contents permuted after a
    fault at a subpage other than 0 of an evicted swap PMD (rule contents)."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "slot_order")


class SwapinForgetsPutSlots(PmdSwapKernel):
    """do_huge_pmd_swap_page(): maps the folio but never calls folio_put_swap() for the 512 slots.
    From: kernel-behaviour.md 1.2 PMD step 4 ("all 512 slots put"), 4 item 3/23 (count leak).
    Symptom: slot counts stay at 1 with no entry referencing them; /proc/swaps Used never returns to
    baseline (invariant swap_count_matches_entries, at the fault)."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "no_put")


class SwapinAllocFailureOom(PmdSwapKernel):
    """do_huge_pmd_swap_page(): a failed PMD-order folio allocation (or memcg charge) returns
    VM_FAULT_OOM instead of VM_FAULT_FALLBACK (split the entry, PTE-level swap-in).
    From: kernel-behaviour.md 1.2 PMD step 5, 2 item 8, 4 item 19. Symptom: the access gets SIGBUS/OOM in
    the PMD model where legacy's order-0 swap-in succeeds (rule results)."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "oom")


class SwapinIgnoresZswap(PmdSwapKernel):
    """do_huge_pmd_swap_page() without v7's zswap range rule: an entry some of whose slots zswap
    holds is swapped in with one PMD-order read.
    From: v7 "ranges that have zswap entries are split" (docs/models.md, zswap rows); issue 11
    item 4 ("the zswap range rule ignored"). Symptom: zswap_load() warns on the large folio and
    fails it (7.3 mm/zswap.c:1612), the fault ends in SIGBUS where legacy's order-0 swap-in reads
    zswap (the model raises at the read: swap_read_folio())."""

    def do_huge_pmd_swap_page(self, mm, vma, r, page, write, fail_alloc):
        return _swapin(self, mm, vma, r, page, write, fail_alloc, "ignore_zswap")


class WillneedIgnoresZswap(PmdSwapKernel):
    """MADV_WILLNEED on a swap PMD without v7's zswap range rule: an entry some of whose slots
    zswap holds gets one PMD-order read.
    From: as swapin_ignores_zswap, for the converted MADV_WILLNEED walker. Symptom: as there, at
    the hint instead of the fault."""

    def swapin_walk_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        return _willneed(self, mm, r, a, b, "ignore_zswap")


class UnuseIgnoresZswap(PmdSwapKernel):
    """unuse_pmd() without v7's zswap range rule: swapoff reads an entry some of whose slots zswap
    holds with one PMD-order read.
    From: as swapin_ignores_zswap, for swapoff. Symptom: as there, at swapoff."""

    def unuse_pmd(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> int:
        return _unuse(self, mm, vma, r, fail_alloc, "ignore_zswap")


# =================================================================================================
# fork: copy_huge_non_present_pmd()
# =================================================================================================
class ForkDupsBaseSlotOnly(PmdSwapKernel):
    """copy_huge_non_present_pmd(): swap_dup_entry_direct(entry) as for one PTE: only the base slot's
    count is raised, not all 512.
    From: kernel-behaviour.md 1.3 counts row, 4 item 3. Symptom: slots base+1.. have count 1 with two
    references; the first put of the two underflows (invariant swap_count_matches_entries at the
    fork)."""

    def copy_huge_non_present_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        super().copy_huge_non_present_pmd(dst, src, r, dst_vma)
        base = int(src.pmd_swp_off[r])
        self.swap.count[base + 1:base + N] -= 1  # BUG: only the first slot was duplicated


class ForkLeavesParentExclusive(PmdSwapKernel):
    """copy_huge_non_present_pmd(): the parent's swap PMD keeps its exclusive bit
    (pmd_swp_clear_exclusive() missing; LEGACY's "Mark the swap entry as shared").
    From: kernel-behaviour.md 1.3 parent row, 4 item 5. Symptom: invariant EX (an exclusive entry on slots
    of count 2) at the fork; later the parent maps the THP writable and its writes leak into the
    child's copy."""

    def copy_huge_non_present_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        was = bool(src.pmd_swp_excl[r])
        super().copy_huge_non_present_pmd(dst, src, r, dst_vma)
        src.pmd_swp_excl[r] = was  # BUG: the parent's entry is not marked shared


class ForkChildKeepsUffdWp(PmdSwapKernel):
    """copy_huge_non_present_pmd(): the child's swap PMD keeps uffd-wp although the child VMA is not
    registered (no UFFD_FEATURE_EVENT_FORK): the userfaultfd_wp(dst_vma) test is missing.
    From: kernel-behaviour.md 1.3 child row. Symptom: pagemap bit 57 set in the child where legacy's child
    PTE entries have it clear (rule uffd-wp, at the fork)."""

    def copy_huge_non_present_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        super().copy_huge_non_present_pmd(dst, src, r, dst_vma)
        dst.pmd_uw[r] = src.pmd_uw[r]  # BUG: no userfaultfd_wp(dst_vma) check


class ForkCountsAnonpages(PmdSwapKernel):
    """copy_huge_non_present_pmd(): reuses the migration-entry path's add_mm_counter(dst_mm,
    MM_ANONPAGES, HPAGE_PMD_NR) for a swap PMD instead of MM_SWAPENTS.
    From: kernel-behaviour.md 1.3 mm bookkeeping row, 4 item 4. Symptom: the child's RssAnon +2 MiB and
    VmSwap -2 MiB against its page tables (rule rss / invariant rss_counters_match at the fork)."""

    def copy_huge_non_present_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        super().copy_huge_non_present_pmd(dst, src, r, dst_vma)
        dst.swapents -= N  # BUG: MM_ANONPAGES instead of MM_SWAPENTS
        dst.anonpages += N


class ForkChildNotOnMmlist(PmdSwapKernel):
    """copy_huge_non_present_pmd(): the child gets a swap PMD but mm_prepare_for_swap_entries()
    (prep 2/6: put the mm on init_mm.mmlist) is not called, so swapoff never visits the child.
    From: kernel-behaviour.md 1.3 mm bookkeeping row, 1.8, 4 item 10 (a child mm not on the mmlist).
    Symptom: swapoff cannot free the device (the model raises ModelBug "swapoff left references",
    reported as an exception divergence; the kernel loops or fails swapoff)."""

    def copy_huge_non_present_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        listed = dst.pid in self.mmlist
        super().copy_huge_non_present_pmd(dst, src, r, dst_vma)
        if not listed:
            self.mmlist.remove(dst.pid)  # BUG: mm_prepare_for_swap_entries() missing


# =================================================================================================
# zap: zap_huge_pmd() / zap_pmd_range()
# =================================================================================================
class ZapPutsBaseSlotOnly(PmdSwapKernel):
    """zap_huge_pmd() swap branch: free_swap_and_cache(entry) as for one PTE: only the base slot is
    put, not all 512 (and MM_SWAPENTS still -= 512).
    From: kernel-behaviour.md 1.5, 4 item 3 (count leak). Symptom: 511 slots keep a count with no entry
    (invariant swap_count_matches_entries at the munmap/DONTNEED/exit)."""

    def zap_huge_pmd(self, mm: MM, r: int) -> None:
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            mm.clear_pmd(r)
            mm.swapents -= N
            self.swap_put_entries_direct(np.arange(base, base + 1))  # BUG: one slot, not 512
            self.events.append(("pmd_zapped", mm.pid, r))
            return
        self._zap_present_huge_pmd(mm, r)


class PartialZapFreesWholeEntry(PmdSwapKernel):
    """zap_pmd_range() (mm/memory.c, here unmap_page_range): the new is_swap_pmd() case calls
    zap_huge_pmd() before the `next - addr != HPAGE_PMD_SIZE` split check, so a partial munmap /
    MADV_DONTNEED of a swap PMD frees all 512 slots.
    From: kernel-behaviour.md 1.5 ("Partial -> split, then PTE zap"), 2 item 7, 4 item 16/17.
    Symptom: the pages outside the range read zeros (or the process loses them) where legacy keeps
    its swap entries (rules contents / residency, at the partial zap)."""

    def unmap_page_range(self, mm: MM, lo: int, hi: int) -> None:
        for r, a, b in regions_of(lo, hi):
            kind = mm.pmd_kind[r]
            if kind == PMD_NONE:
                continue
            if kind == PMD_SWAP:  # BUG: no range check for a swap PMD
                self.zap_huge_pmd(mm, r)
                continue
            if kind == PMD_HUGE:
                if b - a == N:
                    self.zap_huge_pmd(mm, r)
                    continue
                self.split_huge_pmd(mm, r)
            self.zap_pte_range(mm, a, b)


# =================================================================================================
# mprotect / UFFDIO_WRITEPROTECT: change_huge_pmd()
# =================================================================================================
class ChangeHugePmdIgnoresUffdWp(PmdSwapKernel):
    """change_huge_pmd() / change_non_present_huge_pmd() swap branch: returns before looking at
    MM_CP_UFFD_WP / MM_CP_UFFD_WP_RESOLVE (the branch was written for the protection change only).
    From: kernel-behaviour.md 1.4, 4 item 9. Symptom: after UFFDIO_WRITEPROTECT over a swapped-out THP the
    pages are not uffd-wp (pagemap bit 57) where legacy's swap PTEs are; a write is not trapped
    (rule uffd-wp, at the uffd_wp op)."""

    def change_huge_pmd(self, mm: MM, vma: Vma, r: int, mode: str) -> None:
        if mm.pmd_kind[r] == PMD_SWAP:
            return  # BUG: MM_CP_UFFD_WP / _RESOLVE (and the RWP modes) ignored on a swap PMD
        self._change_present_huge_pmd(mm, vma, r, mode)


# =================================================================================================
# split: __split_huge_pmd_locked() swap branch
# =================================================================================================
class SplitBaseOffsetEveryPte(PmdSwapKernel):
    """__split_huge_pmd_locked() swap branch (v2 08/16): every PTE gets the PMD's entry (base)
    instead of swp_entry(type, base + i).
    From: kernel-behaviour.md 1.16, 4 item 2. Symptom: pagemap frames all base; slot counts no longer match
    the references; after swap-in all 512 pages read page 0's data (rules swap-slots / invariant
    swap_count_matches_entries at the split)."""

    def split_huge_pmd_locked(self, mm: MM, r: int) -> None:
        was, base = _was_swap_pmd(mm, r), int(mm.pmd_swp_off[r])
        super().split_huge_pmd_locked(mm, r)
        if was:
            mm.pte_swp_off[region_slice(r)] = base  # BUG: no + i


class SplitDropsSoftDirty(PmdSwapKernel):
    """__split_huge_pmd_locked() swap branch: the PTE swap entries are built without
    pte_swp_mksoft_dirty() even when the swap PMD is soft-dirty.
    From: kernel-behaviour.md 4 item 1. Symptom: after clear_refs, write, pageout and a partial
    mprotect/munmap/fault fallback, written pages are not soft-dirty (rule soft-dirty)."""

    def split_huge_pmd_locked(self, mm: MM, r: int) -> None:
        was = _was_swap_pmd(mm, r)
        super().split_huge_pmd_locked(mm, r)
        if was:
            mm.pte_sd[region_slice(r)] = False  # BUG: SD not copied


class SplitDropsUffdWp(PmdSwapKernel):
    """__split_huge_pmd_locked() swap branch: the PTE swap entries lose pte_swp_mkuffd_wp().
    From: kernel-behaviour.md 4 item 1. Symptom: uffd-wp protection disappears from a swapped-out THP on a
    partial mprotect/munmap/uffd_wp or a fallback swap-in (rule uffd-wp at the split)."""

    def split_huge_pmd_locked(self, mm: MM, r: int) -> None:
        was = _was_swap_pmd(mm, r)
        super().split_huge_pmd_locked(mm, r)
        if was:
            mm.pte_uw[region_slice(r)] = False  # BUG: UW not copied


class SplitDropsExclusive(PmdSwapKernel):
    """__split_huge_pmd_locked() swap branch: the PTE swap entries lose pte_swp_mkexclusive().
    From: kernel-behaviour.md 4 item 1. The exclusive bit itself is not compared (section 8), but UFFDIO_MOVE
    of a swap PTE needs it (move_swap_pte: -EBUSY unless exclusive). Symptom: a partial UFFDIO_MOVE
    of an evicted swapped-out THP returns -EBUSY where legacy moves it (rule results)."""

    def split_huge_pmd_locked(self, mm: MM, r: int) -> None:
        was = _was_swap_pmd(mm, r)
        super().split_huge_pmd_locked(mm, r)
        if was:
            mm.pte_swp_excl[region_slice(r)] = False  # BUG: EXCL not copied


# =================================================================================================
# swapoff: unuse_pmd()
# =================================================================================================
class UnusePmdMapsWritable(PmdSwapKernel):
    """unuse_pmd() (v1 08/13, v2 10/16): the PMD is made with maybe_pmd_mkwrite() as in
    do_huge_pmd_anonymous_page(), so it is writable even when the entry was shared after fork
    (unuse_pte() maps read-only).
    From: kernel-behaviour.md 1.8, 4 item 10. Symptom: after swapoff, parent and child both map one THP
    writable; a write by one shows in the other (invariant writable_implies_exclusive at the
    swapoff, then rule contents)."""

    def unuse_pmd(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> int:
        return _unuse(self, mm, vma, r, fail_alloc, "writable")


class UnusePmdDropsUffdWp(PmdSwapKernel):
    """unuse_pmd(): the new PMD is built without pmd_mkuffd_wp() when the swap PMD was uffd-wp
    (the bug "mm/swapfile: fix lost swap bits in unuse_pte()" once fixed at PTE level).
    From: kernel-behaviour.md 1.8, 4 item 10. Symptom: after swapoff the pages are no longer uffd-wp
    (rule uffd-wp at the swapoff)."""

    def unuse_pmd(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> int:
        return _unuse(self, mm, vma, r, fail_alloc, "drop_uffd_wp")


class UnusePmdWrongSubpageOrder(PmdSwapKernel):
    """unuse_pmd() / swapin_alloc_pmd_folio() from swapoff: the read loop fills folio page i from
    slot base + 511 - i (subpages installed out of order).
    From: kernel-behaviour.md 4 item 2, section 5 ("a per-page index pattern so misordered slots are
    caught"). Symptom: after swapoff of an evicted swap PMD the contents are reversed (rule
    contents at the swapoff)."""

    def unuse_pmd(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> int:
        return _unuse(self, mm, vma, r, fail_alloc, "reversed")


# =================================================================================================
# mremap: move_huge_pmd()
# =================================================================================================
class MoveHugePmdForgetsSoftDirty(PmdSwapKernel):
    """move_huge_pmd(): move_soft_dirty_pmd() still marks only migration PMDs, so a moved swap PMD
    keeps its old soft-dirty bit.
    From: kernel-behaviour.md 1.7, 3.2 D7, 4 item 9. Invisible for a plain aligned move (legacy's
    move_normal_pmd keeps bits too), but when the source VMA is uffd-registered legacy cannot move the
    PTE table and move_ptes() sets soft-dirty on every entry. Symptom: after clear_refs, an aligned
    mremap of a registered swapped-out THP: soft-dirty in legacy, not in the PMD model (rule
    soft-dirty, one-sided part)."""

    def move_huge_pmd(self, mm: MM, ro: int, rn: int, clear_uw: bool) -> None:
        if mm.pmd_kind[ro] == PMD_SWAP:
            for name in ("pmd_kind", "pmd_swp_off", "pmd_swp_excl", "pmd_sd", "pmd_uw"):
                arr = getattr(mm, name)
                arr[rn] = arr[ro]
            mm.clear_pmd(ro)
            # BUG: no move_soft_dirty_pmd() for a swap PMD
            if clear_uw:
                mm.pmd_uw[rn] = False
            return
        self._move_present_huge_pmd(mm, ro, rn, clear_uw)


class MoveHugePmdKeepsUffdWp(PmdSwapKernel):
    """move_huge_pmd(): clear_uffd_wp_pmd() is applied to present PMDs only, so a swap PMD moved out
    of a uffd-registered VMA without UFFD_FEATURE_EVENT_REMAP keeps uffd-wp.
    From: kernel-behaviour.md 1.7 ("clears UW if vma_has_uffd_without_event_remap"). Symptom: the moved
    pages are uffd-wp in the PMD model, not in legacy (rule uffd-wp at the mremap)."""

    def move_huge_pmd(self, mm: MM, ro: int, rn: int, clear_uw: bool) -> None:
        if mm.pmd_kind[ro] == PMD_SWAP:
            for name in ("pmd_kind", "pmd_swp_off", "pmd_swp_excl", "pmd_sd", "pmd_uw"):
                arr = getattr(mm, name)
                arr[rn] = arr[ro]
            mm.clear_pmd(ro)
            mm.pmd_sd[rn] = True
            return  # BUG: clear_uw ignored for a swap PMD
        self._move_present_huge_pmd(mm, ro, rn, clear_uw)


# =================================================================================================
# UFFDIO_MOVE: move_pages_huge_pmd()
# =================================================================================================
class UffdMoveNonExclusive(PmdSwapKernel):
    """move_pages_huge_pmd() swap branch: moves the swap PMD without the exclusive check that
    move_swap_pte() has (-EBUSY for a non-exclusive entry).
    From: kernel-behaviour.md 1.9, 4 item 12. Symptom: after fork, UFFDIO_MOVE of the parent's evicted
    swapped-out THP succeeds in the PMD model where legacy returns -EBUSY (rule results)."""

    def move_pages_huge_pmd(self, mm: MM, rs: int, rd: int, dst_vma: Vma) -> int | None:
        if mm.pmd_kind[rs] == PMD_SWAP:
            # BUG: no "if (!pmd_swp_exclusive(pmd)) return -EBUSY"
            head = self._pmd_folio_in_swapcache(int(mm.pmd_swp_off[rs]))
            if head is None:
                self.split_huge_pmd_locked(mm, rs)
                return None
            for name in ("pmd_kind", "pmd_swp_off", "pmd_swp_excl", "pmd_sd", "pmd_uw"):
                arr = getattr(mm, name)
                arr[rd] = arr[rs]
            mm.clear_pmd(rs)
            mm.pmd_sd[rd] = True
            if dst_vma.uffd_rwp:
                mm.pmd_uw[rd] = True
            self.events.append(("uffd_move_src_none", mm.pid, rs))
            if head >= 0:
                self.events.append(("uffd_move_whole", mm.pid, rd))
            return O.OK
        return self._move_present_huge_pmd_uffd(mm, rs, rd, dst_vma)


# =================================================================================================
# MADV_FREE: madvise_free_huge_pmd()
# =================================================================================================
class MadvFreeLeavesSwapEntry(PmdSwapKernel):
    """madvise_free_huge_pmd(): keeps mainline's `if (!pmd_trans_huge(orig_pmd)) goto out` for a
    whole swap PMD: the entry is left in place (the PTE path would drop it).
    From: kernel-behaviour.md 1.6, 4 item 13. Symptom: the swap PMD survives MADV_FREE; old data is read
    back where legacy reads zeros, VmSwap does not drop (rules contents / residency)."""

    def madvise_free_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        if mm.pmd_kind[r] == PMD_SWAP:
            if b - a == N:
                return True  # BUG: skipped, the entry stays
            self.split_huge_pmd_locked(mm, r)
            return False
        return PmdSwapKernel.madvise_free_huge_pmd(self, mm, r, a, b)


class MadvFreePmdSwapcacheStale(PmdSwapKernel):
    """madvise_free_huge_pmd() present branch: mainline's body, without the swap-cache check the PTE
    path has (folio_free_swap() first, skip the folio if that fails). With the series a PMD-mapped
    swap-cache THP is what a read fault on an asynchronous device leaves behind.
    From: docs/models.md finding F1; kernel-behaviour.md 1.6, 4 item 13.
    Symptom: swap-in (cached), write, MADV_FREE (the folio is now clean but cached and not lazyfree),
    MADV_PAGEOUT (clean: no writeback, dropped), fault: the data of the first swap-out, older than
    the last write, which MADV_FREE never allows (rule contents)."""

    def madvise_free_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        if mm.pmd_kind[r] == PMD_SWAP:
            if b - a == N:
                self.zap_huge_pmd(mm, r)
                return True
            self.split_huge_pmd_locked(mm, r)
            return False
        # BUG: no "in the swap cache and folio_free_swap() fails -> skip" check
        return self._madvise_free_present_huge_pmd(mm, r, a, b)


# =================================================================================================
# clear_refs: clear_soft_dirty_pmd()
# =================================================================================================
class ClearSoftDirtySkipsSwapPmd(PmdSwapKernel):
    """clear_soft_dirty_pmd() (fs/proc/task_mmu.c): still handles only present and migration PMDs,
    so a swap PMD keeps its soft-dirty bit across clear_refs.
    From: kernel-behaviour.md 1.11, 4 item 9.
    Symptom: pagemap bit 55 stays set on a swapped region nothing wrote since clear_refs; the
    oracle compares soft-dirty two-sided on such regions (rule soft-dirty)."""

    def clear_soft_dirty_pmd(self, mm: MM, r: int) -> None:
        if mm.pmd_kind[r] == PMD_SWAP:
            return  # BUG: swap PMD not handled, SD stays
        self._clear_soft_dirty_present_pmd(mm, r)


# =================================================================================================
# pagemap: pagemap_pmd_range()
# =================================================================================================
class PagemapBaseOffset(PmdSwapKernel):
    """pagemap_pmd_range() (fs/proc/task_mmu.c) swap PMD case: the frame is computed once from the
    PMD's entry and not advanced per subpage (the 2018 PMD-migration pagemap bug): every subpage
    reports the base offset.
    From: kernel-behaviour.md 1.12, 4 items 2 and 14 (prep 3/6). Symptom: pagemap frames not
    type | (base+i) << 5 (rule swap-slots at the pageout)."""

    def pagemap_pmd_range(self, mm: MM, r: int, obs) -> None:
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            obs.fill_swap_pmd(mm, r, np.full(N, base, dtype=np.int32),  # BUG: no + i
                              bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r]), bool(mm.pmd_swp_excl[r]))
            return
        obs.fill_present_pmd(mm, r)


class PagemapSwapPmdFlagsLost(PmdSwapKernel):
    """pagemap_pmd_range(): for a swap PMD the flags are read with the present-PMD helpers
    pmd_soft_dirty()/pmd_uffd_wp() instead of pmd_swp_soft_dirty()/pmd_swp_uffd_wp(); those test
    bits the swap encoding does not set, so bits 55 and 57 always read 0.
    From: kernel-behaviour.md 1.12, 4 item 14. Symptom: a uffd-wp swapped THP shows bit 57 clear, a
    soft-dirty one bit 55 clear (after clear_refs) (rules uffd-wp / soft-dirty at the pageout)."""

    def pagemap_pmd_range(self, mm: MM, r: int, obs) -> None:
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            obs.fill_swap_pmd(mm, r, np.arange(base, base + N, dtype=np.int32),
                              False, False,  # BUG: pmd_soft_dirty()/pmd_uffd_wp() on a swap PMD
                              bool(mm.pmd_swp_excl[r]))
            return
        obs.fill_present_pmd(mm, r)


# =================================================================================================
# issue 11: the consumers v7 converts (mincore, MADV_WILLNEED, MADV_PAGEOUT's walker), the dirty
# transfer at swap-out, partial MADV_FREE, the v3 cache rule outside the fault path
# =================================================================================================
class MincoreSwapPmdResident(PmdSwapKernel):
    """mincore_pte_range() left unconverted: pmd_trans_huge_lock() is taken for any non-none
    non-present PMD (pmd_is_huge(), 7.3 include/linux/huge_mm.h:446), so a swap PMD is answered
    like a present THP with memset(vec, 1) (7.3 mm/mincore.c:172-176).
    From: v7 cover letter, "mincore looks at single slots" (docs/models.md [S2]).
    Symptom: mincore reports an evicted swap PMD resident (rule mincore, each model against its
    own swap cache)."""

    def mincore_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> np.ndarray:
        return np.ones(b - a, np.int8)  # BUG: the swap PMD taken as a present THP


class MincoreSwapPmdBaseSlot(PmdSwapKernel):
    """mincore for a swap PMD answers for the PMD, not per slot: the base slot's swap-cache state
    (swap_cache_get_folio(entry) of the PMD's own entry) for all 512 pages.
    From: the review concern "mincore answering for the PMD instead of per slot" (issue 11).
    Symptom: after a split of the cached folio and a partial reclaim (mixed cache), the pages whose
    slots differ from the base slot's are answered wrongly (rule mincore)."""

    def mincore_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> np.ndarray:
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            return np.full(b - a, self.mincore_swap(np.array([base]))[0], np.int8)  # BUG
        return np.ones(b - a, np.int8)


class MincoreSwapPmdWrongOffset(PmdSwapKernel):
    """mincore for a swap PMD: the slot index is taken from the start of the walked range
    (addr - start) instead of the PMD-aligned offset (addr & ~PMD_MASK), so a range that starts
    inside the PMD answers for slots base, base + 1, ... instead of base + a % 512, ...
    From: kernel-behaviour.md 4 item 2 (wrong sub-slot offset), the pagemap analogue pagemap_base_offset.
    Symptom: a partial mincore over a mixed cache answers for the wrong slots (rule mincore)."""

    def mincore_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> np.ndarray:
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            return self.mincore_swap(np.arange(base, base + (b - a)))  # BUG: base + (addr - start)
        return np.ones(b - a, np.int8)


class WillneedSkipsSwapPmd(PmdSwapKernel):
    """swapin_walk_pmd_entry() left unconverted: pte_offset_map_lock() fails on the swap PMD
    (7.3 mm/madvise.c:211) and the walk reads nothing, as for a present THP: the walker treats
    the swap PMD as a present folio.
    From: v7 names MADV_WILLNEED among the converted consumers (docs/models.md [S2]); review's
    class "a walker that takes a swap PMD for a present one".
    Symptom: after MADV_WILLNEED legacy has the slots cached and the PMD model has not (rule
    mincore, cross-model while in lockstep)."""

    def swapin_walk_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        return True  # BUG: a swap PMD skipped like a present THP


class WillneedPmdFolioNotRead(PmdSwapKernel):
    """MADV_WILLNEED on a swap PMD: the PMD-order folio is added to the swap cache but the read is
    never submitted (swap_read_folio() / swap_read_submit() missing), so an uninitialised
    (here: zero) folio caches the 512 slots.
    From: v1 11/13's "PMD-order swapin_sync()" read, issue 11 item 1.
    Symptom: the next fault maps the cached folio: zeros where the data was (rule
    contents-expected)."""

    def swapin_walk_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        return _willneed(self, mm, r, a, b, "not_read")


class WillneedIgnoresMixedCache(PmdSwapKernel):
    """MADV_WILLNEED on a swap PMD ignores the v3 rule: a mixed cache (some slots cached by small
    folios after a split and a partial reclaim) is read like an empty one, one PMD-order folio
    over slots other folios already cache.
    From: Lance Yang's review of v2 ("every caller has to guess ... easy to miss one"); issue 11
    item 4.
    Symptom: two folios claim the same slots (invariant swap_cache_consistent)."""

    def swapin_walk_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        return _willneed(self, mm, r, a, b, "mixed_cache")


class SwapoutDropsDirty(PmdSwapKernel):
    """set_pmd_swap_entry() (v2 15/16): the PMD's dirty bit is not moved to the folio
    ("so writeback is not lost", v2 15/16's commit message). Reclaim then finds the swap-cache
    folio clean and drops it without writeback.
    From: review of the swap-out path; issue 11 item 4 ("the dirty bit not moved to the folio: a
    lost write").
    Symptom: a THP swapped in from the swap cache (read fault, async device), written through its
    writable PMD, paged out again: the fault reads the first swap-out's data (rule
    contents-expected)."""

    def set_pmd_swap_entry(self, mm: MM, r: int, head: int) -> bool:
        mm.pmd_dirty[r] = False  # BUG: pmd_dirty() not transferred with folio_mark_dirty()
        return PmdSwapKernel.set_pmd_swap_entry(self, mm, r, head)


class MadvFreePartialFreesWholeEntry(PmdSwapKernel):
    """madvise_free_huge_pmd() swap branch: frees the whole entry whatever the range (v7 frees a
    whole PMD in place and splits only for a partial range [S2]; the condition is lost).
    From: issue 11 item 4 (partial MADV_FREE freeing the whole entry), the zap analogue
    partial_zap_frees_whole_entry.
    Symptom: pages outside the MADV_FREE range read zeros (rule contents-expected)."""

    def madvise_free_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        if mm.pmd_kind[r] == PMD_SWAP:
            self.zap_huge_pmd(mm, r)  # BUG: no `b - a == HPAGE_PMD_NR` check
            return True
        return PmdSwapKernel.madvise_free_huge_pmd(self, mm, r, a, b)


class PageoutTreatsSwapPmdAsFolio(PmdSwapKernel):
    """madvise_cold_or_pageout_pte_range(): `if (pmd_trans_huge(*pmd))` widened to pmd_is_huge(),
    so a swap PMD goes down the present-THP branch and pmd_folio() decodes the swap entry as a
    folio.
    From: review's class "a walker that takes a swap PMD for a present one" (the device-private
    VM_BUG_ON found in this walker), v7's per-walker conversion (docs/models.md [S2]).
    Symptom: the model raises ModelBug on the folio that is not there (a finding of the guard:
    rule exception:ModelBug) on MADV_PAGEOUT of a range that holds a swap PMD."""

    def madvise_pageout_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> list[int] | None:
        if mm.pmd_kind[r] == PMD_SWAP:
            # BUG: no is_swap_pmd() skip; pmd_folio() of a non-present entry is no folio (the
            # kernel dereferences whatever page the entry's bits name; the model has none to give)
            raise ModelBug(f"pmd_folio() of the swap PMD at region {r} (pid {mm.pid})")
        return self._pageout_present_huge_pmd(mm, r, a, b)


class UnusePmdIgnoresMixedCache(PmdSwapKernel):
    """unuse_pmd() (v2 10/16) ignores the v3 rule: a mixed swap cache is read whole like an empty
    one, a PMD-order folio over slots small folios cache.
    From: the v3 rule (docs/models.md [I] rows), applied to unuse_pmd() outside the fault path.
    Symptom: swapoff brings the entry back whole over a mixed cache (rule v3-cache-rule)."""

    def unuse_pmd(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> int:
        return _unuse(self, mm, vma, r, fail_alloc, "mixed_cache")


# =================================================================================================
# registry
# =================================================================================================
BUGS: dict[str, type[PmdSwapKernel]] = {
    # swap-out
    "swapout_drops_soft_dirty": SwapoutDropsSoftDirty,
    "swapout_drops_uffd_wp": SwapoutDropsUffdWp,
    "swapout_keeps_folio_exclusive": SwapoutKeepsFolioExclusive,
    "swapout_wrong_counters": SwapoutWrongCounters,
    # swap-in fault
    "swapin_ignores_uffd_wp": SwapinIgnoresUffdWp,
    "swapin_no_soft_dirty_wp": SwapinNoSoftDirtyWp,
    "swapin_ignores_exclusive": SwapinIgnoresExclusive,
    "swapin_mixed_cache_reads_device": SwapinMixedCacheReadsDevice,
    "swapin_wrong_slot_order": SwapinWrongSlotOrder,
    "swapin_forgets_put_slots": SwapinForgetsPutSlots,
    "swapin_alloc_failure_oom": SwapinAllocFailureOom,
    "swapin_ignores_zswap": SwapinIgnoresZswap,
    "willneed_ignores_zswap": WillneedIgnoresZswap,
    "unuse_ignores_zswap": UnuseIgnoresZswap,
    # fork
    # RWP (Linux 7.3)
    "swapout_drops_rwp": SwapoutDropsRwp,
    "fork_dups_base_slot_only": ForkDupsBaseSlotOnly,
    "fork_leaves_parent_exclusive": ForkLeavesParentExclusive,
    "fork_child_keeps_uffd_wp": ForkChildKeepsUffdWp,
    "fork_counts_anonpages": ForkCountsAnonpages,
    "fork_child_not_on_mmlist": ForkChildNotOnMmlist,
    # zap
    "zap_puts_base_slot_only": ZapPutsBaseSlotOnly,
    "partial_zap_frees_whole_entry": PartialZapFreesWholeEntry,
    # mprotect / uffd-wp
    "change_huge_pmd_ignores_uffd_wp": ChangeHugePmdIgnoresUffdWp,
    # split
    "split_base_offset_every_pte": SplitBaseOffsetEveryPte,
    "split_drops_soft_dirty": SplitDropsSoftDirty,
    "split_drops_uffd_wp": SplitDropsUffdWp,
    "split_drops_exclusive": SplitDropsExclusive,
    # swapoff
    "unuse_pmd_maps_writable": UnusePmdMapsWritable,
    "unuse_pmd_drops_uffd_wp": UnusePmdDropsUffdWp,
    "unuse_pmd_wrong_subpage_order": UnusePmdWrongSubpageOrder,
    # mremap
    "move_huge_pmd_forgets_soft_dirty": MoveHugePmdForgetsSoftDirty,
    "move_huge_pmd_keeps_uffd_wp": MoveHugePmdKeepsUffdWp,
    # UFFDIO_MOVE
    "uffd_move_non_exclusive": UffdMoveNonExclusive,
    # MADV_FREE
    "madv_free_leaves_swap_entry": MadvFreeLeavesSwapEntry,
    "madv_free_pmd_swapcache_stale": MadvFreePmdSwapcacheStale,
    # clear_refs
    "clear_soft_dirty_skips_swap_pmd": ClearSoftDirtySkipsSwapPmd,
    # pagemap
    "pagemap_base_offset": PagemapBaseOffset,
    "pagemap_swap_pmd_flags_lost": PagemapSwapPmdFlagsLost,
    # mincore
    "mincore_swap_pmd_resident": MincoreSwapPmdResident,
    "mincore_swap_pmd_base_slot": MincoreSwapPmdBaseSlot,
    "mincore_swap_pmd_wrong_offset": MincoreSwapPmdWrongOffset,
    # MADV_WILLNEED
    "willneed_skips_swap_pmd": WillneedSkipsSwapPmd,
    "willneed_pmd_folio_not_read": WillneedPmdFolioNotRead,
    "willneed_ignores_mixed_cache": WillneedIgnoresMixedCache,
    # swap-out dirty transfer, MADV_FREE, MADV_PAGEOUT, swapoff (v3 rule)
    "swapout_drops_dirty": SwapoutDropsDirty,
    "madv_free_partial_frees_whole_entry": MadvFreePartialFreesWholeEntry,
    "pageout_treats_swap_pmd_as_folio": PageoutTreatsSwapPmdAsFolio,
    "unuse_pmd_ignores_mixed_cache": UnusePmdIgnoresMixedCache,
}
for _name, _cls in BUGS.items():
    _cls.name = f"pmd+{_name}"
    _cls.bug = _name

# Bugs the current oracle cannot see (the class docstring says why and what would make it visible).
BLIND_SPOTS: frozenset[str] = frozenset()


def make_pmd_kernel(bug: str | None = None) -> PmdSwapKernel:
    """The PMD-swap kernel, correct (`bug=None`) or with the named catalogue bug."""
    if bug is None:
        return PmdSwapKernel()
    try:
        cls = BUGS[bug]
    except KeyError:
        raise KeyError(f"unknown bug {bug!r}; valid names: {', '.join(sorted(BUGS))}") from None
    return cls()
