"""The operation vocabulary: one frozen dataclass per operation, the only list of ops in the project.

The trace format, the fuzz byte decoder and the Hypothesis strategies are all derived from `OPS` and
from the `spec` metadata of each field, never from a second hand-kept list.

Address space: every process has the same bounded virtual window of `NR_REGIONS` PMD-aligned 2 MiB
regions (`VA_PAGES` 4 KiB pages). Ops address it in page numbers, so `page // HPAGE_PMD_NR` is the
region and `page % HPAGE_PMD_NR` the subpage. Processes are small integers `0 .. MAX_PROCS-1`; process 0
exists at boot, `fork` gives the child the lowest free pid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

# ---- bounds (documented in README "Bounds") -------------------------------------------------------
PAGE_SIZE = 4096
HPAGE_PMD_NR = 512  # pages per PMD (x86-64, 4 KiB base pages)
NR_REGIONS = 4  # 2 MiB regions per process window: enough for aligned, unaligned and moved mappings
VA_PAGES = NR_REGIONS * HPAGE_PMD_NR
MAX_PROCS = 4
MAX_VALUE = 0xFFFF  # values written by `write`; page contents are (value << 16) | page-in-window

# ---- op results ---------------------------------------------------------------------------------
# An op returns 0, a negative errno exactly as the kernel would, a signal, or NOT_APPLICABLE when the
# state cannot take it at all (no such process): never an exception.
OK = 0
SIGBUS = 1007
SIGSEGV = 1011
UFFD_WP_TRAP = 2000  # a write hit a uffd-wp protected page: handle_userfault(VM_UFFD_WP) blocks it
NOT_APPLICABLE = 999

PROT_NONE, PROT_READ, PROT_RW = 0, 1, 3
PROT_NAMES = {PROT_NONE: "none", PROT_READ: "r", PROT_RW: "rw"}


def spec(kind: str, **kw) -> dict:
    """Field metadata that the decoder, the trace parser and the strategies read."""
    return {"spec": (kind, kw)}


def _pid() -> dataclasses.Field:
    return field(metadata=spec("pid"))


def _page() -> dataclasses.Field:
    return field(metadata=spec("page"))


def _npages() -> dataclasses.Field:
    return field(metadata=spec("npages"))


def _flag() -> dataclasses.Field:
    return field(default=False, metadata=spec("bool"))


def _fail() -> dataclasses.Field:
    """An injected failure of this op's PMD-order folio allocation (legacy has none to fail)."""
    return field(default=False, metadata=spec("bool"))


@dataclass(frozen=True)
class Op:
    """Base class; `name` is the op's trace keyword."""

    name = "op"


@dataclass(frozen=True)
class Mmap(Op):
    """mmap(MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE) at `start`, optionally MADV_HUGEPAGE."""

    name = "mmap"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    hugepage: bool = field(default=True, metadata=spec("bool"))


@dataclass(frozen=True)
class Munmap(Op):
    name = "munmap"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class Write(Op):
    """Store to every page of the range in order; each page gets (value << 16) | page."""

    name = "write"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    value: int = field(default=1, metadata=spec("value"))
    fail_alloc: bool = _fail()


@dataclass(frozen=True)
class Fault(Op):
    """One access to one page: a load, or a store of the value already there, as one write
    fault (FAULT_FLAG_WRITE). The C reproducer does MADV_POPULATE_WRITE and then `*p = *p`:
    the store alone would fault as a read first (and so does a locked RMW under qemu's TCG)."""

    name = "fault"
    pid: int = _pid()
    page: int = _page()
    write: bool = _flag()
    fail_alloc: bool = _fail()


@dataclass(frozen=True)
class Pageout(Op):
    """madvise(MADV_PAGEOUT)."""

    name = "pageout"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class Evict(Op):
    """memcg memory.reclaim: finish writeback and drop clean, unmapped folios from the swap cache."""

    name = "evict"


@dataclass(frozen=True)
class Fork(Op):
    """fork(); `fail_alloc`: the child's page-table allocation for the first region holding
    entries fails, so fork returns -ENOMEM (a process with no entries forks fine)."""

    name = "fork"
    pid: int = _pid()
    fail_alloc: bool = _fail()


@dataclass(frozen=True)
class Exit(Op):
    name = "exit"
    pid: int = _pid()


@dataclass(frozen=True)
class Mprotect(Op):
    name = "mprotect"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    prot: int = field(default=PROT_RW, metadata=spec("enum", choices=(PROT_NONE, PROT_READ, PROT_RW),
                                                      names=PROT_NAMES))


@dataclass(frozen=True)
class Dontneed(Op):
    """madvise(MADV_DONTNEED)."""

    name = "dontneed"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class Free(Op):
    """madvise(MADV_FREE)."""

    name = "free"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class Willneed(Op):
    """madvise(MADV_WILLNEED): read the range's swapped-out pages into the swap cache."""

    name = "willneed"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class Cold(Op):
    """madvise(MADV_COLD): deactivate the range's pages; a large folio the range covers only in
    part is split first, as MADV_PAGEOUT does, but nothing is reclaimed."""

    name = "cold"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class Mincore(Op):
    """mincore(): per page, is it resident (mapped, or its swap slot cached)? The answer vector
    is the op's output (`Kernel.output`), compared like a result."""

    name = "mincore"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class MremapMove(Op):
    """mremap(MREMAP_MAYMOVE|MREMAP_FIXED) of [start, start+npages) to `dst`."""

    name = "mremap"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    dst: int = _page()


