"""The swap layer both kernels share unchanged (mm/swapfile.c, mm/swap_state.c, mm/swap_table.h).

This is shared code, so the differential check cannot see a bug in it; it is guarded by the invariants
of models/invariants.py instead. The series' claim is exactly that this layer does not change.

Per slot: a count of page-table references (swap-table era: no SWAP_HAS_CACHE,
docs/kernel-behaviour.md section 0),
the swap cache (the pfn of the page caching the slot, or -1), and the stored copy of the contents.
A slot is free when its count is 0 and it is not cached; a cached slot whose count reached 0 is freed
when its folio leaves the cache.

Allocator (cluster_alloc_swap_entry, simplified but deterministic): 512-slot clusters, slot 0 is the
header, so cluster 0 starts as a non-full order-0 cluster and the first THP lands at 512. Order 9 takes
the lowest free cluster. Order 0 continues in the current order-0 cluster, then the lowest non-full
order-0 cluster, then the lowest free cluster, then any slot. Per-CPU caches and the rotation of the
free list are not modelled (both kernels share the allocator, so its exact choice is not what is tested).
"""

from __future__ import annotations

import numpy as np

from .errors import ModelBug
from .memory import PhysMem
from .ops import HPAGE_PMD_NR

SWAP_CLUSTERS = 24  # 12,288 slots: room for every page of every process (4 x 2048) plus the header
# cluster and fragmentation; a full device only makes pageout fail, as on Linux
SWAP_SLOTS = SWAP_CLUSTERS * HPAGE_PMD_NR
CLUSTER_FREE = -1
FRAGMENT_OFFSET = 300  # where Fragment puts another user's slot in each free cluster


