"""A model-independent expectation of every page's uffd-wp bit (pagemap bit 57), kept per model.

The cross-model uffd-wp rule stops where the models' residency legitimately differs (TOLERATED
entry_vs_none_cascade), and a uffd-wp mistake in shared code makes both models agree. This shadow
checks each model on its own, from the ops and from that model's own page states, with the rules
of Linux 7.3 for anonymous memory without UFFD_FEATURE_WP_UNPOPULATED / EVENT_FORK / EVENT_REMAP:

  * UFFDIO_WRITEPROTECT(enable) sets the bit on every page of the range that holds an entry
    (present or swap; a none anonymous PTE gets no marker), (disable) clears it;
  * the bit lives on the entry: swap-out, swap-in, splits, swapoff, a lazyfree PTE, the zero page
    a split maps (try_to_map_unused_to_zeropage()) keep it; a store to a protected page traps;
  * a page whose entry goes (zap, MADV_FREE of a swap entry, discard, munmap) loses it, and a new
    entry where there was none starts without it;
  * fork: the child is not registered and its entries lose it (copy_*: userfaultfd_wp(dst_vma));
  * mremap (MREMAP_FIXED, old_len == new_len: remap_move(), mm/mremap.c:1933) moves each VMA of
    the range to the previous one's new end plus the same gap; a moved entry of a VMA registered
    with a context lacking EVENT_REMAP loses the bit (vma_has_uffd_without_event_remap(),
    move_ptes() mm/mremap.c:295-312, move_huge_pmd() mm/huge_memory.c:2664), an entry of an
    unregistered VMA keeps it (a VMA whose registration mremap_userfaultfd_prep() dropped when a
    moved range merged into it still holds bits); what stays behind keeps its bits; a -EFAULT
    may come after the first VMAs moved (remap_move_pieces());
  * UFFDIO_MOVE: a moved swap entry keeps it (move_swap_pte()), a moved present page (a fresh PTE)
    and a moved zero page (move_zeropage_pte()) do not. After a move that stopped part way the
    pages' expectation is taken from the model (which pages moved is the model's to say).

RWP (Linux 7.3, the same bit; the rig's context is UFFD_FEATURE_RWP_ASYNC):
  * UFFDIO_RWPROTECT sets and clears it as UFFDIO_WRITEPROTECT does (change_protection() with
    MM_CP_UFFD_RWP / _RESOLVE, mm/mprotect.c);
  * on an RWP VMA an access resolves the page (do_uffd_rwp(): the bit is cleared), all 512 of a
    PMD-mapped THP (do_huge_pmd_uffd_rwp()), whatever swap-in came first (do_swap_page() restores
    PAGE_NONE and the bit, the access then resolves it): every page a `write` that returned 0
    reached, and the page of a
    `fault` that returned 0, end without it (a failed access: the model's bits are taken);
  * UFFDIO_MOVE into an RWP VMA re-arms every moved entry ("Re-arm RWP", mm/userfaultfd.c:1365,
    :1452, :1482; mm/huge_memory.c:2988).
"""

from __future__ import annotations

import errno

import numpy as np

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.observe import PRESENT, SWAPPED


def remap_move_pieces(vmas, lo: int, hi: int, dst: int) -> list[tuple[int, int, int, bool]]:
    """What remap_move() (mm/mremap.c:1933) moves of [lo, hi) to `dst`, from the VMAs before the
    call, each (start, end, ..., registered) as ProcObs.vmas: a list of (a, b, new, registered),
    one per VMA moved, in order. Empty for -EFAULT before anything moved (no VMA, a hole at the
    start, an armed first VMA the range goes past); a uffd-armed VMA after the first ends the
    list (the call returns -EFAULT, the earlier VMAs stay moved). Every page p moved lands at
    dst + p - lo: the gaps between VMAs are kept (:1963-1977)."""
    out: list[tuple[int, int, int, bool]] = []
    target, last_end = dst, 0
    for v in sorted(vmas):
        start, end, registered = v[0], v[1], bool(v[-1])
        if end <= lo or start >= hi:
            continue
        if not out and lo < start:
            return []  # :1959 no gap permitted at the start
        if registered and (out or end < hi):
            return out  # !vma_multi_allowed(): :1988 (later VMA), :1991 (first, more follow)
        a, b = max(start, lo), min(hi, end)
        new = target + (start - last_end if out else 0)
        out.append((a, b, new, registered))
        target, last_end = new + b - a, end
    return out