@dataclass(frozen=True)
class MremapShrink(Op):
    """mremap() in place to `new_npages` < npages (the tail is unmapped)."""

    name = "mremap_shrink"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    new_npages: int = _npages()


@dataclass(frozen=True)
class Swapoff(Op):
    """swapoff of the swap device; `fail_alloc`: unuse's PMD-order folio allocations fail."""

    name = "swapoff"
    fail_alloc: bool = _fail()


@dataclass(frozen=True)
class Swapon(Op):
    """swapon of a fresh device: synchronous (zram-like) or asynchronous (a disk)."""

    name = "swapon"
    sync: bool = _flag()


@dataclass(frozen=True)
class ClearRefs(Op):
    """echo 4 > /proc/pid/clear_refs: clear soft-dirty."""

    name = "clear_refs"
    pid: int = _pid()


@dataclass(frozen=True)
class UffdRegister(Op):
    """UFFDIO_REGISTER with UFFDIO_REGISTER_MODE_WP, or with `rwp=1` UFFDIO_REGISTER_MODE_RWP
    (Linux 7.3: read-write protection, the context negotiated UFFD_FEATURE_RWP |
    UFFD_FEATURE_RWP_ASYNC). Either mode lets UFFDIO_MOVE target the range. `rwp` defaults to 0,
    so traces written before it keep their meaning."""

    name = "uffd_register"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    rwp: bool = _flag()


@dataclass(frozen=True)
class UffdWp(Op):
    """UFFDIO_WRITEPROTECT, mode WP on (`enable`) or off."""

    name = "uffd_wp"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    enable: bool = field(default=True, metadata=spec("bool"))


@dataclass(frozen=True)
class UffdRwp(Op):
    """UFFDIO_RWPROTECT (Linux 7.3), mode UFFDIO_RWPROTECT_MODE_RWP on (`enable`) or off
    (resolve, with a wake). The context is in async mode (UFFD_FEATURE_RWP_ASYNC): an access to
    a protected page is resolved by the kernel itself (do_uffd_rwp()), it never traps."""

    name = "uffd_rwp"
    pid: int = _pid()
    start: int = _page()
    npages: int = _npages()
    enable: bool = field(default=True, metadata=spec("bool"))


@dataclass(frozen=True)
class UffdMove(Op):
    """UFFDIO_MOVE of [src, src+npages) to dst in the same mm (flags 0)."""

    name = "uffd_move"
    pid: int = _pid()
    src: int = _page()
    dst: int = _page()
    npages: int = _npages()


@dataclass(frozen=True)
class SplitThp(Op):
    """echo 1 > /sys/kernel/debug/split_huge_pages: split every anonymous THP, swap-cache ones too."""

    name = "split_thp"


@dataclass(frozen=True)
class Fragment(Op):
    """Environment: leave no free 512-slot cluster on the swap device (other users' order-0 slots)."""

    name = "fragment"


@dataclass(frozen=True)
class ZswapEnable(Op):
    """Environment: enable zswap: every later swap-out is stored in zswap, slot by slot (the
    PMD model splits an entry whose range zswap holds, v7)."""

    name = "zswap_enable"


OPS: tuple[type[Op], ...] = (
    Mmap, Munmap, Write, Fault, Pageout, Evict, Fork, Exit, Mprotect, Dontneed, Free, MremapMove,
    MremapShrink, Swapoff, Swapon, ClearRefs, UffdRegister, UffdWp, UffdMove, SplitThp, Fragment,
    ZswapEnable, Willneed, Mincore, Cold, UffdRwp,
)
OP_BY_NAME: dict[str, type[Op]] = {cls.name: cls for cls in OPS}
assert len(OP_BY_NAME) == len(OPS), "duplicate op name"

# Inclusive bounds of each field kind; the decoder folds into them, the parser rejects outside them.
FIELD_BOUNDS: dict[str, tuple[int, int]] = {
    "pid": (0, MAX_PROCS - 1),
    "page": (0, VA_PAGES - 1),
    "npages": (1, VA_PAGES),
    "value": (0, MAX_VALUE),
    "bool": (0, 1),
}


def op_fields(cls: type[Op]) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(cls)


def field_kind(f: dataclasses.Field) -> tuple[str, dict]:
    return f.metadata["spec"]


def result_name(res: int) -> str:
    """Human form of an op result: 0, -ENOMEM, SIGSEGV, ..."""
    import errno

    special = {OK: "0", SIGBUS: "SIGBUS", SIGSEGV: "SIGSEGV", UFFD_WP_TRAP: "UFFD_WP_TRAP",
               NOT_APPLICABLE: "n/a"}
    if res in special:
        return special[res]
    if res < 0 and -res in errno.errorcode:
        return "-" + errno.errorcode[-res]
    return str(res)