class SwapDevice:
    """One swap device (type 0): swap_info_struct plus its swap table."""

    def __init__(self, sync: bool) -> None:
        self.sync = sync  # SWP_SYNCHRONOUS_IO (zram) vs an asynchronous disk
        self.count = np.zeros(SWAP_SLOTS, dtype=np.int32)
        self.cache = np.full(SWAP_SLOTS, -1, dtype=np.int32)  # pfn of the cached page
        self.data = np.zeros(SWAP_SLOTS, dtype=np.uint32)  # what the device holds for the slot
        self.inflight = np.zeros(SWAP_SLOTS, dtype=np.uint32)  # being written (async writeback)
        # the swap table's zero mark (__swap_table_set_zero, mm/swap_table.h): the slot was
        # written by a zero-filled folio, so nothing is on the device and a read zero-fills
        self.zero = np.zeros(SWAP_SLOTS, dtype=bool)
        # zswap's tree (swap_zswap_tree(), mm/zswap.c) holds the slot's data: zswap_store() took
        # the folio instead of the device. The model keeps the copy in `data` as well, so only
        # which slots are in zswap matters: a large folio cannot be read from zswap
        self.zswap = np.zeros(SWAP_SLOTS, dtype=bool)
        self.used = np.zeros(SWAP_SLOTS, dtype=bool)  # allocated (count > 0 or cached, or foreign)
        self.foreign = np.zeros(SWAP_SLOTS, dtype=bool)  # another user's slot (Fragment)
        self.cluster_order = np.full(SWAP_CLUSTERS, CLUSTER_FREE, dtype=np.int8)
        self.cluster_used = np.zeros(SWAP_CLUSTERS, dtype=np.int32)
        self.cur_cluster = -1  # per-device "current" order-0 cluster
        # which order-9 allocation holds the slot (1, 2, ...; 0 = an order-0 slot or free): set by
        # alloc_slots(9), cleared when the slot is freed, so a THP's slots that are partly freed
        # and reused by order-0 allocations are not taken for that THP. Not kernel state: the
        # real-kernel check (fuzz/kernelcheck.py, rule swap_offsets "structure") compares only
        # slots of one such allocation, since order-0 slots land elsewhere on 7.3 (per-CPU
        # clusters, cluster_alloc_swap_entry(), mm/swapfile.c)
        self.alloc_id = np.zeros(SWAP_SLOTS, dtype=np.int32)
        self._next_alloc_id = 1
        # slot 0: the swap header (setup_swap_map marks it bad)
        self._take(0, 1, order=0)
        self.foreign[0] = True
        self.cur_cluster = 0

    # ---- allocation -----------------------------------------------------------------------------
    def _take(self, base: int, nr: int, order: int) -> None:
        c = base // HPAGE_PMD_NR
        if self.cluster_order[c] == CLUSTER_FREE:
            self.cluster_order[c] = order
        self.used[base:base + nr] = True
        self.cluster_used[c] += nr

    def _release(self, slots: np.ndarray) -> None:
        self.used[slots] = False
        self.alloc_id[slots] = 0
        self.data[slots] = 0
        self.zero[slots] = False
        self.zswap[slots] = False  # swap_range_free() -> zswap_invalidate() (mm/swapfile.c:1324)
        clusters = slots // HPAGE_PMD_NR
        np.subtract.at(self.cluster_used, clusters, 1)
        for c in np.unique(clusters):
            if self.cluster_used[c] == 0:
                self.cluster_order[c] = CLUSTER_FREE
                if self.cur_cluster == c:
                    self.cur_cluster = -1

    def _first_free_in(self, c: int) -> int:
        lo = c * HPAGE_PMD_NR
        free = (~self.used[lo:lo + HPAGE_PMD_NR]).nonzero()[0]
        return lo + int(free[0]) if free.size else -1

    def alloc_slots(self, order: int) -> int:
        """folio_alloc_swap()'s slot search; returns the first slot or -1 (no space)."""
        if order:
            free = (self.cluster_order == CLUSTER_FREE).nonzero()[0]
            if not free.size:
                return -1
            base = int(free[0]) * HPAGE_PMD_NR
            self._take(base, HPAGE_PMD_NR, order)
            self.alloc_id[base:base + HPAGE_PMD_NR] = self._next_alloc_id
            self._next_alloc_id += 1
            return base
        candidates = []
        if self.cur_cluster >= 0:
            candidates.append(self.cur_cluster)
        partial = (self.cluster_order == 0) & (self.cluster_used < HPAGE_PMD_NR)
        candidates += [int(c) for c in partial.nonzero()[0]]
        candidates += [int(c) for c in (self.cluster_order == CLUSTER_FREE).nonzero()[0]]
        candidates += [int(c) for c in (self.cluster_used < HPAGE_PMD_NR).nonzero()[0]]
        for c in candidates:
            slot = self._first_free_in(c)
            if slot >= 0:
                self._take(slot, 1, 0)
                self.cur_cluster = c
                return slot
        return -1

    def alloc_order0_batch(self, n: int) -> np.ndarray:
        """n order-0 allocations at once: the slots n alloc_slots(0) calls would return, in order
        (the current cluster is used up lowest slot first, then the next cluster the same rule
        picks). Fewer than n when the device fills up."""
        out: list[np.ndarray] = []
        need = n
        while need:
            c = self._order0_cluster()
            if c < 0:
                break
            lo = c * HPAGE_PMD_NR
            take = (~self.used[lo:lo + HPAGE_PMD_NR]).nonzero()[0][:need] + lo
            if self.cluster_order[c] == CLUSTER_FREE:
                self.cluster_order[c] = 0
            self.used[take] = True
            self.cluster_used[c] += take.size
            self.cur_cluster = c
            out.append(take)
            need -= take.size
        return np.concatenate(out).astype(np.int32) if out else np.zeros(0, np.int32)

    def _order0_cluster(self) -> int:
        """The cluster alloc_slots(0) would take its next slot from, or -1."""
        if self.cur_cluster >= 0 and self.cluster_used[self.cur_cluster] < HPAGE_PMD_NR:
            return self.cur_cluster
        for mask in ((self.cluster_order == 0) & (self.cluster_used < HPAGE_PMD_NR),
                     self.cluster_order == CLUSTER_FREE, self.cluster_used < HPAGE_PMD_NR):
            c = mask.nonzero()[0]
            if c.size:
                return int(c[0])
        return -1

    def fragment(self) -> None:
        """Another user takes one order-0 slot in every free cluster: no 512-slot cluster remains."""
        for c in (self.cluster_order == CLUSTER_FREE).nonzero()[0]:
            slot = int(c) * HPAGE_PMD_NR + FRAGMENT_OFFSET
            self._take(slot, 1, 0)
            self.foreign[slot] = True

    # ---- counts (folio_dup_swap / folio_put_swap / swap_dup_entry_direct / swap_put_entries) ----
    def dup(self, slots: np.ndarray | slice) -> None:
        """swap_dup_entries: +1 reference per slot (swap-table counts do not overflow here)."""
        if not self.used[slots].all():
            raise ModelBug("dup of a free swap slot")
        self.count[slots] += 1

    def put(self, slots: np.ndarray) -> np.ndarray:
        """swap_put_entries: -1 per slot; slots with no count and no cache are freed.

        Returns the slots whose count reached 0 while still cached (the caller may try to reclaim
        their folio, as free_swap_and_cache_nr does)."""
        slots = np.asarray(slots)
        if (self.count[slots] <= 0).any():
            raise ModelBug(f"swap count underflow at slots {slots[self.count[slots] <= 0][:4]}")
        np.subtract.at(self.count, slots, 1)
        zero = slots[self.count[slots] == 0]
        uncached = zero[self.cache[zero] < 0]
        if uncached.size:
            self._release(np.unique(uncached))
        return zero[self.cache[zero] >= 0]

    # ---- swap cache ------------------------------------------------------------------------------
    def add_to_swap_cache(self, mem: PhysMem, head: int, base: int) -> None:
        nr = mem.nr_pages(head)
        self.cache[base:base + nr] = np.arange(head, head + nr, dtype=np.int32)
        mem.swap[head:head + nr] = np.arange(base, base + nr, dtype=np.int32)

    def delete_from_swap_cache(self, mem: PhysMem, head: int) -> None:
        """__swap_cache_del_folio(): uncache every slot; slots with count 0 become free."""
        nr = mem.nr_pages(head)
        slots = mem.swap[head:head + nr].copy()
        if (slots < 0).any():
            raise ModelBug("delete of a folio not in the swap cache")
        self.cache[slots] = -1
        mem.swap[head:head + nr] = -1
        dead = slots[self.count[slots] == 0]
        if dead.size:
            self._release(dead)

    def delete_order0_from_swap_cache(self, mem: PhysMem, heads: np.ndarray) -> None:
        """delete_from_swap_cache() of many order-0 folios at once."""
        slots = mem.swap[heads].copy()
        self.cache[slots] = -1
        mem.swap[heads] = -1
        dead = slots[self.count[slots] == 0]
        if dead.size:
            self._release(dead)

    def cached_head(self, mem: PhysMem, slot: int) -> int:
        """swap_cache_get_folio(): head pfn of the folio caching `slot`, or -1."""
        pfn = int(self.cache[slot])
        return int(mem.head[pfn]) if pfn >= 0 else -1

    def swap_zeromap_folio_set(self, mem: PhysMem, head: int) -> None:
        """swap_zeromap_folio_set() (mm/page_io.c): a zero-filled folio is marked, not written."""
        nr = mem.nr_pages(head)
        slots = mem.swap[head:head + nr]
        self.zero[slots] = True
        self.data[slots] = 0
        mem.dirty[head] = False

    def swap_read_zeromap(self, mem: PhysMem, head: int) -> bool:
        """swap_read_folio_zeromap(): True if the folio's slots are zero-marked (it is then
        zero-filled, no I/O). A large folio partly in the zeromap is an I/O error in the kernel
        (do_swap_page() SIGBUS); no path of either model reads one (a large folio's slots are
        written, and so marked, together), so the model says so instead of guessing."""
        nr = mem.nr_pages(head)
        zero = self.zero[mem.swap[head:head + nr]]
        if zero.any() and not zero.all():
            raise ModelBug("swap-in of a large folio partly in the zeromap")
        if zero[0]:
            mem.data[head:head + nr] = 0
            return True
        return False

    def swap_writeout(self, mem: PhysMem, head: int, zswap: bool = False) -> None:
        """The folio's contents reach the device (writeback completed), or with `zswap` zswap:
        zswap_store() (mm/zswap.c:1488) took the folio, every page of it, a large one too
        (swap_writeout(), mm/page_io.c:238), so there was no device I/O. Either way the folio is
        clean and not under writeback. zswap's store is taken to succeed (its pool limit is far
        away); a device write leaves zswap holding nothing for the slots (zswap_store() failed
        or zswap is off: `check_old`, mm/zswap.c:1550)."""
        nr = mem.nr_pages(head)
        slots = mem.swap[head:head + nr]
        self.zero[slots] = False  # swap_zeromap_folio_clear()
        self.zswap[slots] = zswap
        self.data[slots] = mem.data[head:head + nr]
        mem.dirty[head] = False
        mem.writeback[head] = False

    def zswap_load(self, mem: PhysMem, heads: np.ndarray) -> np.ndarray:
        """zswap_load() (mm/zswap.c:1594) of order-0 folios just added to the swap cache: those
        whose slot zswap holds are filled from it, marked dirty and the zswap entry erased
        (`folio_mark_dirty(folio); xa_erase(tree, offset)`, :1639). Returns the mask of them
        (no device read, no PSWPIN)."""
        slots = mem.swap[heads]
        hit = self.zswap[slots]
        if hit.any():
            mem.data[heads[hit]] = self.data[slots[hit]]
            mem.dirty[heads[hit]] = True
            self.zswap[slots[hit]] = False
        return hit

    def free_slot_mask(self) -> np.ndarray:
        return ~self.used

    # ---- asynchronous writeback (a disk): the device copy is valid only once writeback ends ----
    def start_writeback(self, mem: PhysMem, head: int) -> None:
        nr = mem.nr_pages(head)
        slots = mem.swap[head:head + nr]
        self.zero[slots] = False  # swap_zeromap_folio_clear()
        self.zswap[slots] = False  # zswap_store() failed or is off: `check_old`
        self.inflight[slots] = mem.data[head:head + nr]
        mem.dirty[head] = False
        mem.writeback[head] = True

    def end_writeback(self, mem: PhysMem, head: int) -> None:
        """folio_end_writeback(): the snapshot taken at writeback start reaches the device."""
        nr = mem.nr_pages(head)
        slots = mem.swap[head:head + nr]
        self.data[slots] = self.inflight[slots]
        mem.writeback[head] = False
