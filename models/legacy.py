"""The legacy kernel: reclaim splits a PMD-mapped anonymous THP into 512 PTE swap entries.

Models the series' base tree, Linux 7.3 (swap-table era; docs/kernel-behaviour.md sections 0-1,
LEGACY column; docs/models.md "Following Linux 7.3"). A PMD here is none, a PTE table, or a present
THP: there is no PMD swap entry, so every
`is_swap_pmd()` branch of mm/huge_memory.c is unreachable and absent.

This file holds only the PMD-level functions, in the same order and with the same signatures as
models/pmd_swap.py, so `diff models/legacy.py models/pmd_swap.py` shows the series. Everything both
kernels share unchanged (PTE level, present-THP bodies, VMAs, reclaim's folio steps, the swap layer)
lives in models/mm.py and models/swap.py.
"""

from __future__ import annotations

import numpy as np

from . import ops as O
from .mm import MM, PMD_HUGE, PMD_NONE, Kernel, Vma


class LegacyKernel(Kernel):
    name = "legacy"

    # ---- swap-out: mm/rmap.c try_to_unmap_one() --------------------------------------------------
    def try_to_unmap_one_pmd(self, mm: MM, r: int, head: int) -> None:
        """try_to_unmap_one() (mm/rmap.c) on a PMD mapping: TTU_SPLIT_HUGE_PMD splits it.

        The walk then goes on over the 512 PTEs (the caller's PTE part), each getting a swap entry."""
        self.split_huge_pmd_locked(mm, r)

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

    # ---- fork: mm/huge_memory.c copy_huge_pmd() ------------------------------------------------
    def copy_huge_pmd(self, dst: MM, src: MM, r: int, dst_vma: Vma) -> None:
        """copy_huge_pmd() (mm/huge_memory.c): present THP only."""
        self._copy_present_huge_pmd(dst, src, r, dst_vma)

    # ---- zap: mm/huge_memory.c zap_huge_pmd() --------------------------------------------------
    def zap_huge_pmd(self, mm: MM, r: int) -> None:
        """zap_huge_pmd() (mm/huge_memory.c): present THP only."""
        self._zap_present_huge_pmd(mm, r)

    # ---- mprotect / uffd-wp: mm/huge_memory.c change_huge_pmd() --------------------------------
    def change_huge_pmd(self, mm: MM, vma: Vma, r: int, mode: str) -> None:
        """change_huge_pmd() (mm/huge_memory.c): present THP only."""
        self._change_present_huge_pmd(mm, vma, r, mode)

    # ---- split: mm/huge_memory.c __split_huge_pmd_locked() -------------------------------------
    def split_huge_pmd_locked(self, mm: MM, r: int) -> None:
        """__split_huge_pmd_locked() (mm/huge_memory.c): present THP only."""
        self._split_present_huge_pmd(mm, r)

    # ---- MADV_FREE: mm/huge_memory.c madvise_free_huge_pmd() -----------------------------------
    def madvise_free_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        """madvise_free_huge_pmd() (mm/huge_memory.c): present THP only."""
        return self._madvise_free_present_huge_pmd(mm, r, a, b)

    # ---- MADV_PAGEOUT: mm/madvise.c madvise_cold_or_pageout_pte_range() ------------------------
    def madvise_pageout_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> list[int] | None:
        """madvise_cold_or_pageout_pte_range() (mm/madvise.c), pmd_trans_huge() part."""
        return self._pageout_present_huge_pmd(mm, r, a, b)

    # ---- mremap: mm/huge_memory.c move_huge_pmd() ----------------------------------------------
    def move_huge_pmd(self, mm: MM, ro: int, rn: int, clear_uw: bool) -> None:
        """move_huge_pmd() (mm/huge_memory.c): present THP only."""
        self._move_present_huge_pmd(mm, ro, rn, clear_uw)

    # ---- clear_refs: fs/proc/task_mmu.c clear_soft_dirty_pmd() ---------------------------------
    def clear_soft_dirty_pmd(self, mm: MM, r: int) -> None:
        """clear_soft_dirty_pmd() (fs/proc/task_mmu.c): present THP only."""
        self._clear_soft_dirty_present_pmd(mm, r)

    # ---- swapoff: mm/swapfile.c unuse_pmd_range() ----------------------------------------------
    def unuse_pmd_range(self, mm: MM, vma: Vma, r: int, fail_alloc: bool) -> None:
        """unuse_pmd_range() (mm/swapfile.c): a present THP holds no swap entry; skip it.

        `fail_alloc` is unused: legacy swapoff makes no PMD-order allocation."""
        return None

    # ---- UFFDIO_MOVE: mm/huge_memory.c move_pages_huge_pmd() -----------------------------------
    def move_pages_huge_pmd(self, mm: MM, rs: int, rd: int, dst_vma: Vma) -> int:
        """move_pages_huge_pmd() (mm/huge_memory.c): present THP only."""
        return self._move_present_huge_pmd_uffd(mm, rs, rd, dst_vma)

    # ---- pagemap / smaps: fs/proc/task_mmu.c pagemap_pmd_range() -------------------------------
    def pagemap_pmd_range(self, mm: MM, r: int, obs) -> None:
        """pagemap_pmd_range() / smaps_pmd_entry() (fs/proc/task_mmu.c): present THP only."""
        obs.fill_present_pmd(mm, r)

    # ---- MADV_WILLNEED: mm/madvise.c swapin_walk_pmd_entry() -----------------------------------
    def swapin_walk_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> bool:
        """swapin_walk_pmd_entry() (7.3 mm/madvise.c:196) on a present THP: pte_offset_map_lock()
        finds no PTE table (:211), nothing is read. True: the walk is done with the region."""
        return True

    # ---- mincore: mm/mincore.c mincore_pte_range() ---------------------------------------------
    def mincore_huge_pmd(self, mm: MM, r: int, a: int, b: int) -> np.ndarray:
        """mincore_pte_range() (7.3 mm/mincore.c:172): pmd_trans_huge_lock() takes a present THP,
        every page is resident."""
        return np.ones(b - a, np.int8)
