"""Export a trace as a self-contained C program that performs its ops with real syscalls.

`export_c(ops, name)` returns the C source; `pmdswap-fuzz export-c TRACE -o FILE.c` writes it. The
program is in the style of the kernel's mm selftests and can be attached to a bug report:

    gcc -static -O2 -Wall -o repro repro.c -lpthread
    ./repro [SWAPDEV [ZRAMDEV]]      # as root, in a throwaway VM; defaults /dev/vda /dev/zram0

Design (see the comment block at the top of the generated file):
  * the main process is an orchestrator that is not part of the trace; trace process N is the worker
    holding slot N. Each worker runs a command loop reading op indices from its pipe, so ops run in
    trace order across processes. `fork` in worker P gives the child the lowest free slot (as the
    model does), `exit` makes the worker _exit();
  * the trace's address window is fixed: WINDOW_BASE (2 MiB aligned) + page * 4096, every mmap is
    MAP_FIXED_NOREPLACE there;
  * `write` fills each page with a pattern whose first 32-bit word is (value << 16) | page;
  * after every op the orchestrator prints `K:<op>.<key>=<value>` lines, read from /proc/<pid>/...
    so that observing faults nothing in: result, per process the VMAs of the window, pagemap
    (present / swapped, swap type and offset, soft-dirty, exclusive, uffd-wp) and the first word of
    every present page, run-length encoded; smaps Rss / Swap / AnonHugePages totals; vmstat deltas.
    After the last op it reads every page that holds an entry (faulting swapped ones in) as the
    final content check (`K:end...`).

Ops the target kernel cannot express raise `ExportError` naming the op index and why; nothing is
dropped silently. What a target can express is a `kernel_profiles.Profile` (default: Linux 7.3).
"""

from __future__ import annotations

import re
from pathlib import Path

from pmdswap_fuzz.models import ops as O

from .kernel_profiles import DEFAULT_PROFILE, PROFILES, Profile
from .trace import format_op

__all__ = ["ExportError", "export_c", "check_exportable", "WINDOW_BASE"]

WINDOW_BASE = 0x200000000000  # 32 TiB: 2 MiB aligned, far from anything a static binary maps

# op kind numbers of the generated table, in OPS order
_KIND = {cls: i for i, cls in enumerate(O.OPS)}


class ExportError(ValueError):
    """An op the target kernel cannot express; `index` is the op's 0-based position."""

    def __init__(self, index: int, op: O.Op | None, why: str) -> None:
        where = f"op {index} ({format_op(op)})" if op is not None else f"op {index}"
        super().__init__(f"{where}: cannot be expressed on a real kernel: {why}")
        self.index, self.op, self.why = index, op, why


def _profile(profile: str | Profile | None) -> Profile:
    if profile is None:
        return PROFILES[DEFAULT_PROFILE]
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"unknown kernel profile {profile!r} (profiles: {', '.join(PROFILES)})")
    return PROFILES[profile]


def _why_not(op: O.Op, prof: Profile) -> str | None:
    """Why `op` cannot be run on a kernel of profile `prof`, or None."""
    if getattr(op, "fail_alloc", False):
        return ("fail_alloc=1 injects an allocation failure at one exact kernel allocation; "
                "a real kernel offers no such switch (fault injection is probabilistic)")
    if isinstance(op, O.Fragment):
        return ("fragment stands for other users' order-0 slots in every free swap cluster; "
                "userspace cannot place slots on a real swap device")
    if isinstance(op, O.ZswapEnable) and "zswap" not in prof.capabilities:
        return f"{prof.kernel} has no zswap (CONFIG_ZSWAP is not set in that kernel)"
    if isinstance(op, O.UffdMove) and "uffdio_move" not in prof.capabilities:
        return f"UFFDIO_MOVE does not exist in {prof.kernel} (added in Linux 6.8)"
    if (isinstance(op, O.UffdRwp) or isinstance(op, O.UffdRegister) and op.rwp) \
            and "uffd_rwp" not in prof.capabilities:
        return (f"userfaultfd RWP (UFFDIO_REGISTER_MODE_RWP, UFFDIO_RWPROTECT) does not exist in "
                f"{prof.kernel} (added in Linux 7.3)")
    if isinstance(op, O.SplitThp) and "split_huge_pages" not in prof.capabilities:
        return f"{prof.kernel} has no debugfs split_huge_pages"
    for f in ("start", "page", "src", "dst"):
        lo = getattr(op, f, None)
        if lo is None:
            continue
        n = 1 if f == "page" else getattr(op, "npages", 1)
        if f == "start" and isinstance(op, O.MremapShrink):
            n = max(op.npages, op.new_npages)
        if lo + n > O.VA_PAGES:
            return (f"pages {lo}..{lo + n - 1} reach beyond the {O.VA_PAGES}-page window, whose "
                    "end the model treats as TASK_SIZE; a real window ends elsewhere")
    return None


