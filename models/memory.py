"""Physical pages and folios, shared unchanged by both kernels (mm/page_alloc.c, include/linux/mm.h).

Every page is a pfn in one numpy array, so a page table entry holds a pfn exactly as the kernel's does
and gathering the contents of 2 MiB is one fancy-index. Folio metadata is kept on the head pfn.

Simplified: no zones, no LRU lists, no memcg charge (an allocation only fails when an op injects the
failure), no GUP pins (so `folio_maybe_dma_pinned` is always false and refcount is derived from the
mapcounts plus the swap cache's references). Page contents are one 32-bit value per 4 KiB page.
"""

from __future__ import annotations

import numpy as np

from .errors import ModelBug
from .ops import HPAGE_PMD_NR

ZERO_PFN = 0  # the shared zero page: never anon, never counted in any mapcount
CAPACITY_BLOCKS = 96  # 2 MiB blocks of "RAM"; bounds in README: enough for every reachable state


class PhysMem:
    """Pages and folios; `alloc_folio` / `folio_put` model the page allocator and the last put."""

    def __init__(self) -> None:
        n = CAPACITY_BLOCKS * HPAGE_PMD_NR
        self.data = np.zeros(n, dtype=np.uint32)
        self.anon_exclusive = np.zeros(n, dtype=bool)  # PageAnonExclusive, per page
        self.mapcount = np.zeros(n, dtype=np.int32)  # PTE mappings of this page
        self.head = np.full(n, -1, dtype=np.int32)  # head pfn of the folio holding this page, -1 free
        self.order = np.zeros(n, dtype=np.int8)  # on heads
        self.entire_mapcount = np.zeros(n, dtype=np.int32)  # PMD mappings, on heads
        self.swap = np.full(n, -1, dtype=np.int32)  # folio->swap (slot of this page) while in swap cache
        self.dirty = np.zeros(n, dtype=bool)  # on heads
        self.writeback = np.zeros(n, dtype=bool)  # on heads
        self.lazyfree = np.zeros(n, dtype=bool)  # on heads: MADV_FREE'd (anon, !swapbacked)
        # on heads: folio_test_partially_mapped(), on the deferred split queue since an rmap
        # removal left it partly mapped; sticky until the folio is split or freed
        self.partially_mapped = np.zeros(n, dtype=bool)
        # Blocks are handed out lowest first; order-0 pages come from blocks broken up for them.
        self._free_blocks = list(range(CAPACITY_BLOCKS - 1, 0, -1))  # block 0 holds the zero page
        self._free_small: list[int] = []
        self.head[ZERO_PFN] = ZERO_PFN
        self.high_water = HPAGE_PMD_NR  # pfns at or above this were never handed out

    # ---- allocation ------------------------------------------------------------------------
    def alloc_folio(self, order: int) -> int:
        """folio_alloc(): a zeroed folio of order 0 or 9; returns its head pfn."""
        if order == 0:
            if not self._free_small:
                if not self._free_blocks:
                    raise ModelBug("model RAM exhausted: raise CAPACITY_BLOCKS")
                b = self._take_block()
                self._free_small.extend(range(b + HPAGE_PMD_NR - 1, b - 1, -1))
            pfn = self._free_small.pop()
            nr = 1
        else:
            if not self._free_blocks:
                raise ModelBug("model RAM exhausted: raise CAPACITY_BLOCKS")
            pfn = self._take_block()
            nr = HPAGE_PMD_NR
        sl = slice(pfn, pfn + nr)
        self.head[sl] = pfn
        self.data[sl] = 0
        self.anon_exclusive[sl] = False
        self.mapcount[sl] = 0
        self.swap[sl] = -1
        self.order[pfn] = order
        self.entire_mapcount[pfn] = 0
        self.dirty[pfn] = False
        self.writeback[pfn] = False
        self.lazyfree[pfn] = False
        self.partially_mapped[pfn] = False
        return pfn

    def _take_block(self) -> int:
        b = self._free_blocks.pop() * HPAGE_PMD_NR
        self.high_water = max(self.high_water, b + HPAGE_PMD_NR)
        return b

    def alloc_order0_batch(self, n: int) -> np.ndarray:
        """n order-0 folios at once (the same pfns n alloc_folio(0) calls would give)."""
        while len(self._free_small) < n:
            if not self._free_blocks:
                raise ModelBug("model RAM exhausted: raise CAPACITY_BLOCKS")
            b = self._take_block()
            self._free_small[:0] = range(b + HPAGE_PMD_NR - 1, b - 1, -1)
        pfns = np.array(self._free_small[-n:][::-1], dtype=np.int32)
        del self._free_small[-n:]
        self.head[pfns] = pfns
        self.data[pfns] = 0
        self.anon_exclusive[pfns] = False
        self.mapcount[pfns] = 0
        self.swap[pfns] = -1
        self.order[pfns] = 0
        self.entire_mapcount[pfns] = 0
        self.dirty[pfns] = False
        self.writeback[pfns] = False
        self.lazyfree[pfns] = False
        self.partially_mapped[pfns] = False
        return pfns

    def nr_pages(self, head: int) -> int:
        return 1 << int(self.order[head])

    def free_folio(self, head: int) -> None:
        """The last reference is gone: give the pages back (free_unref_folios)."""
        nr = self.nr_pages(head)
        self.head[head:head + nr] = -1
        if nr == HPAGE_PMD_NR:
            self._free_blocks.append(head // HPAGE_PMD_NR)
        else:
            self._free_small.append(head)

    # ---- derived counts -------------------------------------------------------------------------
    def folio_mapcount(self, head: int) -> int:
        """folio_mapcount(): PTE mappings of all pages plus PMD mappings (a PMD counts once)."""
        nr = self.nr_pages(head)
        return int(self.mapcount[head:head + nr].sum()) + int(self.entire_mapcount[head])

    def folio_mapped(self, head: int) -> bool:
        nr = self.nr_pages(head)
        return bool(self.entire_mapcount[head]) or bool(self.mapcount[head:head + nr].any())

    def in_swapcache(self, head: int) -> bool:
        return bool(self.swap[head] >= 0)

    def folio_ref_count(self, head: int) -> int:
        """folio_ref_count() with no pins: one per mapping, one per page the swap cache holds."""
        nr = self.nr_pages(head)
        return self.folio_mapcount(head) + (nr if self.in_swapcache(head) else 0)

    # ---- split ---------------------------------------------------------------------------------
    def split_folio_to_order0(self, head: int) -> None:
        """__split_folio_to_order(): every page becomes its own order-0 folio.

        The caller has already turned every PMD mapping into PTE mappings (entire_mapcount == 0).
        Dirty, writeback, lazyfree and each page's swap slot are inherited by every new folio."""
        if self.entire_mapcount[head]:
            raise ModelBug("split of a PMD-mapped folio")
        sl = slice(head, head + HPAGE_PMD_NR)
        self.head[sl] = np.arange(head, head + HPAGE_PMD_NR, dtype=np.int32)
        self.order[sl] = 0
        self.entire_mapcount[sl] = 0
        self.dirty[sl] = self.dirty[head]
        self.writeback[sl] = self.writeback[head]
        self.lazyfree[sl] = self.lazyfree[head]
        self.partially_mapped[sl] = False  # __folio_split() takes it off the deferred queue

    def live_folios(self) -> np.ndarray:
        """Head pfns of every allocated folio except the zero page."""
        idx = (self.head == np.arange(self.head.size)).nonzero()[0]
        return idx[idx != ZERO_PFN]
