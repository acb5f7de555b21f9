"""The PMD-swap kernel: one PMD-level swap entry per swapped-out PMD-mapped anonymous THP.

Models Usama Arif's series "mm: PMD-level swap entries for anonymous THPs" (v1 13 patches,
2026-04-27; v2 16 patches, 2026-06-02; the prep series "[PATCH 0/6] mm: preparatory patches for PMD
level swap entries", 2026-06-30) with the rule the author settled on for v3: a PMD swap entry is only a
compact encoding of 512 ordinary swap slots (type, base+i) and promises nothing about the swap cache.
Patches modelled, by the function they change (kernel-behaviour.md sections 1-2):
  * v2 15/16 swap-out: `set_pmd_swap_entry` from try_to_unmap_one(), TTU_SPLIT_HUGE_PMD kept as
    the fallback; zswap by v7's rule (zswap stores order-0, a range with zswap entries is split
    by whoever would read it whole), not v2's global zswap_never_enabled() gate;
  * v1 11/13 swap-in: `do_huge_pmd_swap_page`, with every fallback to the PTE path;
  * fork `copy_huge_non_present_pmd`, zap `zap_huge_pmd`, mprotect/uffd-wp `change_huge_pmd`;
  * v2 08/16 `__split_huge_pmd_locked` swap branch (512 PTE swap entries, base+i, same SD/UW/EXCL);
  * v1 08/13, v2 10/16 swapoff `unuse_pmd`;
  * mremap `move_huge_pmd`/`move_soft_dirty_pmd`, UFFDIO_MOVE of a whole entry, MADV_FREE of a whole
    entry, clear_refs `clear_soft_dirty_pmd`, pagemap per-subpage offsets (prep 3/6).
Where the series' text is silent the model does what the PTE path does and says so with [I]
(docs/models.md lists each inference and what the fuzzer has to say about it).

This file holds only the PMD-level functions, in the same order and with the same signatures as
models/legacy.py, so `diff models/legacy.py models/pmd_swap.py` shows the series. Shared unchanged
code (PTE level, present-THP bodies, VMAs, reclaim's folio steps, swap layer) is in models/mm.py and
models/swap.py and is guarded by models/invariants.py rather than by the differential check.

Events (`self.events`) name the places where this kernel is meant to differ from legacy, so the oracle
can tell a tolerated difference from a bug: ("pmd_swapin", pid, region, base) for a whole-2 MiB swap-in
(D1/D2), ("pmd_zapped", pid, region) when a zapped entry leaves the PMD none where legacy keeps an empty
PTE table (D6), ("uffd_move_whole", pid, region) when a whole entry moves where legacy returns -EBUSY (D8),
("pmd_unuse", pid, region, base) when swapoff maps a THP where legacy maps 512 small folios (D4),
("uffd_move_refused", pid, region) when a whole-entry UFFDIO_MOVE is refused before the destination
got the PTE table legacy allocates, and ("uffd_move_src_none", pid, region) when a whole entry moved
away leaves the source PMD none where legacy keeps an empty table (both D6-like).
"""

from __future__ import annotations

import numpy as np

from . import ops as O
from .mm import (MM, PMD_HUGE, PMD_NONE, PMD_SWAP, PMD_TABLE, EBUSY, UFFD_PROT_MODES,
                 UFFD_RESOLVE_MODES, Kernel, Vma, region_slice)
from .ops import HPAGE_PMD_NR


