"""The op-sequence generator, steered toward the states the series changes: the random engine
draws its decisions from a seeded PRNG, the atheris engine from libFuzzer's bytes (fuzz.choices).

It keeps a light shadow of the processes (which pids exist, which ranges are mapped, which regions
were filled or paged out), so most ops it emits apply to something: PMD-aligned THP mmaps first,
whole-region writes, pageout of whole regions, evict, forks after pageout, faults on swapped pages,
partial ranges that cross PMD boundaries, uffd register + wp, aligned and unaligned mremap, and now
and then an environment knob or a deliberately invalid op (to exercise the error returns). The
shadow is approximate (it does not model the kernels), which is fine: it only steers.

Deterministic: the same seed (or the same bytes) gives the same ops.
"""

from __future__ import annotations

import bisect
import random

from pmdswap_fuzz.models import ops as O

from .decode import decode

__all__ = ["generate", "generate_from_choices", "MOVES"]

P = O.HPAGE_PMD_NR
R = O.NR_REGIONS


class _Shadow:
    """Which pids exist and what each has mapped / filled / paged out (approximate)."""

    def __init__(self) -> None:
        self.maps: dict[int, list[list[int]]] = {0: []}  # pid -> [[lo, hi), ...]
        self.filled: dict[int, set[int]] = {0: set()}  # regions written
        self.swapped: dict[int, set[int]] = {0: set()}  # regions paged out
        self.uffd: dict[int, list[tuple[int, int]]] = {0: []}
        self.swap_on = True
        self.paged_out = False  # since the last evict

    def free_at(self, pid: int, lo: int, hi: int) -> bool:
        return all(hi <= a or b <= lo for a, b in self.maps[pid])

    def add(self, pid: int, lo: int, hi: int) -> None:
        if hi <= O.VA_PAGES and self.free_at(pid, lo, hi):
            self.maps[pid].append([lo, hi])

    def remove(self, pid: int, lo: int, hi: int) -> None:
        out = []
        for a, b in self.maps[pid]:
            if a < lo:
                out.append([a, min(b, lo)])
            if b > hi:
                out.append([max(a, hi), b])
        self.maps[pid] = out
        for r in range(lo // P, (hi - 1) // P + 1):
            self.filled[pid].discard(r)
            self.swapped[pid].discard(r)

    def fork(self, pid: int) -> None:
        child = next((p for p in range(O.MAX_PROCS) if p not in self.maps), None)
        if child is None:
            return
        self.maps[child] = [list(m) for m in self.maps[pid]]
        self.filled[child] = set(self.filled[pid])
        self.swapped[child] = set(self.swapped[pid])
        self.uffd[child] = []

    def exit(self, pid: int) -> None:
        for d in (self.maps, self.filled, self.swapped, self.uffd):
            d.pop(pid, None)


class _Gen:
    def __init__(self, rnd: random.Random) -> None:
        self.r = rnd
        self.s = _Shadow()
        self.out: list[O.Op] = []

    # ---- random helpers ------------------------------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pid(self) -> int:
        pids = list(self.s.maps)
        if not pids or self.chance(0.03):
            return self.r.randrange(O.MAX_PROCS)  # maybe a pid that does not exist
        return self.r.choice(pids)

    def mapping(self, pid: int) -> tuple[int, int] | None:
        m = self.s.maps.get(pid)
        return tuple(self.r.choice(m)) if m else None

    def region_in(self, pid: int) -> tuple[int, int]:
        """A whole 2 MiB region inside a mapping of pid if there is one, else any region."""
        m = self.mapping(pid)
        if m:
            lo, hi = m
            regions = [r for r in range(lo // P, hi // P + 1) if r * P >= lo and (r + 1) * P <= hi]
            if regions:
                r = self.r.choice(regions)
                n = 1
                while r + n < R and (r + n) in regions and self.chance(0.25):
                    n += 1
                return r * P, n * P
        return self.r.randrange(R) * P, P

    def partial_in(self, pid: int) -> tuple[int, int]:
        """A range that usually crosses a PMD boundary, inside a mapping when possible."""
        m = self.mapping(pid)
        lo, hi = m if m else (0, O.VA_PAGES)
        inner = [b * P for b in range(lo // P + 1, (hi - 1) // P + 1)]  # boundaries inside
        if inner and self.chance(0.7):
            b = self.r.choice(inner)
            start = self.r.randint(max(lo, b - P + 1), b - 1)
            end = self.r.randint(b + 1, min(hi, b + P))
        else:
            start = self.r.randint(lo, hi - 1)
            end = self.r.randint(start + 1, min(hi, start + 2 * P))
        return start, end - start

    def swapped_region(self, pid: int) -> int | None:
        sw = sorted(self.s.swapped.get(pid, ()))
        return self.r.choice(sw) if sw else None

    def partial_swapped(self, pid: int) -> tuple[int, int]:
        """A range that cuts into a paged-out region (splitting a PMD swap entry), if there is one."""
        r = self.swapped_region(pid)
        if r is None or self.chance(0.3):
            return self.partial_in(pid)
        return self.partial_of_region(r)

    def partial_of_region(self, r: int) -> tuple[int, int]:
        """A range that covers region r in part: its head, its tail (maybe into the next region),
        or strictly inside it."""
        base = r * P
        kind = self.r.randrange(3)
        if kind == 0:  # head of the region
            return base, self.r.randint(1, P - 1)
        if kind == 1:  # tail, maybe crossing into the next region
            start = base + self.r.randint(1, P - 1)
            return start, min(O.VA_PAGES - start, self.r.randint(1, P))
        start = base + self.r.randint(1, P - 2)  # strictly inside
        return start, self.r.randint(1, base + P - start - 1)

    def page_in(self, pid: int, prefer_swapped: bool = True) -> int:
        sw = sorted(self.s.swapped.get(pid, ()))
        if sw and prefer_swapped:
            return self.r.choice(sw) * P + self._subpage()
        m = self.mapping(pid)
        if m:
            return self.r.randint(m[0], m[1] - 1)
        return self.r.randrange(O.VA_PAGES)

    def _subpage(self) -> int:
        return self.r.choice((0, 1, P // 2, P - 1, self.r.randrange(P)))

    def value(self) -> int:
        return self.r.randint(1, 0xFF) if self.chance(0.9) else self.r.randint(0, O.MAX_VALUE)

    def emit(self, op: O.Op) -> None:
        self.out.append(op)

    # ---- moves: each emits one or a few ops and updates the shadow -----------------------------
    def mmap_thp(self) -> None:
        pid = self.pid()
        if pid not in self.s.maps:
            return self.emit(O.Mmap(pid, 0, P))
        free = [r for r in range(R) if self.s.free_at(pid, r * P, (r + 1) * P)]
        r = self.r.choice(free) if free else self.r.randrange(R)
        n = 1
        while r + n < R and (r + n) in free and self.chance(0.4):
            n += 1
        huge = self.chance(0.9)
        self.emit(O.Mmap(pid, r * P, n * P, hugepage=huge))
        self.s.add(pid, r * P, (r + n) * P)

    def mmap_odd(self) -> None:
        pid = self.pid()
        start = self.r.randrange(O.VA_PAGES)
        n = self.r.randint(1, min(O.VA_PAGES - start, 2 * P))
        self.emit(O.Mmap(pid, start, n, hugepage=self.chance(0.7)))
        if pid in self.s.maps:
            self.s.add(pid, start, start + n)

    def write_region(self) -> None:
        pid = self.pid()
        start, n = self.region_in(pid)
        self.emit(O.Write(pid, start, n, self.value(), fail_alloc=self.chance(0.05)))
        if pid in self.s.filled:
            self.s.filled[pid].update(range(start // P, (start + n) // P))
            self.s.swapped[pid].difference_update(range(start // P, (start + n) // P))

    def write_partial(self) -> None:
        pid = self.pid()
        start, n = self.partial_in(pid)
        self.emit(O.Write(pid, start, n, self.value(), fail_alloc=self.chance(0.05)))

    def pageout_region(self) -> None:
        pid = self.pid()
        filled = sorted(self.s.filled.get(pid, ()))
        if filled and self.chance(0.85):
            r = self.r.choice(filled)
            start, n = r * P, P
        else:
            start, n = self.region_in(pid)
        self.emit(O.Pageout(pid, start, n))
        self.s.paged_out = True
        if pid in self.s.swapped:
            self.s.swapped[pid].update(range(start // P, (start + n) // P))

    def pageout_partial(self) -> None:
        pid = self.pid()
        start, n = self.partial_in(pid)
        self.emit(O.Pageout(pid, start, n))
        self.s.paged_out = True

    def evict(self) -> None:
        self.emit(O.Evict())
        self.s.paged_out = False

    def fork(self) -> None:
        pid = self.pid()
        self.emit(O.Fork(pid, fail_alloc=self.chance(0.05)))
        if pid in self.s.maps:
            self.s.fork(pid)

    def fault(self) -> None:
        pid = self.pid()
        self.emit(O.Fault(pid, self.page_in(pid), write=self.chance(0.6),
                          fail_alloc=self.chance(0.1)))

    def swap_cycle(self) -> None:
        """write a region, page it out, maybe evict, maybe fork, then fault on it."""
        pid = self.pid()
        start, n = self.region_in(pid)
        self.emit(O.Write(pid, start, n, self.value()))
        self.emit(O.Pageout(pid, start, n))
        if self.chance(0.6):
            self.emit(O.Evict())
        if self.chance(0.4):
            self.emit(O.Fork(pid))
            if pid in self.s.maps:
                self.s.fork(pid)
        if pid in self.s.swapped:
            self.s.swapped[pid].update(range(start // P, (start + n) // P))
        if self.chance(0.8):
            who = self.pid()
            self.emit(O.Fault(who, start + self._subpage(), write=self.chance(0.6),
                              fail_alloc=self.chance(0.15)))
            if self.chance(0.5):  # the other side of a fork reads what it should
                self.emit(O.Fault(self.pid(), start + self._subpage(), write=False))

    def munmap_partial(self) -> None:
        pid = self.pid()
        start, n = self.partial_swapped(pid) if self.chance(0.7) else self.region_in(pid)
        self.emit(O.Munmap(pid, start, n))
        if pid in self.s.maps:
            self.s.remove(pid, start, start + n)

    def mprotect_partial(self) -> None:
        pid = self.pid()
        start, n = self.partial_swapped(pid) if self.chance(0.6) else self.region_in(pid)
        prot = self.r.choice((O.PROT_NONE, O.PROT_READ, O.PROT_RW, O.PROT_RW))
        self.emit(O.Mprotect(pid, start, n, prot))

    def _zap_target(self, pid: int) -> tuple[int, int]:
        """A whole paged-out region, a range cutting into one, or any region."""
        r = self.swapped_region(pid)
        if r is not None and self.chance(0.4):
            return r * P, P
        return self.partial_swapped(pid) if self.chance(0.5) else self.region_in(pid)

    def dontneed(self) -> None:
        pid = self.pid()
        self.emit(O.Dontneed(pid, *self._zap_target(pid)))

    def free(self) -> None:
        pid = self.pid()
        self.emit(O.Free(pid, *self._zap_target(pid)))

    def willneed(self) -> None:
        """MADV_WILLNEED of a swapped range, then often mincore of it and a fault into it."""
        pid = self.pid()
        start, n = self._zap_target(pid)
        self.emit(O.Willneed(pid, start, n))
        if self.chance(0.6):
            self.emit(O.Mincore(pid, start, n))
        if self.chance(0.4):
            self.emit(O.Fault(pid, start + self.r.randrange(n), write=self.chance(0.5)))

    def mixed_cache_cycle(self) -> None:
        """Reach a PMD swap entry over a mixed swap cache (Lance Yang's case, v3 rule): page a THP
        out, fork, evict, the child reads it back (the folio stays cached), split_thp splits it,
        the child pages part of it out again; then the parent's entry sees some slots cached by
        small folios and some not. Then one of the consumers the v3 rule governs."""
        pid = self.pid()
        start, _ = self.region_in(pid)
        self.emit(O.Write(pid, start, P, self.value()))
        self.emit(O.Pageout(pid, start, P))
        self.emit(O.Fork(pid))
        child = next((p for p in range(O.MAX_PROCS) if p not in self.s.maps), None)
        if pid in self.s.maps:
            self.s.fork(pid)
        if child is None:
            return
        self.emit(O.Evict())  # writeback ends, the cache empties: a folio under writeback cannot split
        self.emit(O.Fault(child, start + self._subpage(), write=False))
        self.emit(O.SplitThp())
        a = self.r.randrange(P - 1)
        self.emit(O.Pageout(child, start + a, self.r.randint(1, P - a)))
        k = self.r.randrange(6)
        if k == 0:
            self.emit(O.Fault(pid, start + self._subpage(), write=self.chance(0.5)))
        elif k == 1:
            self.emit(O.Willneed(pid, start, P))
        elif k == 2:
            a = self.r.randrange(P) if self.chance(0.5) else 0
            self.emit(O.Mincore(pid, start + a, P - a))
        elif k == 3:
            self.emit(O.Free(pid, start, P))
        elif k == 4:
            self.emit(O.Swapoff())
            self.emit(O.Swapon(sync=False))
        else:
            dst = self.r.randrange(R) * P
            self.emit(O.Mmap(pid, dst, P, hugepage=True))
            self.emit(O.UffdRegister(pid, dst, P))
            self.emit(O.UffdMove(pid, start, dst, P))
        if self.chance(0.7):
            self.emit(O.Fault(pid, start + self._subpage(), write=False))

    def zswap_cycle(self) -> None:
        """v7's zswap range rule: with zswap on, a THP's pageout leaves a PMD swap entry whose
        slots zswap holds (the folio leaves the swap cache at once); then one of the readers that
        must split it instead of reading it whole (fault, MADV_WILLNEED, swapoff), or mincore."""
        pid = self.pid()
        start, _ = self.region_in(pid)
        self.emit(O.ZswapEnable())
        self.emit(O.Write(pid, start, P, self.value()))
        self.emit(O.Pageout(pid, start, P))
        self.s.paged_out = True
        if pid in self.s.swapped:
            self.s.swapped[pid].add(start // P)
        k = self.r.randrange(4)
        if k == 0:
            self.emit(O.Fault(pid, start + self._subpage(), write=self.chance(0.5)))
        elif k == 1:
            self.emit(O.Willneed(pid, start, P))
        elif k == 2:
            self.emit(O.Swapoff())
            self.emit(O.Swapon(sync=self.chance(0.5)))
            for swapped in self.s.swapped.values():
                swapped.clear()
        else:
            self.emit(O.Mincore(pid, start, P))
        if self.chance(0.5):
            self.emit(O.Fault(pid, start + self._subpage(), write=False))

    def mincore(self) -> None:
        pid = self.pid()
        m = self.mapping(pid)
        if m and self.chance(0.4):
            start, n = m[0], m[1] - m[0]
        else:
            start, n = self._zap_target(pid)
        self.emit(O.Mincore(pid, start, n))

    def cold(self) -> None:
        """MADV_COLD of part of a filled region (its THP split as by MADV_PAGEOUT) or of a
        swapped range; then often a pageout of the whole region, so the split shows in what
        reclaim writes and how the region comes back."""
        pid = self.pid()
        filled = sorted(self.s.filled.get(pid, ()))
        if filled and self.chance(0.6):
            r = self.r.choice(filled)
            start, n = self.partial_of_region(r)
        else:
            start, n = self._zap_target(pid)
        self.emit(O.Cold(pid, start, n))
        if self.chance(0.5):
            self.emit(O.Pageout(pid, start - start % P, P))
            self.s.paged_out = True

    def mremap(self) -> None:
        pid = self.pid()
        r = self.swapped_region(pid)
        if r is not None and self.chance(0.5):
            start, n = (r * P, P) if self.chance(0.7) else self.partial_swapped(pid)
        elif self.chance(0.6):
            start, n = self.region_in(pid)
        else:
            start, n = self.partial_in(pid)
        if self.chance(0.6):
            dst = self.r.randrange(R) * P
        else:
            dst = self.r.randrange(O.VA_PAGES)
        dst = min(dst, O.VA_PAGES - n)
        self.emit(O.MremapMove(pid, start, n, dst))
        if pid in self.s.maps and (dst + n <= start or start + n <= dst):
            self.s.remove(pid, start, start + n)
            self.s.remove(pid, dst, dst + n)
            self.s.add(pid, dst, dst + n)

    def mremap_shrink(self) -> None:
        pid = self.pid()
        m = self.mapping(pid)
        start, hi = m if m else (0, P)
        n = hi - start
        new = self.r.randint(1, n) if n > 1 and self.chance(0.8) else self.r.randint(1, O.VA_PAGES)
        self.emit(O.MremapShrink(pid, start, n, new))
        if m and new < n:
            self.s.remove(pid, start + new, hi)

    def uffd(self) -> None:
        pid = self.pid()
        start, n = self.region_in(pid) if self.chance(0.6) else self.partial_in(pid)
        self.emit(O.UffdRegister(pid, start, n))
        if pid in self.s.uffd:
            self.s.uffd[pid].append((start, n))
        self.emit(O.UffdWp(pid, start, n, enable=True))
        if self.chance(0.3):
            self.fault()

    def uffd_wp(self) -> None:
        pid = self.pid()
        regs = self.s.uffd.get(pid)
        start, n = self.r.choice(regs) if regs else self.region_in(pid)
        if self.chance(0.3):
            start, n = start + self.r.randrange(n), 1
        elif self.chance(0.3):
            start, n = self.partial_swapped(pid)
        self.emit(O.UffdWp(pid, start, n, enable=self.chance(0.5)))

    def uffd_move(self) -> None:
        pid = self.pid()
        r = self.swapped_region(pid)
        if r is not None and self.chance(0.6):
            src, n = r * P, P
        else:
            src, n = self.region_in(pid) if self.chance(0.6) else self.partial_in(pid)
        regs = self.s.uffd.get(pid)
        if regs and self.chance(0.8):
            dst = self.r.choice(regs)[0]
        else:
            dst = self.r.randrange(R) * P
        dst = min(dst, O.VA_PAGES - n)
        self.emit(O.UffdMove(pid, src, dst, n))

    def clear_refs(self) -> None:
        self.emit(O.ClearRefs(self.pid()))

    # ---- chains: the orders in which the series' paths meet -----------------------------------
    def wp_then_swap(self) -> None:
        """uffd-wp a filled region, page it out, then fork / split it / fault on it."""
        pid = self.pid()
        start, n = self.region_in(pid)
        self.emit(O.Write(pid, start, n, self.value()))
        self.emit(O.UffdRegister(pid, start, n))
        self.emit(O.UffdWp(pid, start, n, enable=True))
        self.emit(O.Pageout(pid, start, n))
        if pid in self.s.swapped:
            self.s.swapped[pid].update(range(start // P, (start + n) // P))
        follow = self.r.randrange(5)
        if follow == 0:
            self.fork()
        elif follow == 1:
            self.emit(O.UffdWp(pid, start + self.r.randrange(1, P), 1, enable=False))
        elif follow == 2:
            self.emit(O.Evict())
        if follow != 1 or self.chance(0.5):
            self.emit(O.Fault(pid, start + self._subpage(), write=self.chance(0.7)))

    def soft_dirty_cycle(self) -> None:
        """clear_refs around a swap-out, then touch or move the region."""
        pid = self.pid()
        start, n = self.region_in(pid)
        if self.chance(0.5):
            self.emit(O.ClearRefs(pid))
        self.emit(O.Pageout(pid, start, n))
        if self.chance(0.5):
            self.emit(O.ClearRefs(pid))
        if pid in self.s.swapped:
            self.s.swapped[pid].update(range(start // P, (start + n) // P))
        if self.chance(0.3):
            self.mremap()
        else:
            self.emit(O.Fault(pid, start + self._subpage(), write=self.chance(0.5)))

    def swapcache_cycle(self) -> None:
        """Swap in from the swap cache or the device, write, then MADV_FREE and reclaim again."""
        pid = self.pid()
        start, n = self.region_in(pid)
        self.emit(O.Pageout(pid, start, n))
        if self.chance(0.6):
            self.emit(O.Evict())
        self.emit(O.Fault(pid, start + self._subpage(), write=False))
        if self.chance(0.7):
            self.emit(O.Write(pid, start, n, self.value()))
        self.emit(O.Free(pid, start, n) if self.chance(0.6) else O.SplitThp())
        self.emit(O.Pageout(pid, start, n))
        self.emit(O.Fault(pid, start + self._subpage(), write=self.chance(0.3)))

    def rwp_cycle(self) -> None:
        """userfaultfd RWP (Linux 7.3, async): register a region for RWP, protect it, then swap it
        out (whole THP or part), evict, and access, fork, mprotect, unprotect or swapoff: the
        uffd bit on PTE and PMD swap entries and the PAGE_NONE restore of every swap-in path."""
        pid = self.pid()
        start, n = self.region_in(pid)
        if self.chance(0.7):
            self.emit(O.Write(pid, start, n, self.value()))
        self.emit(O.UffdRegister(pid, start, n, rwp=True))
        self.emit(O.UffdRwp(pid, start, n, enable=True))
        if self.chance(0.3):
            self.emit(O.Fault(pid, start + self._subpage(), write=self.chance(0.5)))
            self.emit(O.UffdRwp(pid, start, n, enable=True))
        if self.chance(0.8):
            self.emit(O.Pageout(pid, start, n) if self.chance(0.7)
                      else O.Pageout(pid, start, self.r.randint(1, n)))
            if pid in self.s.swapped:
                self.s.swapped[pid].update(range(start // P, (start + n) // P))
        if self.chance(0.6):
            self.emit(O.Evict())
        follow = self.r.randrange(6)
        if follow == 0:
            self.fork()
        elif follow == 1:
            self.emit(O.Mprotect(pid, start, self.r.randint(1, n), O.PROT_READ))
            self.emit(O.Mprotect(pid, start, n, O.PROT_RW))
        elif follow == 2:
            self.emit(O.UffdRwp(pid, start + self._subpage(), self.r.randint(1, 8), enable=False))
        elif follow == 3:
            self.emit(O.Swapoff())
            self.emit(O.Swapon(sync=self.chance(0.5)))
        self.emit(O.Fault(pid, start + self._subpage(), write=self.chance(0.5)))
        if self.chance(0.4):
            self.emit(O.Write(pid, start + self._subpage(), 1, self.value()))

    def uffd_remap(self) -> None:
        """A paged-out region registered with uffd (no EVENT_REMAP) moved by an aligned mremap:
        the move must drop uffd-wp and set soft-dirty, at PMD and at PTE level alike."""
        pid = self.pid()
        r = self.swapped_region(pid)
        start = r * P if r is not None else self.region_in(pid)[0]
        self.emit(O.UffdRegister(pid, start, P))
        if self.chance(0.7):
            self.emit(O.UffdWp(pid, start, P, enable=True))
        if self.chance(0.5):
            self.emit(O.ClearRefs(pid))
        dst = self.r.randrange(R) * P
        self.emit(O.MremapMove(pid, start, P, dst))
        if pid in self.s.maps and dst != start:
            self.s.remove(pid, start, start + P)
            self.s.remove(pid, dst, dst + P)
            self.s.add(pid, dst, dst + P)

    def shared_move(self) -> None:
        """UFFDIO_MOVE of a whole paged-out region after fork: the entry is shared, -EBUSY."""
        pid = self.pid()
        r = self.swapped_region(pid)
        start = r * P if r is not None else self.region_in(pid)[0]
        if self.chance(0.6):
            self.emit(O.Evict())
        self.fork()
        who = self.pid()
        empty = [q for q in range(R) if q * P != start and q not in self.s.filled.get(who, ())
                 and any(a <= q * P and (q + 1) * P <= b for a, b in self.s.maps.get(who, ()))]
        if empty:
            dst = self.r.choice(empty) * P
        else:  # map an empty region for it
            dst = self.r.randrange(R) * P
            self.emit(O.Mmap(who, dst, P))
            if who in self.s.maps:
                self.s.add(who, dst, dst + P)
        self.emit(O.UffdRegister(who, dst, P))
        self.emit(O.UffdMove(who, start, dst, P))

    def swapoff_cycle(self) -> None:
        """Swapoff over swapped (maybe shared) regions, then swapon again."""
        if self.chance(0.5):
            self.fork()
        self.emit(O.Swapoff(fail_alloc=self.chance(0.2)))
        self.emit(O.Swapon(sync=self.chance(0.4)))
        for pid in self.s.swapped:
            self.s.swapped[pid].clear()

    def exit(self) -> None:
        pids = [p for p in self.s.maps if p != 0] or list(self.s.maps) or [0]
        pid = self.r.choice(pids)
        self.emit(O.Exit(pid))
        self.s.exit(pid)

    def knob(self) -> None:
        k = self.r.choice(("fragment", "zswap", "swapoff", "swapon", "split", "split"))
        if k == "fragment":
            self.emit(O.Fragment())
        elif k == "zswap":
            self.emit(O.ZswapEnable())
        elif k == "split":
            self.emit(O.SplitThp())
        elif k == "swapoff" or self.s.swap_on:
            self.emit(O.Swapoff(fail_alloc=self.chance(0.2)))
            if self.chance(0.7):
                self.emit(O.Swapon(sync=self.chance(0.5)))
            else:
                self.s.swap_on = False
            for pid in self.s.swapped:
                self.s.swapped[pid].clear()
        else:
            self.emit(O.Swapon(sync=self.chance(0.5)))
            self.s.swap_on = True

    def invalid(self) -> None:
        """An op from raw random bytes: often out of any mapping, exercising the error returns."""
        ops = decode(bytes(self.r.randrange(256) for _ in range(8)))
        if ops:
            self.emit(ops[0])


# move name -> weight; the weights are the steering
MOVES: dict[str, int] = {
    "mmap_thp": 6, "mmap_odd": 2, "write_region": 14, "write_partial": 5, "pageout_region": 14,
    "pageout_partial": 4, "evict": 6, "fork": 6, "fault": 14, "swap_cycle": 12, "munmap_partial": 4,
    "mprotect_partial": 4, "dontneed": 3, "free": 3, "mremap": 4, "mremap_shrink": 2, "uffd": 3,
    "uffd_wp": 3, "uffd_move": 3, "clear_refs": 3, "exit": 1, "knob": 3, "invalid": 2,
    "wp_then_swap": 3, "soft_dirty_cycle": 3, "swapcache_cycle": 3, "swapoff_cycle": 2,
    "uffd_remap": 2, "shared_move": 2, "willneed": 3, "mincore": 3, "mixed_cache_cycle": 2,
    "zswap_cycle": 2, "cold": 2, "rwp_cycle": 2,
}
_MOVE_NAMES = tuple(MOVES)
_MOVE_CUM = []
_acc = 0
for _m in _MOVE_NAMES:
    _acc += MOVES[_m]
    _MOVE_CUM.append(_acc)


def _as_random(rng) -> random.Random:
    """A fast random.Random drawn from `rng` (a numpy Generator, a random.Random or an int seed)."""
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, int):
        return random.Random(rng)
    return random.Random(int(rng.integers(0, 2**63)))


def generate(rng, length: int = 32) -> list[O.Op]:
    """`length` ops from the seeded `rng` (numpy.random.Generator, random.Random, or an int seed)."""
    return generate_from_choices(_as_random(rng), length)


def generate_from_choices(r, length: int) -> list[O.Op]:
    """`length` ops, each decision asked of `r`: a random.Random (the random engine) or a
    fuzz.choices.ByteChoices (the atheris engine)."""
    g = _Gen(r)
    # start: mostly PMD-aligned THP mappings in process 0
    for _ in range(1 if r.random() < 0.5 else 2):
        if r.random() < 0.85:
            g.mmap_thp()
        else:
            g.mmap_odd()
    total = _MOVE_CUM[-1]
    while len(g.out) < length:
        getattr(g, _MOVE_NAMES[bisect.bisect_right(_MOVE_CUM, r.random() * total)])()
    return g.out[:length]