def check_exportable(ops: list[O.Op], profile: str | Profile | None = None) -> None:
    """Raise ExportError for the first op that a kernel of `profile` cannot express."""
    prof = _profile(profile)
    for i, op in enumerate(ops):
        why = _why_not(op, prof)
        if why:
            raise ExportError(i, op, why)


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _op_row(i: int, op: O.Op) -> str:
    """One `struct op` initialiser: {kind, pid, a, b, c, d} with the fields named per kind."""
    k = type(op)
    pid = getattr(op, "pid", -1)
    a = b = c = d = 0
    if k in (O.Mmap,):
        a, b, c = op.start, op.npages, int(op.hugepage)
    elif k in (O.Munmap, O.Pageout, O.Dontneed, O.Free, O.Willneed, O.Mincore, O.Cold):
        a, b = op.start, op.npages
    elif k is O.UffdRegister:
        a, b, c = op.start, op.npages, int(op.rwp)
    elif k is O.Write:
        a, b, c = op.start, op.npages, op.value
    elif k is O.Fault:
        a, c = op.page, int(op.write)
    elif k is O.Mprotect:
        a, b, c = op.start, op.npages, op.prot
    elif k is O.MremapMove:
        a, b, c = op.start, op.npages, op.dst
    elif k is O.MremapShrink:
        a, b, c = op.start, op.npages, op.new_npages
    elif k is O.Swapon:
        c = int(op.sync)
    elif k in (O.UffdWp, O.UffdRwp):
        a, b, c = op.start, op.npages, int(op.enable)
    elif k is O.UffdMove:
        a, b, c = op.src, op.npages, op.dst
    return (f"\t{{ OP_{k.name.upper():<14}, {pid:2d}, {a:4d}, {b:4d}, {c:5d}, {d} }}, "
            f"/* {i:3d}: {format_op(op)} */")


def export_c(ops: list[O.Op], name: str, profile: str | Profile | None = None) -> str:
    """The C program performing `ops` (trace `name`) on a kernel of `profile` (default Linux 7.3)."""
    prof = _profile(profile)
    check_exportable(ops, prof)
    rows = "\n".join(_op_row(i, op) for i, op in enumerate(ops))
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:120]
    head = HEADER.format(name=safe, nops=len(ops), kernel=prof.kernel, profile=prof.name)
    table = (f"static const char *trace_name = {_c_string(safe)};\n"
             f"static const struct op ops[] = {{\n{rows}\n}};\n"
             "#define NOPS ((int)(sizeof(ops) / sizeof(ops[0])))\n")
    return head + _runtime(table, "", prof)


def _runtime(table: str, select: str, prof: Profile) -> str:
    enum = ",\n".join(f"\tOP_{cls.name.upper()} = {_KIND[cls]}" for cls in O.OPS)
    # UFFDIO_API features: RWP in async mode where the kernel has it (7.3 mm/userfaultfd.c:4653:
    # RWP_ASYNC needs RWP; an older kernel refuses unknown features with -EINVAL, so none there)
    feats = "UFFD_FEATURE_RWP | UFFD_FEATURE_RWP_ASYNC" if "uffd_rwp" in prof.capabilities else "0"
    return (RUNTIME.replace("@ENUM@", enum)
            .replace("@UFFD_FEATURES@", feats)
            .replace("@WINDOW_BASE@", f"0x{WINDOW_BASE:x}UL")
            .replace("@VA_PAGES@", str(O.VA_PAGES))
            .replace("@MAX_PROCS@", str(O.MAX_PROCS))
            .replace("@SELECT@", select)
            .replace("@TABLE@\n", table))