class PmdSwapKernel(Kernel):
    name = "pmd"

    # ---- swap-out: mm/rmap.c try_to_unmap_one() --------------------------------------------------
    def try_to_unmap_one_pmd(self, mm: MM, r: int, head: int) -> None:
        """try_to_unmap_one() (mm/rmap.c) on a PMD mapping of a PMD-sized swap-cache folio.

        shrink_folio_list() drops TTU_SPLIT_HUGE_PMD (v2 15/16); the PMD branch then installs a PMD
        swap entry. TTU_SPLIT_HUGE_PMD remains the fallback. v2 dropped it only when
        zswap_never_enabled(); v7 [S2] splits "ranges that have zswap entries" where they are
        read, i.e. the entry exists over zswap-held slots, so the install is not gated [I] (the
        unmap comes before swap_writeout() decides between zswap and the device)."""
        if self.set_pmd_swap_entry(mm, r, head):
            return
        self.split_huge_pmd_locked(mm, r)  # legacy path: the caller's PTE walk swaps 512 PTEs out

    def set_pmd_swap_entry(self, mm: MM, r: int, head: int) -> bool:
        """set_pmd_swap_entry() (mm/huge_memory.c, v2 15/16): one swap PMD for 512 slots.

        Clear the PMD keeping the old value for rollback, dup all 512 slots, move the folio's
        anon-exclusive mark onto the entry, move the dirty bit to the folio, keep SD/UW. The model
        has no pins and no dup failure, so the rollback branch is never taken here.

        [I] RWP (Linux 7.3): the uffd bit goes onto the entry as pmd_swp_mkuffd(), as
        set_pmd_migration_entry() and try_to_unmap_one()'s PTE swap entry keep it
        (pte_swp_mkuffd() when pte_uffd()); the bit is the RWP marker on an RWP VMA, so a later
        swap-in can restore PAGE_NONE (do_huge_pmd_swap_page()). Dropping it is catalogue bug
        swapout_drops_rwp."""
        mem, sw = self.mem, self.swap
        base = int(mem.swap[head])
        slots = np.arange(base, base + HPAGE_PMD_NR)
        sw.dup(slots)  # folio_dup_swap(folio, 512)
        excl = bool(mem.anon_exclusive[head])
        mem.anon_exclusive[head:head + HPAGE_PMD_NR] = False  # folio_try_share_anon_rmap_pmd()
        if mm.pmd_dirty[r]:
            mem.dirty[head] = True
            if not mm.pmd_sd[r]:
                # the entry keeps only the PMD's soft-dirty bit (pmd_swp_mksoft_dirty, as
                # set_pmd_migration_entry() does), where legacy's TTU_SPLIT_HUGE_PMD split of
                # this dirty PMD gave 512 soft-dirty PTEs (pte_mkdirty() on x86) (D9)
                self.events.append(("pmd_swapout_dirty_not_sd", mm.pid, r))
        mem.entire_mapcount[head] -= 1
        sd, uw = bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r])
        mm.clear_pmd(r, PMD_SWAP)  # the deposited page table stays with the entry
        mm.pmd_swp_off[r] = base
        mm.pmd_sd[r], mm.pmd_uw[r], mm.pmd_swp_excl[r] = sd, uw, excl
        mm.anonpages -= HPAGE_PMD_NR
        mm.swapents += HPAGE_PMD_NR
        self.vmstat["thp_swpout_pmd"] += 1
        self.mmlist_add(mm.pid)
        return True

    # ---- fault: mm/memory.c __handle_mm_fault() ------------------------------------------------
    def handle_huge_pmd_fault(self, mm: MM, vma: Vma, page: int, write: bool,
                              fail_alloc: bool) -> int | None:
        """__handle_mm_fault() (mm/memory.c), PMD part; None: go on to handle_pte_fault()."""
        r = page // O.HPAGE_PMD_NR
        kind = mm.pmd_kind[r]
        if kind == PMD_NONE:
            # pmd_none(*vmf.pmd) && thp_vma_allowable_order(): create_huge_pmd()
            if self.thp_vma_allowable(vma, r) and self.do_huge_pmd_anonymous_page(mm, vma, r, fail_alloc):
                return O.OK
            return None
        if kind == PMD_SWAP:
            # is_swap_pmd(vmf.orig_pmd): the series' new branch. A swap PMD only exists where a THP
            # was mapped, and no op here changes VM_HUGEPAGE, so the THP-allowed check (kernel-behaviour.md
            # section 2 item 11) cannot fail in this model.
            return self.do_huge_pmd_swap_page(mm, vma, r, page, write, fail_alloc)
        if kind == PMD_HUGE:
            if not write or mm.pmd_write[r]:
                return O.OK
            # wp_huge_pmd(): userfaultfd_huge_pmd_wp() first, then do_huge_pmd_wp_page()
            if vma.uffd_wp and mm.pmd_uw[r]:
                return O.UFFD_WP_TRAP
            if self.do_huge_pmd_wp_page(mm, vma, r, page):
                return O.OK
            return None  # VM_FAULT_FALLBACK: the PMD was split
        return None

    def zswap_may_hold(self, base: int) -> bool:
        """v7's zswap rule for every reader of a whole entry (fault, MADV_WILLNEED, swapoff):
        "zswap still stores order-0. Ranges that have zswap entries are split" [S2]. zswap_load()
        cannot fill a large folio (7.3 mm/zswap.c:1612), so a slot of the range in zswap sends the
        reader to the PTE path. v2 11/13 tested zswap_never_enabled() instead, as
        alloc_swap_folio() does for mTHP in 7.3; v7 must then let a PMD-order read past
        zswap_load() when no slot is in zswap [I] (7.3's zswap_load() fails every large folio
        once zswap was enabled)."""
        return bool(self.swap.zswap[base:base + HPAGE_PMD_NR].any())

    def do_huge_pmd_swap_page(self, mm: MM, vma: Vma, r: int, page: int, write: bool,
                              fail_alloc: bool) -> int | None:
        """do_huge_pmd_swap_page() (mm/huge_memory.c, v1 11/13): swap in all 2 MiB under one PMD.

        None: fell back (the entry was split into 512 PTE swap entries; the PTE path goes on)."""
        mem, sw = self.mem, self.swap
        base = int(mm.pmd_swp_off[r])
        slots = np.arange(base, base + HPAGE_PMD_NR)
        if self.zswap_may_hold(base):
            return self._swapin_fallback(mm, r)  # zswap holds some of the range (v7)
        head = self._pmd_folio_in_swapcache(base)
        if head is None:
            return self._swapin_fallback(mm, r)  # mixed or split cache state (v3 rule)
        if head < 0:
            # no slot cached: swapin_alloc_pmd_folio(), the PMD-order swapin_sync() read
            if fail_alloc:
                return self._swapin_fallback(mm, r)
            head = mem.alloc_folio(9)
            sw.add_to_swap_cache(mem, head, base)
            self.swap_read_folio(head)
        exclusive = bool(mm.pmd_swp_excl[r])
        if exclusive and mem.writeback[head] and sw.sync:
            exclusive = False  # writeback to a SWP_STABLE_WRITES device: map RO, COW later
        sd, uw = bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r])
        # [I] RWP: as do_swap_page() (7.3 mm/memory.c:5171-5178) and remove_migration_pmd()
        # (mm/huge_memory.c:5159: "See do_swap_page(): restore PAGE_NONE for RWP"), an entry with
        # the uffd bit on an RWP VMA is mapped PAGE_NONE with the bit: no write upgrade, no
        # write-protect fault; the access retries through do_huge_pmd_uffd_rwp()
        rwp_restore = uw and vma.uffd_rwp
        # writable only if EXCL && VM_WRITE && !UW; [I] plus the soft-dirty write-protect of the PTE path
        writable = (exclusive and not rwp_restore and bool(vma.prot & 2) and not (vma.uffd_wp and uw)
                    and not (not vma.softdirty and not sd))
        # [I] mirrors should_try_to_free_swap() after mapping (Linux 7.3): synchronous device, or
        # a write fault by the exclusive user
        free_cache = sw.sync or (write and exclusive)
        dirty = write and writable
        mm.clear_pmd(r, PMD_HUGE)
        mm.pmd_pfn[r] = head
        mm.pmd_write[r] = writable
        mm.pmd_dirty[r] = dirty
        mm.pmd_sd[r] = sd or dirty  # pmd_mkdirty sets soft-dirty on x86: all 512 pages (D5)
        mm.pmd_uw[r] = uw
        mem.entire_mapcount[head] += 1
        if exclusive:
            mem.anon_exclusive[head:head + HPAGE_PMD_NR] = True
        mm.anonpages += HPAGE_PMD_NR
        mm.swapents -= HPAGE_PMD_NR
        sw.put(slots)  # folio_put_swap(): all 512 slots
        if free_cache:
            self.folio_free_swap(head)
        self.vmstat["thp_swpin_pmd"] += 1
        self.events.append(("pmd_swapin", mm.pid, r, base))
        if write and not writable and not rwp_restore:
            # a write on a non-exclusive entry: mapped RO, then the PMD write-protect fault
            if vma.uffd_wp and uw:
                return O.UFFD_WP_TRAP
            if self.do_huge_pmd_wp_page(mm, vma, r, page):
                return O.OK
            return None  # do_huge_pmd_wp_page split the PMD: do_wp_page COWs one 4 KiB page
        return O.OK

    def _pmd_folio_in_swapcache(self, base: int) -> int | None:
        """The v3 rule: -1 if no slot of the range is cached, the head of the one PMD-sized folio
        caching exactly these 512 slots, or None for anything else (split or mixed cache)."""
        mem, sw = self.mem, self.swap
        cache = sw.cache[base:base + HPAGE_PMD_NR]
        if (cache < 0).all():
            return -1
        head = int(mem.head[cache[0]]) if cache[0] >= 0 else -1
        if head < 0 or mem.nr_pages(head) != HPAGE_PMD_NR or int(mem.swap[head]) != base:
            return None
        return head

    def _swapin_fallback(self, mm: MM, r: int) -> None:
        """Fallback: split the entry into 512 PTE swap entries; LEGACY from here on (v2 08/16)."""
        self.vmstat["thp_swpin_pmd_fallback"] += 1
        self.split_huge_pmd_locked(mm, r)
        return None

    # ---- fork: mm/huge_memory.c copy_huge_pmd() ------------------------------------------------
    def copy_huge_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        """copy_huge_pmd() (mm/huge_memory.c): a swap PMD goes to copy_huge_non_present_pmd()."""
        if src.pmd_kind[r] == PMD_SWAP:
            self.copy_huge_non_present_pmd(dst, src, r, dst_vma)
            return
        self._copy_present_huge_pmd(dst, src, r, dst_vma)

    def copy_huge_non_present_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        """copy_huge_non_present_pmd() swap branch: dup all 512 slots, the parent's entry becomes
        shared, the child keeps SD and keeps UW only if userfaultfd_protected(dst_vma) [I] (as
        copy_nonpresent_pte()'s pte_swp_clear_uffd(), 7.3 mm/memory.c:1104: an RWP marker is not
        inherited by a child that is not RWP-armed)."""
        base = int(src.pmd_swp_off[r])
        self.swap.dup(np.arange(base, base + HPAGE_PMD_NR))
        src.pmd_swp_excl[r] = False  # [I: required by invariant EX]
        dst.clear_pmd(r, PMD_SWAP)  # with a newly deposited page table
        dst.pmd_swp_off[r] = base
        dst.pmd_sd[r] = src.pmd_sd[r]
        dst.pmd_uw[r] = src.pmd_uw[r] and dst_vma.uffd_protected
        dst.swapents += HPAGE_PMD_NR
        self.mmlist_add(dst.pid, after=src.pid)  # mm_prepare_for_swap_entries() (prep 2/6)

    # ---- zap: mm/huge_memory.c zap_huge_pmd() --------------------------------------------------
    def zap_huge_pmd(self, mm: MM, r: int) -> None:
        """zap_huge_pmd() (mm/huge_memory.c): the swap branch puts 512 slots and frees the table."""
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            mm.clear_pmd(r)  # zap_deposited_table()
            mm.swapents -= HPAGE_PMD_NR
            self.swap_put_entries_direct(np.arange(base, base + HPAGE_PMD_NR))
            self.events.append(("pmd_zapped", mm.pid, r))
            return
        self._zap_present_huge_pmd(mm, r)

    # ---- mprotect / uffd-wp: mm/huge_memory.c change_huge_pmd() --------------------------------
    def change_huge_pmd(self, mm: MM, vma: Vma, r: int, mode: str) -> None:
        """change_huge_pmd() (mm/huge_memory.c): change_non_present_huge_pmd() gains a swap branch
        (prep 4/6): the entry stays, with uffd-wp set or cleared; a protection change leaves it.
        [I] RWP: change_non_present_huge_pmd() takes uffd_prot = MM_CP_UFFD_WP | MM_CP_UFFD_RWP
        and the two resolves alike (7.3 mm/huge_memory.c:2742), so UFFDIO_RWPROTECT sets or
        clears pmd_swp_uffd on the entry as change_softleaf_pte() does on a swap PTE."""
        if mm.pmd_kind[r] == PMD_SWAP:
            if mode in UFFD_PROT_MODES:
                mm.pmd_uw[r] = True
            elif mode in UFFD_RESOLVE_MODES:
                mm.pmd_uw[r] = False
            return
        self._change_present_huge_pmd(mm, vma, r, mode)

    # ---- split: mm/huge_memory.c __split_huge_pmd_locked() -------------------------------------
    def split_huge_pmd_locked(self, mm: MM, r: int) -> None:
        """__split_huge_pmd_locked() (mm/huge_memory.c): the swap branch (v2 08/16) makes 512 PTE
        swap entries (type, base+i) with the entry's SD, UW and EXCL; counts do not change.
        The uffd bit goes to every PTE swap entry whatever it stands for (uffd-wp or the RWP
        marker: both are _PAGE_SWP_UFFD), so each still swaps in PAGE_NONE on an RWP VMA."""
        if mm.pmd_kind[r] == PMD_SWAP:
            sl = region_slice(r)
            base = int(mm.pmd_swp_off[r])
            sd, uw, excl = bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r]), bool(mm.pmd_swp_excl[r])
            mm.clear_ptes(sl)
            mm.pte_kind[sl] = 2  # PTE_SWAP
            mm.pte_swp_off[sl] = np.arange(base, base + HPAGE_PMD_NR, dtype=np.int32)
            mm.pte_sd[sl] = sd
            mm.pte_uw[sl] = uw
            mm.pte_swp_excl[sl] = excl
            mm.clear_pmd(r, PMD_TABLE)  # the deposited table becomes the live table
            self.vmstat["thp_split_pmd"] += 1
            return
        self._split_present_huge_pmd(mm, r)

    # ---- MADV_FREE: mm/huge_memory.c madvise_free_huge_pmd() -----------------------------------
    def madvise_free_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        """madvise_free_huge_pmd() (mm/huge_memory.c): a whole swap entry is dropped (slots freed,
        later reads give zeros: the selftest's madvise_free); [I] a partial range splits it."""
        if mm.pmd_kind[r] == PMD_SWAP:
            if b - a == HPAGE_PMD_NR:
                self.zap_huge_pmd(mm, r)
                return True
            self.split_huge_pmd_locked(mm, r)
            return False
        head = int(mm.pmd_pfn[r])
        if b - a == HPAGE_PMD_NR and self.mem.in_swapcache(head) \
                and not self.folio_maybe_mapped_shared(head) and not self.folio_free_swap(head):
            # [I, finding F1 in docs/models.md] as madvise_free_pte_range(): a swap-cache folio
            # is only made lazyfree once it has left the swap cache. Mainline's present branch
            # has no such check; with the series a PMD-mapped swap-cache THP is the normal result
            # of a read fault on an asynchronous device, and clearing its dirty bit there makes a
            # later reclaim drop it clean and read back stale slot data.
            return True
        return self._madvise_free_present_huge_pmd(mm, r, a, b)

    # ---- MADV_PAGEOUT: mm/madvise.c madvise_cold_or_pageout_pte_range() ------------------------
    def madvise_pageout_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> list[int] | None:
        """madvise_cold_or_pageout_pte_range() (mm/madvise.c): a swap PMD is already out; skip."""
        if mm.pmd_kind[r] == PMD_SWAP:
            return []
        return self._pageout_present_huge_pmd(mm, r, a, b)

    # ---- mremap: mm/huge_memory.c move_huge_pmd() ----------------------------------------------
    def move_huge_pmd(self, mm: MM, ro: int, rn: int, clear_uw: bool) -> None:
        """move_huge_pmd() (mm/huge_memory.c): the entry and its deposited table move;
        [I] move_soft_dirty_pmd() marks a swap PMD soft-dirty (the selftest says it is exercised),
        clear_uffd_wp_pmd() already handles swap PMDs."""
        if mm.pmd_kind[ro] == PMD_SWAP:
            for name in ("pmd_kind", "pmd_swp_off", "pmd_swp_excl", "pmd_sd", "pmd_uw"):
                arr = getattr(mm, name)
                arr[rn] = arr[ro]
            mm.clear_pmd(ro)
            mm.pmd_sd[rn] = True
            if clear_uw:
                mm.pmd_uw[rn] = False
            return
        self._move_present_huge_pmd(mm, ro, rn, clear_uw)

    # ---- clear_refs: fs/proc/task_mmu.c clear_soft_dirty_pmd() ---------------------------------
    def clear_soft_dirty_pmd(self, mm: MM, r: int) -> None:
        """clear_soft_dirty_pmd() (fs/proc/task_mmu.c): [I] the series converts this walker, so a
        swap PMD loses its soft-dirty bit like a swap PTE does."""
        if mm.pmd_kind[r] == PMD_SWAP:
            mm.pmd_sd[r] = False
            return
        self._clear_soft_dirty_present_pmd(mm, r)

    # ---- swapoff: mm/swapfile.c unuse_pmd_range() ----------------------------------------------
    def unuse_pmd_range(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> None:
        """unuse_pmd_range() (mm/swapfile.c): a swap PMD goes to unuse_pmd()."""
        if mm.pmd_kind[r] == PMD_SWAP:
            self.unuse_pmd(mm, vma, r, fail_alloc)

    def unuse_pmd(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> int:
        """unuse_pmd() (mm/swapfile.c, v1 08/13, v2 10/16): bring the whole 2 MiB back under a PMD.

        A cache state other than none-or-one-PMD-folio, a failed PMD-order allocation, or a slot in
        zswap (v7, zswap_may_hold()) splits the entry and lets unuse_pte_range() do it page by
        page (the caller sees a PTE table)."""
        mem, sw = self.mem, self.swap
        base = int(mm.pmd_swp_off[r])
        head = self._pmd_folio_in_swapcache(base)
        if head is None or (head < 0 and (fail_alloc or self.zswap_may_hold(base))):
            self.split_huge_pmd_locked(mm, r)
            return 0
        if head < 0:
            head = mem.alloc_folio(9)  # swapin_alloc_pmd_folio()
            sw.add_to_swap_cache(mem, head, base)
            self.swap_read_folio(head)
        if mem.writeback[head]:
            sw.end_writeback(mem, head)  # folio_wait_writeback()
        excl = bool(mm.pmd_swp_excl[r])
        sd, uw = bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r])
        # [I] as unuse_pte(): old and read-only even when exclusive, SD and UW kept; on an RWP
        # VMA PAGE_NONE with the bit (unuse_pte(), 7.3 mm/swapfile.c:2515-2517), which a
        # read-only PMD with pmd_uw is here (never writable)
        mm.clear_pmd(r, PMD_HUGE)
        mm.pmd_pfn[r] = head
        mm.pmd_sd[r], mm.pmd_uw[r] = sd, uw
        mem.entire_mapcount[head] += 1
        if excl:
            mem.anon_exclusive[head:head + HPAGE_PMD_NR] = True
        mm.swapents -= HPAGE_PMD_NR
        mm.anonpages += HPAGE_PMD_NR
        sw.put(np.arange(base, base + HPAGE_PMD_NR))
        self.folio_free_swap(head)
        self.events.append(("pmd_unuse", mm.pid, r, base))
        return 0

    # ---- UFFDIO_MOVE: mm/huge_memory.c move_pages_huge_pmd() -----------------------------------
    def move_pages_huge_pmd(self, mm: MM, rs: int, rd: int, dst_vma: Vma) -> int | None:
        """move_pages_huge_pmd() (mm/huge_memory.c): a whole swap PMD moves without a split (the
        selftest's uffdio_move). [I] as move_swap_pte(): -EBUSY unless exclusive, soft-dirty set,
        UW and EXCL kept; a cached PMD-sized folio only needs folio_move_anon_rmap() and an index
        update (nothing the model tracks); any other cache state splits (None: PTE path).
        [I] RWP: "Re-arm RWP on the moved swap entry if dst_vma is RWP-registered", as
        move_swap_pte() (7.3 mm/userfaultfd.c:1452) and the present PMD (mm/huge_memory.c:2988)."""
        if mm.pmd_kind[rs] == PMD_SWAP:
            if not mm.pmd_swp_excl[rs]:
                # refused before the destination got a PTE table (legacy's PTE path allocates one
                # with pte_alloc() and then refuses): a later fault there can map a THP (D6-like)
                self.events.append(("uffd_move_refused", mm.pid, rd))
                return EBUSY
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
            # the source PMD is left none where legacy's PTE moves leave an empty table (D6-like)
            self.events.append(("uffd_move_src_none", mm.pid, rs))
            if head >= 0:
                self.events.append(("uffd_move_whole", mm.pid, rd))
            return O.OK
        return self._move_present_huge_pmd_uffd(mm, rs, rd, dst_vma)

    # ---- pagemap / smaps: fs/proc/task_mmu.c pagemap_pmd_range() -------------------------------
    def pagemap_pmd_range(self, mm: MM, r: int, obs) -> None:
        """pagemap_pmd_range() / smaps_pmd_entry() (fs/proc/task_mmu.c): a swap PMD is reported per
        4 KiB subpage with offset base + ((addr & ~PMD_MASK) >> PAGE_SHIFT) (prep 3/6)."""
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            obs.fill_swap_pmd(mm, r, np.arange(base, base + HPAGE_PMD_NR, dtype=np.int32),
                              bool(mm.pmd_sd[r]), bool(mm.pmd_uw[r]), bool(mm.pmd_swp_excl[r]))
            return
        obs.fill_present_pmd(mm, r)

    # ---- MADV_WILLNEED: mm/madvise.c swapin_walk_pmd_entry() -----------------------------------
    def swapin_walk_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        """MADV_WILLNEED on a swap PMD: v7 converts this walker ("swap readahead of a PMD swap
        entry's range" [S2]). [I] the v3 rule, as unuse_pmd(): with no slot of the entry cached,
        a whole-range hint reads one PMD-order folio for the 512 slots into the swap cache
        (swapin_alloc_pmd_folio()); with the entry's PMD-sized folio cached, nothing to do; a
        partial range, any other cache state, or a slot in zswap (v7, zswap_may_hold()) split the
        entry and the PTE walk reads the range's uncached slots one by one. A present THP: as
        legacy, nothing. True: the walk is done with the region."""
        if mm.pmd_kind[r] != PMD_SWAP:
            return True
        base = int(mm.pmd_swp_off[r])
        head = self._pmd_folio_in_swapcache(base)
        if b - a != HPAGE_PMD_NR or head is None or self.zswap_may_hold(base):
            self.split_huge_pmd_locked(mm, r)
            return False
        if head < 0:
            head = self.mem.alloc_folio(9)
            self.swap.add_to_swap_cache(self.mem, head, base)
            self.swap_read_folio(head)
            self.events.append(("pmd_readahead", mm.pid, r, base))
        return True

    # ---- mincore: mm/mincore.c mincore_pte_range() ---------------------------------------------
    def mincore_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> np.ndarray:
        """mincore_pte_range() on a swap PMD: v7 answers per slot [S2] ("mincore looks at single
        slots"), as mincore_swap() does for each swap PTE: slot base + i is resident iff a folio
        caches it. Unchanged 7.3 code would take the swap PMD with pmd_trans_huge_lock()
        (pmd_is_huge() is true for any non-none non-present PMD) and answer 1 for all 512."""
        if mm.pmd_kind[r] == PMD_SWAP:
            base = int(mm.pmd_swp_off[r])
            return self.mincore_swap(np.arange(base + a % HPAGE_PMD_NR, base + (b - 1) % HPAGE_PMD_NR + 1))
        return np.ones(b - a, np.int8)