class UffdWpShadow:
    """Expected uffd-wp bits of one model's processes."""

    def __init__(self) -> None:
        self.bits: dict[int, np.ndarray] = {0: np.zeros(O.VA_PAGES, bool)}
        self.state: dict[int, np.ndarray] = {}  # each page's state after the previous op
        self.vmas: dict[int, tuple] = {}  # each process's VMAs after the previous op
        self.pmd_level: dict[int, np.ndarray] = {}  # each page PMD-mapped after the previous op
        self.pmd_present: dict[int, np.ndarray] = {}  # ... and present (not a swap PMD)

    def follow(self, op: O.Op, res: int, obs, new_pid: int | None) -> None:
        """Update the expectation after `op` returned `res` in this model, observed as `obs`."""
        pid = getattr(op, "pid", None)
        bits = self.bits.get(pid)
        if isinstance(op, O.Fork) and new_pid is not None:
            self.bits[new_pid] = np.zeros(O.VA_PAGES, bool)
        elif isinstance(op, O.Exit):
            self.bits.pop(pid, None)
        elif bits is None or pid not in obs.procs:
            pass
        elif isinstance(op, (O.Write, O.Fault)) and pid in self.vmas:
            lo, n = (op.start, op.npages) if isinstance(op, O.Write) else (op.page, 1)
            rwp = np.zeros(O.VA_PAGES, bool)
            for v in self.vmas[pid]:
                if v[-1] == 2:  # ProcObs.vmas: uffd 2 = RWP-registered
                    rwp[v[0]:v[1]] = True
            sl = slice(lo, min(lo + n, O.VA_PAGES))
            if res == O.OK:
                reached = np.zeros(O.VA_PAGES, bool)
                reached[sl] = True
                # an access to a PMD-mapped THP resolves the whole PMD (do_huge_pmd_uffd_rwp()),
                # mapped so before the op (a write may split it afterwards: do_huge_pmd_wp_page()
                # of a shared THP), or by the op's own whole-2 MiB swap-in of a swap PMD: then all
                # 512 pages are present after it. A swap PMD the op split instead (its slots in
                # zswap, a mixed cache) swaps in and resolves only the page reached
                po = obs.procs[pid]
                before = self.pmd_level.get(pid)
                present = po.state == PRESENT
                for r in range(lo // O.HPAGE_PMD_NR, (sl.stop - 1) // O.HPAGE_PMD_NR + 1):
                    rs = slice(r * O.HPAGE_PMD_NR, (r + 1) * O.HPAGE_PMD_NR)
                    was = before[rs].all() if before is not None else False
                    was_present = was and self.pmd_present.get(pid, np.zeros(1, bool))[rs].all()
                    now = po.pmd_level[rs].all() and present[rs].all()
                    if was_present or now or (was and present[rs].all()):
                        reached[rs] = True
                bits &= ~(rwp & reached)
            else:  # stopped part way: how far it got is the model's
                bits[sl] = np.where(rwp[sl], obs.procs[pid].uffd_wp[sl], bits[sl])
        elif isinstance(op, (O.UffdWp, O.UffdRwp)):
            sl = slice(op.start, op.start + op.npages)
            if res != O.OK:  # stopped at an unregistered VMA: how far it got is the model's
                bits[sl] = obs.procs[pid].uffd_wp[sl]
            elif op.enable:
                bits[sl] = obs.procs[pid].state[sl] >= PRESENT
            else:
                bits[sl] = False
        elif isinstance(op, O.MremapMove):
            if res in (O.OK, -errno.EFAULT) and pid in self.vmas:  # -EFAULT: maybe part moved
                for a, b, new, registered in remap_move_pieces(
                        self.vmas[pid], op.start, op.start + op.npages, op.dst):
                    moved = bits[a:b] & (not registered)
                    bits[a:b] = False
                    bits[new:new + b - a] = moved
        elif isinstance(op, O.UffdMove):
            n = max(0, min(op.npages, O.VA_PAGES - op.src, O.VA_PAGES - op.dst))
            before = self.state.get(pid)
            dst_rwp = any(v[0] <= op.dst < v[1] and v[-1] == 2 for v in self.vmas.get(pid, ()))
            if res == O.OK and before is not None:
                moved = bits[op.src:op.src + n] & (before[op.src:op.src + n] == SWAPPED)
                if dst_rwp:
                    moved = before[op.src:op.src + n] >= PRESENT
                bits[op.src:op.src + n] = False
                bits[op.dst:op.dst + n] = moved
            elif n:
                for a in (op.src, op.dst):
                    bits[a:a + n] = obs.procs[pid].uffd_wp[a:a + n]
        for p, b in self.bits.items():
            po = obs.procs.get(p)
            if po is not None:
                b &= po.state >= PRESENT  # an entry that went takes its bit with it
        self.state = {p: po.state.copy() for p, po in obs.procs.items()}
        self.pmd_level = {p: po.pmd_level.copy() for p, po in obs.procs.items()}
        self.pmd_present = {p: po.pmd_level & (po.state == PRESENT) for p, po in obs.procs.items()}
        self.vmas = {p: po.vmas for p, po in obs.procs.items()}

    def check(self, obs) -> tuple[int, np.ndarray, bool] | None:
        """(pid, pages, expected bit of the first) where the model's entries disagree, else None."""
        for pid, po in sorted(obs.procs.items()):
            b = self.bits.get(pid)
            if b is None:
                continue
            bad = ((po.state >= PRESENT) & (po.uffd_wp != b)).nonzero()[0]
            if bad.size:
                return pid, bad, bool(b[bad[0]])
        return None