def export_c_batch(traces: list[tuple[str, list[O.Op]]],
                   profile: str | Profile | None = None) -> str:
    """One C program holding every trace of `traces` ((name, ops) pairs); `./prog SWAPDEV ZRAMDEV
    I` runs trace I, exactly as export_c()'s program of that trace would. kernel-check runs its
    traces from one such program: one gcc run and one binary in the initramfs, however many traces
    (a static binary per trace would fill the guest's memory long before a thousand)."""
    prof = _profile(profile)
    parts, rows = [], []
    for n, (name, ops) in enumerate(traces):
        try:
            check_exportable(ops, prof)
        except ExportError as e:
            raise ExportError(e.index, e.op, f"trace {n} ({name}): {e.why}") from None
        body = "\n".join(_op_row(i, op) for i, op in enumerate(ops)) or "\t{ 0 }, /* no ops */"
        parts.append(f"static const struct op ops_{n}[] = {{\n{body}\n}};\n")
        safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", name)[:120]
        rows.append(f"\t{{ {_c_string(safe)}, ops_{n}, {len(ops)} }},")
    table = ("".join(parts)
             + "static const struct trace_def {\n\tconst char *name;\n\tconst struct op *ops;\n"
             "\tint nops;\n} all_traces[] = {\n" + "\n".join(rows) + "\n};\n"
             "#define NTRACES ((int)(sizeof(all_traces) / sizeof(all_traces[0])))\n"
             "static const char *trace_name;\nstatic const struct op *ops;\nstatic int NOPS;\n"
             )
    select = ("\tif (argc != 4 || atoi(argv[3]) < 0 || atoi(argv[3]) >= NTRACES) {\n"
              "\t\tfprintf(stderr, \"usage: %s SWAPDEV ZRAMDEV INDEX (0..%d)\\n\", argv[0], "
              "NTRACES - 1);\n\t\treturn 2;\n\t}\n"
              "\ttrace_name = all_traces[atoi(argv[3])].name;\n"
              "\tops = all_traces[atoi(argv[3])].ops;\n"
              "\tNOPS = all_traces[atoi(argv[3])].nops;\n"
              )
    head = (f"// SPDX-License-Identifier: GPL-2.0\n/* {len(traces)} pmdswap-fuzz traces in one "
            f"program for kernel profile {prof.name} ({prof.kernel}); see `pmdswap-fuzz export-c` "
            "for one trace as a readable reproducer. */\n")
    return head + _runtime(table, select, prof)


HEADER = """\
// SPDX-License-Identifier: GPL-2.0
/*
 * {name}: a pmdswap-fuzz trace as a real-kernel reproducer ({nops} ops).
 * Generated by `pmdswap-fuzz export-c` for kernel profile {profile} ({kernel}).
 *
 * Build: gcc -static -O2 -Wall -o repro repro.c -lpthread
 * Run:   ./repro [SWAPDEV [ZRAMDEV]]   as root, in a throwaway VM (defaults /dev/vda /dev/zram0).
 *        SWAPDEV must be a block device: the program writes a fresh swap header on it, marks it
 *        non-rotational (THP swap-out needs SWP_SOLIDSTATE) and swaps on it. It also sets
 *        THP enabled=madvise, use_zero_page=0, vm.page-cluster=0 and parks khugepaged.
 *
 * The main process orchestrates and is not part of the trace. Trace process N is the worker in
 * slot N: each worker reads op indices from its pipe and performs them, so ops run in trace order
 * across processes. fork gives the child the lowest free slot. The trace's window of pages is
 * mapped at WINDOW_BASE + page * 4096 with MAP_FIXED_NOREPLACE.
 *
 * Output: after every op, `K:<op>.<key>=<value>` lines read by the orchestrator from /proc/<pid>/
 * (pagemap, smaps, mem) so that observing faults nothing in:
 *   K:<i>.res        the op's result: 0, -EINVAL ..., SIGSEGV, SIGBUS, UFFD_WP_TRAP or n/a
 *   K:<i>.p<N>.vma   VMAs in the window: start+npages:prot[h=MADV_HUGEPAGE][u=uffd-wp registered]
 *                    [R=uffd RWP registered]
 *   K:<i>.p<N>.pm    pagemap runs: start+n:P|S|N[d=soft-dirty][x=exclusive][w=uffd-wp][@type:off]
 *                    (a swapped run has consecutive offsets from off)
 *   K:<i>.p<N>.ct    first word of present pages: start+n:=V (all V) or start+n:+V (V + page);
 *                    not of RWP-protected ones before the end (reading them would resolve them)
 *   K:<i>.p<N>.bad   present pages whose other words do not follow their first word's pattern
 *   K:<i>.p<N>.smaps Rss,Swap,AnonHugePages of the window's VMAs, in kB
 *   K:<i>.vm         deltas of the THP / swap vmstat counters
 * and after the last op K:end.p<N>.ct / .bad for every page holding an entry (swapped ones are
 * faulted in for this final check).
 */
"""

# The reproducer program: fuzz/export_runtime.c, a C file with @NAME@ placeholders that
# export_c() fills in (gcc sees the result: tests/test_realkernel.py compiles an export).
RUNTIME = "\n" + (Path(__file__).with_name("export_runtime.c")).read_text()
