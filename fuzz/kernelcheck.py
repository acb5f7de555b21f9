"""Real-kernel conformance check: run traces on a real kernel under qemu and compare with a model.

    kernel_check(trace_paths, kernel=None, model="legacy", profile=None) -> KernelReport

Steps: every trace is exported to C (fuzz/export_c.py; an op the kernel cannot express is an error
before anything is built), compiled with `gcc -static`, and packed with busybox and the kernel's
virtio / zram modules into an initramfs written by the pure-Python newc writer below. The kernel
boots under qemu (KVM if a probe boot shows it works, else TCG) with a 64 MiB virtio disk that the
guest marks non-rotational (THP swap-out as a whole needs SWP_SOLIDSTATE) and zram for `swapon
sync=1`. All traces run in one boot; their `K:` lines come back over the serial console. Each trace
is replayed on the profile's model and compared op by op; the first mismatch is reported with both
values. Every report names the kernel version, its Debian package and version, its sha256 and the
profile used (text and `report_json`).

Without `kernel`, the profile's Debian cloud kernel (fuzz/kernel_profiles.py `Profile.package`;
default linux-7.3: the newest linux-image-7.3*-cloud-amd64 in Debian experimental or sid) is fetched
by fuzz/kernel_fetch.py with `apt-get download` through a private apt configuration in
~/.cache/pmdswap-fuzz/apt/ (apt checks the archive signature; the system's sources are untouched),
unpacked with `dpkg -x` into ~/.cache/pmdswap-fuzz/kernel/<package>_<version>/ (never installed),
and a sha256 manifest of what was unpacked is written next to it and checked on every reuse.
`kernel` may instead be a bzImage (modules are taken from ../lib/modules/<version>/ next to it, or
from its own directory if it is <...>/modules/<version>/vmlinuz, else the drivers must be built in)
or a `dpkg -x` tree: 6.1's layout (boot/vmlinuz-*, lib/modules/, .ko) or 7.x's merged /usr
(usr/lib/modules/<version>/vmlinuz with the modules beside it, compressed .ko.xz, decompressed with
lzma into the initramfs). The command line gets `proc_mem.force_override=always` where the kernel's
config needs it (kernel_cmdline()).

Observables compared, per op (OBSERVABLES below is the list the report prints):
  result      the op's return value, exactly (0, -errno, SIGSEGV, UFFD_WP_TRAP, n/a)
  procs       which trace processes exist
  vma         per page: inside a VMA, its protection, MADV_HUGEPAGE, uffd-wp registration
              (per page, not per VMA: VMA merging is not part of what is checked)
  state       per page: present / swapped / none (pagemap bits 63, 62)
  soft_dirty  per page, pagemap bit 55
  uffd_wp     per page, pagemap bit 57
  exclusive   per page, pagemap bit 56, by the profile's rule: "model" = the model's exclusive bit;
              "mapcount1" (6.1, 7.2, 7.3) = the model's page_mapcount() == 1 (7.x:
              folio_precise_page_mapcount()) for present PTEs, the head page's for a PMD-mapped
              THP, 0 for swap entries and the zero page
  swap        by structure, not value: per observation the map model offset -> kernel offset must be
              a bijection (so sharing between processes matches), the swap type must be the same,
              and pages whose model offsets come from one order-9 allocation still held as such
              (models/swap.py SwapDevice.alloc_id: a THP swapped out whole, those of its slots not
              freed since) must have kernel offsets with the same differences (base + i); order-0
              slots are free to land anywhere (7.3's per-CPU clusters)
  contents    first word of every present page (read via /proc/pid/mem, which faults nothing in;
              except an RWP-protected page, which GUP faults on, so it is read only at the end),
              and every other word of the page must follow it (`bad` = 0); after the last op every
              page holding an entry is read, swapped ones faulted in, and compared
  smaps       Rss, Swap, AnonHugePages summed over the window's VMAs (kB)
  vmstat      per-op deltas of thp_fault_alloc, thp_fault_fallback, thp_swpout,
              thp_swpout_fallback, thp_split_pmd, pswpout, pswpin
Not compared: absolute swap offsets, swap usage totals, PFNs, swap-cache residency, writability.

What the program does so that one boot gives every trace the same start, and what the comparison
does for what the models leave open (each found by `--generate`, fuzz/kernel_generate.py):
  - every program starts with zswap off (an earlier program may have enabled it), swap off, THP
    madvise, and init kills whatever a program left behind before the next one starts;
  - the program waits for nr_writeback to reach 0 after every pageout, and the comparison ends
    the model's writeback after every op (end_all_writeback): the models keep a disk write in
    flight until `evict` so that the fuzzer reaches states under writeback, a real disk does not;
  - once a trace enabled zswap, thp_swpout / pswpout / pswpin are not compared (zswap_store()
    takes the folio before any device I/O; the models take every store to succeed, so that the
    folio leaves the swap cache at once, and track which slots zswap holds, but zswap can still
    refuse a store on the kernel, e.g. past its pool limit or when compression fails);
  - a trace whose processes all exited has nothing to read back at the end;
  - `fault write=1` is one write fault (MADV_POPULATE_WRITE, then the store): a plain `*p = *p`
    faults as a read first, and so does a locked RMW under TCG. On a page whose pagemap shows
    uffd-wp the program reads and then stores (GUP would wait for the trap killably), and the
    comparison gives the model that read fault first (_apply_as_the_program_does).

Bad input gives KernelCheckError with one clear line: a trace the exporter cannot express, a kernel
that does not boot or a guest that hangs (bounded by `timeout`). Temporary files are always removed.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.mm import PMD_HUGE, PMD_TABLE, PTE_PRESENT
from pmdswap_fuzz.models.memory import ZERO_PFN
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, UNMAPPED, observe

from .export_c import ExportError, check_exportable, export_c, export_c_batch
from .kernel_fetch import (CACHE, FetchedKernel, KernelFetchError, fetch_kernel, sha256_file,
                           verify_tree)
from .kernel_profiles import DEFAULT_PROFILE, PROFILES, Profile, make_model
from .trace import TraceError, parse_trace_bytes

__all__ = ["kernel_check", "KernelCheckError", "KernelReport", "TraceResult", "OBSERVABLES",
           "fetch_debian_kernel", "resolve_kernel", "qemu_available", "format_report",
           "report_json"]

OBSERVABLES = ("result", "procs", "vma", "state", "soft_dirty", "uffd_wp", "exclusive", "swap",
               "contents", "smaps", "vmstat", "mincore")
VMSTAT_COMPARED = ("thp_fault_alloc", "thp_fault_fallback", "thp_swpout", "thp_swpout_fallback",
                   "thp_split_pmd", "pswpout", "pswpin")
MODULES = ("virtio_pci", "virtio_blk", "zram", "lzo_rle")  # wanted; missing/built-in is fine
BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")
QEMU = "qemu-system-x86_64"


class KernelCheckError(Exception):
    """A kernel check that could not run (bad trace, no kernel, no boot, hang): one line."""


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@dataclass
class TraceResult:
    path: str
    ok: bool
    ops: int
    seconds: float | None  # guest time running the program
    mismatch: str | None = None  # first mismatch, with both values
    op_index: int | None = None


@dataclass
class KernelReport:
    kernel_version: str
    kernel_image: str
    profile: str
    model: str
    accel: str
    boot_seconds: float  # guest uptime when /init started
    wall_seconds: float  # whole qemu run
    results: list[TraceResult] = field(default_factory=list)
    sha256: str | None = None  # the unpacked package tree's sha256 (manifest), else the image's
    kernel_package: str | None = None  # "linux-image-7.3-cloud-amd64 7.3~rc7-1~exp1 (Debian ...)"
    kernel_build: str = ""  # /proc/version in the guest
    cmdline: str = ""
    note: str = ""  # how the kernel was had, when worth saying (apt unreachable: cached one used)
    check_seconds: float = 0.0  # the whole kernel_check() call: fetch, build, boot, compare
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (trace, why not expressible)
    # --prove-differences: per model-handled difference of the profile, the agreeing traces that
    # fail with that one difference left out of the model, as (trace, op index)
    proofs: list[tuple[str, list[tuple[str, int | None]]]] = field(default_factory=list)

    @property
    def unproven(self) -> list[str]:
        return [key for key, needed in self.proofs if not needed]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def format_report(rep: KernelReport) -> str:
    lines = [f"kernel {rep.kernel_version}: {rep.kernel_package or rep.kernel_image}",
             f"  sha256 {rep.sha256 or '-'} ({'package tree' if rep.kernel_package else 'image'}),"
             f" image {rep.kernel_image}",
             f"  build {rep.kernel_build or '-'}",
             f"  command line {rep.cmdline}"]
    if rep.note:
        lines.append(f"  note: {rep.note}")
    lines += [f"model {rep.model} under profile {rep.profile}; compared: {', '.join(OBSERVABLES)}",
              f"accel {rep.accel}; boot {rep.boot_seconds:.1f} s to /init, qemu wall "
              f"{rep.wall_seconds:.1f} s, whole check {rep.check_seconds:.1f} s"]
    for r in rep.results:
        t = f"{r.seconds:.2f} s" if r.seconds is not None else "-"
        status = "ok" if r.ok else f"MISMATCH at op {r.op_index}" if r.op_index is not None else "FAIL"
        lines.append(f"  {status:<20} {t:>8}  {r.path}")
        if not r.ok and r.mismatch:
            lines += ["      " + s for s in r.mismatch.splitlines()]
    for path, why in rep.skipped:
        lines.append(f"  {'skipped':<20} {'-':>8}  {path}: {why}")
    for key, needed in rep.proofs:
        if needed:
            path, idx = needed[0]
            lines.append(f"  difference {key}: needed by {len(needed)} trace(s), e.g. {path}"
                         + (f" (op {idx})" if idx is not None else ""))
        else:
            lines.append(f"  difference {key}: NOT PROVEN, every agreeing trace still agrees "
                         "without it")
    bad = sum(not r.ok for r in rep.results)
    lines.append(f"{len(rep.results) - bad}/{len(rep.results)} traces agree with the {rep.model} "
                 f"model (profile {rep.profile}) on kernel {rep.kernel_version}"
                 + (f" ({rep.kernel_package})" if rep.kernel_package else "")
                 + f", sha256 {(rep.sha256 or '-')[:16]}")
    return "\n".join(lines)


def report_json(rep: KernelReport) -> str:
    """The report as JSON: the kernel (version, package, sha256, build), then every trace."""
    d = {"kernel": {"version": rep.kernel_version, "package": rep.kernel_package,
                    "sha256": rep.sha256, "image": rep.kernel_image, "build": rep.kernel_build,
                    "cmdline": rep.cmdline, "note": rep.note},
         "profile": rep.profile, "model": rep.model, "accel": rep.accel,
         "boot_seconds": rep.boot_seconds, "wall_seconds": rep.wall_seconds,
         "check_seconds": rep.check_seconds, "ok": rep.ok,
         "skipped": [{"trace": p, "why": w} for p, w in rep.skipped],
         "proofs": [{"difference": k, "needed_by": [{"trace": p, "op_index": i} for p, i in n]}
                    for k, n in rep.proofs],
         "results": [{"trace": r.path, "ok": r.ok, "ops": r.ops, "seconds": r.seconds,
                      "op_index": r.op_index, "mismatch": r.mismatch} for r in rep.results]}
    return json.dumps(d, indent=1) + "\n"


# ---------------------------------------------------------------------------------------------
# tools and the kernel
# ---------------------------------------------------------------------------------------------
def qemu_available() -> str | None:
    """None if qemu, busybox-static and gcc are there, else what is missing."""
    missing = [t for t in (QEMU, "gcc") if not shutil.which(t)]
    if not any(os.path.exists(b) for b in BUSYBOX):
        missing.append("busybox")
    if missing:
        return (f"missing {', '.join(missing)} (install with tools/install-realkernel-deps.sh)")
    return None


def _busybox() -> str:
    for b in BUSYBOX:
        if os.path.exists(b):
            out = subprocess.run(["file", "-L", b], capture_output=True, text=True).stdout \
                if shutil.which("file") else "statically linked"
            if "dynamically" in out:
                raise KernelCheckError(f"{b} is not static: install busybox-static")
            return b
    raise KernelCheckError("busybox not found: install busybox-static")


def fetch_debian_kernel(profile: str = DEFAULT_PROFILE, cache: Path = CACHE) -> Path:
    """The unpacked Debian cloud kernel of `profile` (fuzz/kernel_fetch.py), fetched or verified."""
    return _fetch(PROFILES[profile] if isinstance(profile, str) else profile, cache).tree


def _fetch(prof: Profile, cache: Path = CACHE, log=None) -> FetchedKernel:
    if prof.package is None:
        raise KernelCheckError(f"profile {prof.name} names no kernel package ({prof.kernel}): "
                               "pass --kernel IMAGE")
    try:
        return fetch_kernel(prof.package, cache, log=log)
    except KernelFetchError as e:
        raise KernelCheckError(str(e)) from None


def image_version(image: Path) -> str:
    """The version string in a bzImage's setup header, '' if it is not one."""
    with open(image, "rb") as f:
        hdr = f.read(0x1000)
        if len(hdr) < 0x210 or hdr[0x202:0x206] != b"HdrS":
            return ""
        off = int.from_bytes(hdr[0x20E:0x210], "little") + 0x200
        f.seek(off)
        return f.read(256).split(b"\0")[0].decode(errors="replace").split()[0]


@dataclass
class KernelTree:
    image: Path
    version: str  # from the bzImage header (uname -r)
    modules: Path | None  # lib/modules/<version>, or None: drivers built in
    sha256: str | None  # the tree's sha256 (manifest) or the image's
    package: str | None = None  # Debian package and version, when fetched or a cached tree
    package_version: str | None = None
    suite: str | None = None
    config: Path | None = None  # the kernel's .config, if shipped
    note: str = ""  # how the kernel was had, if worth saying (apt unreachable...)

    def describe(self) -> str:
        if self.package:
            return (f"{self.package} {self.package_version}"
                    + (f" (Debian {self.suite})" if self.suite else ""))
        return str(self.image)


def _tree_images(p: Path) -> list[Path]:
    """The bzImages of a dpkg -x tree: boot/vmlinuz-* (6.1) or [usr/]lib/modules/*/vmlinuz (7.x)."""
    return sorted(p.glob("boot/vmlinuz-*")) + sorted(p.glob("usr/lib/modules/*/vmlinuz")) \
        + sorted(p.glob("lib/modules/*/vmlinuz"))


def _modules_dir(image: Path, version: str) -> Path | None:
    if image.name == "vmlinuz" and image.parent.name == version:  # merged /usr: beside it
        return image.parent
    for base in (image.parent.parent / "lib" / "modules", image.parent.parent / "usr" / "lib" /
                 "modules"):
        if (base / version).is_dir():
            return base / version
    return None


def _config_file(image: Path, version: str, mods: Path | None) -> Path | None:
    for c in (image.parent / f"config-{version}", (mods / "config") if mods else None):
        if c is not None and c.is_file():
            return c
    return None


def resolve_kernel(kernel: str | None, prof: Profile | None = None, log=None) -> KernelTree:
    """The kernel to boot: `kernel` (a bzImage or a dpkg -x tree), else the profile's package."""
    fetched = None
    if kernel is None:
        fetched = _fetch(prof or PROFILES[DEFAULT_PROFILE], log=log)
        kernel = str(fetched.tree)
    p = Path(kernel)
    if not p.exists():
        raise KernelCheckError(f"{kernel}: no such kernel image")
    sha, manifest = None, {}
    if p.is_dir():
        imgs = _tree_images(p)
        if not imgs:
            raise KernelCheckError(f"{kernel}: no boot/vmlinuz-* or usr/lib/modules/*/vmlinuz in "
                                   "this tree")
        image = imgs[-1]
        if fetched is not None:
            sha = fetched.tree_sha256
            manifest = {"package": fetched.package, "version": fetched.version,
                        "suite": fetched.suite}
        elif (p / "manifest.json").exists():
            try:
                manifest = verify_tree(p)
            except KernelFetchError as e:
                raise KernelCheckError(str(e)) from None
            sha = manifest.get("tree_sha256")
    else:
        image = p
    version = image_version(image)
    if not version:
        raise KernelCheckError(f"{image}: not an x86 bzImage (no HdrS setup header)")
    mods = _modules_dir(image, version)
    return KernelTree(image, version, mods, sha or sha256_file(image),
                      manifest.get("package"), manifest.get("version"), manifest.get("suite"),
                      _config_file(image, version, mods), fetched.note if fetched else "")


# ---------------------------------------------------------------------------------------------
# initramfs (newc cpio, uncompressed) without root or cpio(1)
# ---------------------------------------------------------------------------------------------
class Cpio:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self.ino += 1
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
        hdr = ("070701" + "".join(f"{v:08x}" for v in fields)).encode() + name.encode() + b"\0"
        self.parts += [hdr, b"\0" * (-len(hdr) % 4), data, b"\0" * (-len(data) % 4)]

    def dir(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, stat.S_IFREG | mode, data)

    def bytes(self) -> bytes:
        self.add("TRAILER!!!", 0)
        out = b"".join(self.parts)
        return out + b"\0" * (-len(out) % 512)


MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz")  # 7.x ships .ko.xz; the initramfs gets plain .ko


def _module_name(p: Path) -> str:
    for suf in MODULE_SUFFIXES:
        if p.name.endswith(suf):
            return p.name[:-len(suf)]
    raise KernelCheckError(f"{p}: not a kernel module")


def module_bytes(p: Path) -> bytes:
    """The module's ELF, decompressed (.ko.xz with lzma, .ko.gz with gzip): insmod wants a .ko."""
    data = p.read_bytes()
    try:
        if p.name.endswith(".xz"):
            return lzma.decompress(data)
        if p.name.endswith(".gz"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise KernelCheckError(f"{p}: cannot decompress ({e})") from None
    return data


def _module_index(mdir: Path):
    idx = {}
    for p in mdir.rglob("*.ko*"):
        if p.name.endswith(MODULE_SUFFIXES):
            idx[_module_name(p).replace("-", "_")] = p
        elif p.name.endswith((".ko.zst", ".ko.bz2")):
            idx.setdefault(p.name.rsplit(".ko.", 1)[0].replace("-", "_"), p)
    builtin = set()
    bf = mdir / "modules.builtin"
    if bf.exists():
        for line in bf.read_text().split():
            builtin.add(os.path.basename(line)[:-3].replace("-", "_"))
    return idx, builtin


def _module_order(mdir: Path | None, wanted) -> list[Path]:
    """Modules in load order, dependencies from each .ko's modinfo `depends=` (no depmod)."""
    if mdir is None:
        return []
    idx, builtin = _module_index(mdir)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        n = n.replace("-", "_")
        if n in seen:
            return
        seen.add(n)
        if n not in idx:
            return  # built in (or not needed on this kernel)
        if not idx[n].name.endswith(MODULE_SUFFIXES):
            raise KernelCheckError(f"{idx[n]}: compressed in a way Python cannot undo without "
                                   "extra packages (only .ko, .ko.xz and .ko.gz are supported)")
        m = re.search(rb"\0depends=([^\0]*)\0", module_bytes(idx[n]))
        for d in (m.group(1).split(b",") if m and m.group(1) else []):
            visit(d.decode())
        order.append(idx[n])

    for n in wanted:
        visit(n)
    return order


INIT = r"""#!/bin/sh
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
dmesg -n 1
echo "K:boot.kernel=$(uname -r)"
echo "K:boot.build=$(cat /proc/version)"
echo "K:boot.uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /modules.load); do insmod /lib/modules/$m.ko 2>/dev/null; done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || echo "K:boot.error=no /dev/vda"
[ -e /sys/block/zram0 ] || echo "K:boot.warning=no zram"
while read t i; do
	echo "K:begin=$t"
	echo "K:t0=$(cut -d' ' -f1 /proc/uptime)"
	timeout @TIMEOUT@ /t/traces /dev/vda /dev/zram0 $i </dev/null
	echo "K:rc=$?"
	kill -9 -1 2>/dev/null  # a worker left by a killed program must not hold pages into the next
	echo "K:t1=$(cut -d' ' -f1 /proc/uptime)"
	dmesg | grep -E 'WARNING|BUG|Oops|Call Trace' | head -5 | sed 's/^/K:dmesg=/'
	dmesg -c >/dev/null
done </traces
echo "K:alldone=1"
poweroff -f
"""


def build_initramfs(tree: KernelTree, program: bytes, tags: list[str], per_trace_timeout: int,
                    busybox: bytes | None = None) -> bytes:
    """The guest's root: busybox, /init, the modules, and /t/traces (export_c_batch()'s program);
    /init runs trace i of the program under the name tags[i], one after the other."""
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules", "t"):
        c.dir(d)
    c.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    c.file("bin/busybox", busybox if busybox is not None else Path(_busybox()).read_bytes(), 0o755)
    c.add("bin/sh", stat.S_IFLNK | 0o777, b"busybox")
    c.file("init", INIT.replace("@TIMEOUT@", str(per_trace_timeout)).encode(), 0o755)
    mods = _module_order(tree.modules, MODULES)
    for m in mods:
        c.file(f"lib/modules/{_module_name(m)}.ko", module_bytes(m))
    c.file("modules.load", "".join(_module_name(m) + "\n" for m in mods).encode())
    c.file("t/traces", program, 0o755)
    c.file("traces", "".join(f"{t} {i}\n" for i, t in enumerate(tags)).encode())
    return c.bytes()


# ---------------------------------------------------------------------------------------------
# qemu
# ---------------------------------------------------------------------------------------------
CMDLINE = "console=ttyS0 panic=-1 loglevel=4 transparent_hugepage=madvise"


def kernel_cmdline(tree: KernelTree) -> str:
    """The guest's command line. A kernel built with CONFIG_PROC_MEM_FORCE_PTRACE=y (Debian 7.x) or
    CONFIG_PROC_MEM_NO_FORCE=y refuses the FOLL_FORCE reads of /proc/PID/mem that observe a
    PROT_NONE page unless `proc_mem.force_override=always` (fs/proc/base.c proc_mem_foll_force());
    it is added unless the config says CONFIG_PROC_MEM_ALWAYS_FORCE=y (Debian 6.1) or the
    parameter does not exist (kernels before 6.12 without the backport: no config line at all)."""
    cfg = ""
    if tree.config is not None:
        try:
            cfg = tree.config.read_text(errors="replace")
        except OSError:
            cfg = ""
    if cfg and not re.search(r"^CONFIG_PROC_MEM_(FORCE_PTRACE|NO_FORCE)=y$", cfg, re.M):
        return CMDLINE
    return CMDLINE + " proc_mem.force_override=always"  # unknown to a kernel: ignored


def _qemu_cmd(image: Path, initrd: Path, swapimg: Path, accel: str,
              cmdline: str = CMDLINE) -> list[str]:
    acc = (["-accel", "kvm", "-cpu", "host,-arch-capabilities"] if accel == "kvm"
           else ["-accel", "tcg,thread=single", "-cpu", "max"])
    return [QEMU, *acc, "-M", "q35", "-m", "512M", "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", str(image), "-initrd", str(initrd),
            "-append", cmdline,
            "-drive", f"file={swapimg},if=virtio,format=raw,cache=unsafe"]


def _run_qemu(cmd: list[str], log: Path, timeout: float) -> tuple[int, float]:
    t = time.monotonic()
    with open(log, "wb") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        finally:  # a timeout, or anything else (Ctrl-C): never leave qemu behind
            if p.poll() is None:
                os.killpg(p.pid, 9)
                p.wait()
    return (-1 if rc is None else rc), time.monotonic() - t


def _pick_accel(tree: KernelTree, work: Path) -> str:
    forced = os.environ.get("PMDSWAP_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    key = f"{os.uname().release}|{tree.version}"
    cache = CACHE / "accel.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    # a probe boot: does this kernel get to /init under KVM here? (PVM hosts hang)
    c = Cpio()
    for d in ("bin", "dev", "proc"):
        c.dir(d)
    c.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    c.file("bin/busybox", Path(_busybox()).read_bytes(), 0o755)
    c.file("init", b"#!/bin/busybox sh\n/bin/busybox echo K:alive=1\n/bin/busybox poweroff -f\n",
           0o755)
    (work / "probe.cpio").write_bytes(c.bytes())
    (work / "probe.img").write_bytes(b"")
    os.truncate(work / "probe.img", 1 << 20)
    _run_qemu(_qemu_cmd(tree.image, work / "probe.cpio", work / "probe.img", "kvm"),
              work / "probe.log", 20)
    accel = "kvm" if b"K:alive=1" in (work / "probe.log").read_bytes() else "tcg"
    known[key] = accel
    CACHE.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(known, indent=1) + "\n")
    return accel


# ---------------------------------------------------------------------------------------------
# parsing the console
# ---------------------------------------------------------------------------------------------
def parse_console(text: str) -> tuple[dict, dict[str, dict]]:
    """(boot keys, {program name: {"ops": {tag: {key: value}}, ...}})."""
    boot: dict = {}
    runs: dict[str, dict] = {}
    cur = None
    for line in text.splitlines():
        i = line.find("K:")
        if i < 0:
            continue
        kv = line[i + 2:].strip()
        k, eq, v = kv.partition("=")
        if not eq:
            continue
        if k == "begin":
            cur = runs.setdefault(v, {"ops": {}, "dmesg": []})
            continue
        if cur is None or k.startswith("boot."):
            boot[k] = v
            continue
        if k in ("t0", "t1", "rc", "trace", "done", "setup.swapon"):
            cur[k] = v
        elif k == "dmesg":
            cur["dmesg"].append(v)
        elif k == "alldone":
            boot[k] = v
        else:
            tag, _, key = k.partition(".")
            cur["ops"].setdefault(tag, {})[key] = v
    return boot, runs


def _expand_pm(s: str):
    n = O.VA_PAGES
    state = np.full(n, UNMAPPED, np.int8)
    sd, wp, ex = (np.zeros(n, bool) for _ in range(3))
    off = np.full(n, -1, np.int64)
    typ = np.full(n, -1, np.int64)
    for run in filter(None, s.split(";")):
        rng, _, desc = run.partition(":")
        a, _, m = rng.partition("+")
        a, m = int(a), int(m)
        sl = slice(a, a + m)
        flags, _, sw = desc.partition("@")
        state[sl] = {"P": PRESENT, "S": SWAPPED, "N": NONE}[flags[0]]
        sd[sl] = "d" in flags[1:]
        ex[sl] = "x" in flags[1:]
        wp[sl] = "w" in flags[1:]
        if sw:
            t, _, o = sw.partition(":")
            typ[sl] = int(t)
            off[sl] = int(o) + np.arange(m)
    return state, sd, wp, ex, off, typ


def _expand_ct(s: str):
    n = O.VA_PAGES
    have = np.zeros(n, bool)
    word = np.zeros(n, np.int64)
    for run in filter(None, s.split(";")):
        rng, _, desc = run.partition(":")
        a, _, m = rng.partition("+")
        a, m = int(a), int(m)
        have[a:a + m] = True
        v = int(desc[1:])
        word[a:a + m] = v if desc[0] == "=" else (v + np.arange(a, a + m)) & 0xFFFFFFFF
    return have, word


def _expand_vma(s: str):
    n = O.VA_PAGES
    attr = np.zeros(n, np.int16)  # 0 unmapped, else 1 + prot*4 + 2*hugepage... encoded below
    for run in filter(None, s.split(";")):
        rng, _, desc = run.partition(":")
        a, _, m = rng.partition("+")
        prot = {"none": O.PROT_NONE, "r": O.PROT_READ, "rw": O.PROT_RW}[desc.rstrip("huR")]
        # "u": VmFlags uw (VM_UFFD_WP), "R": VmFlags ur (VM_UFFD_RWP, 7.3 fs/proc/task_mmu.c:1241)
        uffd = 1 if desc.endswith("u") else 2 if desc.endswith("R") else 0
        attr[int(a):int(a) + int(m)] = _vattr(prot, "h" in desc[-2:], uffd)
    return attr


def _vattr(prot: int, huge: bool, uffd: int) -> int:
    """uffd: 0 none, 1 WP, 2 RWP (ProcObs.vmas)."""
    return 1 + prot * 4 + (2 if huge else 0) + int(uffd) * 32


def _describe_vattr(v: int) -> str:
    if v == 0:
        return "unmapped"
    v -= 1
    uffd, v = v // 32, v % 32
    return (f"{O.PROT_NAMES[v // 4]}{' thp' if v & 2 else ''}"
            f"{' uffd' if uffd == 1 else ' uffd-rwp' if uffd else ''}")


# ---------------------------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------------------------
def _runs(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    if not idx.size:
        return ""
    out, start, prev = [], idx[0], idx[0]
    for i in idx[1:]:
        if i != prev + 1:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = i
        prev = i
    out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out[:6]) + (" ..." if len(out) > 6 else "")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _model_exclusive(k, mm, po, rule: str) -> np.ndarray:
    if rule == "model":
        return po.exclusive.copy()
    # mapcount1: page_mapcount(page) == 1 for present pages (not the zero page), 0 for swap
    out = np.zeros(O.VA_PAGES, bool)
    mem = k.mem
    for r in range(O.NR_REGIONS):
        sl = slice(r * O.HPAGE_PMD_NR, (r + 1) * O.HPAGE_PMD_NR)
        if mm.pmd_kind[r] == PMD_HUGE:
            # pagemap_pmd_range(): page_mapcount(pmd_page(pmd)), the head's, for all 512 pages
            head = int(mm.pmd_pfn[r])
            out[sl] = (mem.mapcount[head] + mem.entire_mapcount[head]) == 1
        elif mm.pmd_kind[r] == PMD_TABLE:
            pres = mm.pte_kind[sl] == PTE_PRESENT
            pfns = np.maximum(mm.pte_pfn[sl], 0)
            heads = np.maximum(mem.head[pfns], 0)
            cnt = mem.mapcount[pfns] + mem.entire_mapcount[heads]
            out[sl] = pres & (pfns != ZERO_PFN) & (cnt == 1)
    return out


def _model_vattr(po) -> np.ndarray:
    attr = np.zeros(O.VA_PAGES, np.int16)
    for a, b, prot, huge, uffd in po.vmas:
        attr[a:b] = _vattr(prot, huge, uffd)
    return attr


class _Mismatch(Exception):
    pass


def _compare_obs(tag: str, k, obs, kobs: dict, prof: Profile, final: bool) -> list[str]:
    """Differences between the model's observation and the kernel's K: lines of one op."""
    diffs: list[str] = []
    live_model = sorted(obs.procs)
    live_kernel = sorted(int(key[1:].split(".")[0]) for key in kobs if key.endswith(".pm"))
    if live_model != live_kernel:
        return [f"procs: model {live_model}, kernel {live_kernel}"]
    off_map: dict[int, int] = {}
    rev_map: dict[int, int] = {}
    for pid in live_model:
        po, mm = obs.procs[pid], k.mms[pid]
        pre = f"pid {pid}"
        if not final:
            kv = _expand_vma(kobs.get(f"p{pid}.vma", ""))
            mv = _model_vattr(po)
            if (kv != mv).any():
                i = _first(kv != mv)
                diffs.append(f"{pre} vma: page {i}: model {_describe_vattr(int(mv[i]))}, kernel "
                             f"{_describe_vattr(int(kv[i]))} (pages {_runs(kv != mv)})")
            kstate, ksd, kwp, kex, koff, ktyp = _expand_pm(kobs.get(f"p{pid}.pm", ""))
            names = {UNMAPPED: "unmapped", NONE: "none", PRESENT: "present", SWAPPED: "swapped"}
            if (kstate != po.state).any():
                i = _first(kstate != po.state)
                diffs.append(f"{pre} state: page {i}: model {names[int(po.state[i])]}, kernel "
                             f"{names[int(kstate[i])]} (pages {_runs(kstate != po.state)})")
                continue  # the rest follows from the state
            inv = po.state != UNMAPPED
            for name, m_arr, k_arr in (("soft_dirty", po.soft_dirty, ksd),
                                       ("uffd_wp", po.uffd_wp, kwp)):
                bad = inv & (m_arr != k_arr)
                if bad.any():
                    i = _first(bad)
                    diffs.append(f"{pre} {name}: page {i}: model {int(m_arr[i])}, kernel "
                                 f"{int(k_arr[i])} (pages {_runs(bad)})")
            mex = _model_exclusive(k, mm, po, prof.observable_rules.get("exclusive", "model"))
            bad = inv & (mex != kex)
            if bad.any():
                i = _first(bad)
                diffs.append(f"{pre} exclusive: page {i}: model {int(mex[i])}, kernel {int(kex[i])} "
                             f"(rule {prof.observable_rules.get('exclusive', 'model')}; pages "
                             f"{_runs(bad)})")
            sw = po.state == SWAPPED
            if (ktyp[sw] != 0).any():
                i = _first(sw & (ktyp != 0))
                diffs.append(f"{pre} swap: page {i}: kernel swap type {ktyp[i]}, expected 0")
            for i in np.flatnonzero(sw):
                mo, ko = int(po.swp_off[i]), int(koff[i])
                if off_map.setdefault(mo, ko) != ko or rev_map.setdefault(ko, mo) != mo:
                    diffs.append(f"{pre} swap: page {i}: model slot {mo} <-> kernel slot {ko}, but "
                                 f"model slot {mo} is kernel {off_map[mo]} and kernel {ko} is model "
                                 f"{rev_map[ko]} elsewhere (sharing differs)")
                    break
            ks = [int(x) for x in kobs.get(f"p{pid}.smaps", "0,0,0").split(",")]
            ms = [sum(s[j] for s in po.smaps) * 4 for j in (2, 3, 4)]
            if ks != ms:
                diffs.append(f"{pre} smaps Rss,Swap,AnonHugePages kB: model {ms}, kernel {ks}")
            want = po.state == PRESENT
            # the program does not read an RWP-protected page before the end: GUP faults on it
            # and the fault resolves it (gup_can_follow_protnone(), 7.3 include/linux/mm.h:4881;
            # do_uffd_rwp(), mm/memory.c:6260)
            for a, b, _prot, _huge, uffd in po.vmas:
                if uffd == 2:
                    want[a:b] &= ~po.uffd_wp[a:b]
        else:
            want = (po.state == PRESENT) | (po.state == SWAPPED)
        have, word = _expand_ct(kobs.get(f"p{pid}.ct", ""))
        if (have != want).any():
            i = _first(have != want)
            diffs.append(f"{pre} contents: page {i}: kernel {'read' if have[i] else 'did not read'} "
                         f"it, model state {int(po.state[i])}")
        else:
            bad = want & (word != po.contents.astype(np.int64))
            if bad.any():
                i = _first(bad)
                diffs.append(f"{pre} contents: page {i}: model 0x{int(po.contents[i]):08x}, kernel "
                             f"0x{int(word[i]):08x} (pages {_runs(bad)})")
        if kobs.get(f"p{pid}.bad", "0") != "0":
            diffs.append(f"{pre} contents: {kobs[f'p{pid}.bad']} page(s) whose words do not "
                         "follow their first word (torn or mixed page)")
    # base + i within a swapped-out THP: the model slots of one order-9 allocation that are still
    # held as that allocation (SwapDevice.alloc_id: never freed since) keep their differences on
    # the kernel. Only those: order-0 slots may land in any cluster on 7.3 (per-CPU clusters,
    # cluster_alloc_swap_entry() / alloc_swap_scan_cluster(), mm/swapfile.c) and the model's
    # simpler allocator puts them elsewhere, also into a THP's partly freed cluster.
    if prof.observable_rules.get("swap_offsets") == "structure" and k.swap is not None:
        by_alloc: dict[int, list[tuple[int, int]]] = {}
        for mo, ko in off_map.items():
            aid = int(k.swap.alloc_id[mo])
            if aid:
                by_alloc.setdefault(aid, []).append((mo, ko))
        for pairs in by_alloc.values():
            pairs.sort()
            mo0, ko0 = pairs[0]
            for mo, ko in pairs[1:]:
                if ko - ko0 != mo - mo0:
                    diffs.append(f"swap: model slots {mo0},{mo} (one order-9 allocation) are "
                                 f"kernel slots {ko0},{ko}: not base+i")
                    break
    return diffs


# zswap_store() takes a folio before any device I/O (7.3 mm/page_io.c:238 swap_writeout(): `if
# (zswap_store(folio)) { count_mthp_stat(..., MTHP_STAT_ZSWPOUT); goto out_unlock; }`) and
# zswap_load() serves a swap-in (:480), so these count only what zswap rejects; the models take
# every store to succeed (Kernel.swap_writeout(): no I/O, the folio leaves the swap cache;
# SwapDevice.zswap: which slots zswap holds), which the kernel does not promise, so once a trace
# enabled zswap they are not compared (contents and residency still are)
VMSTAT_DEVICE_IO = ("thp_swpout", "pswpout", "pswpin")


def _compare_vmstat(prev: dict, cur: dict, kv: str, zswap: bool = False) -> list[str]:
    got = dict((a, int(b)) for a, _, b in (x.partition(":") for x in kv.split(",") if x))
    diffs = []
    for name in VMSTAT_COMPARED:
        if zswap and name in VMSTAT_DEVICE_IO:
            continue
        m = cur.get(name, 0) - prev.get(name, 0)
        if name in got and got[name] != m:
            diffs.append(f"vmstat {name}: model +{m}, kernel +{got[name]}")
    return diffs


def _apply_as_the_program_does(k, op: O.Op, before=None) -> int:
    """k.apply(op), except for `fault write=1` on a page whose pagemap shows uffd-wp: the program
    cannot make that one write fault (MADV_POPULATE_WRITE's GUP waits for the uffd-wp trap
    killably, so the trap's SIGUSR1 cannot end it), so it reads the page and then stores to it:
    the model gets the same read fault first. A read that fails is the op's result. `before` is
    observe(k) of the current state if the caller has it (else it is taken here)."""
    if isinstance(op, O.Fault) and op.write and op.pid in k.mms:
        po = (before if before is not None else observe(k)).procs.get(op.pid)
        if po is not None and po.uffd_wp[op.page]:
            r = k.apply(O.Fault(op.pid, op.page, write=False))
            if r != O.OK:
                return r
    return k.apply(op)


def end_all_writeback(k) -> None:
    """folio_end_writeback() for every folio the model still has under writeback.

    The models keep a disk's write-out in flight until an `evict` (or a swap-in or swapoff that
    waits for it), so that the fuzzer reaches the states a folio under writeback is in. A real
    disk finishes in microseconds, and the program waits for nr_writeback to reach 0 after every
    pageout, so in the comparison with a real kernel the window closes after every op. Without
    this, a second pageout of a folio swapped in from the swap cache is skipped by the model
    (folio_test_writeback()) and swapped out by the kernel (found by kernel-check --generate)."""
    mem, sw = k.mem, k.swap
    if sw is None:
        return
    for h in np.flatnonzero(mem.writeback):
        if mem.head[h] == h:
            sw.end_writeback(mem, int(h))


def _compare_mincore(model: np.ndarray, kv: str, n: int) -> list[str]:
    """The model's mincore answers against the program's K:<op>.mc runs (offsets from start)."""
    kernel = np.full(n, -1, np.int8)
    for run in filter(None, kv.split(";")):
        rng, _, v = run.partition(":")
        a, _, m = rng.partition("+")
        kernel[int(a):int(a) + int(m)] = int(v)
    bad = model != kernel
    if not bad.any():
        return []
    i = _first(bad)
    return [f"mincore: page +{i}: model {int(model[i])}, kernel {int(kernel[i])} (2: not written, "
            f"-1: no answer; offsets {_runs(bad)})"]


def compare_trace(ops: list[O.Op], run: dict, prof: Profile,
                  without: frozenset = frozenset()) -> tuple[int | None, str | None]:
    """(op index, mismatch text) of the first mismatch, or (None, None); `without`: the
    profile's model-handled differences to leave out of the model."""
    k = make_model(prof, without)
    prev_vm = dict(k.vmstat)
    zswap = False
    if run.get("setup.swapon", "0") != "0":
        return -1, f"setup: swapon of the swap device failed ({run['setup.swapon']})"
    obs = None  # observe(k) after the previous op: the state the next op starts from
    for i, op in enumerate(ops):
        kobs = run["ops"].get(str(i))
        if kobs is None:
            rc = run.get("rc")
            return i, (f"the program stopped before op {i} (exit status {rc}"
                       + (", killed by the per-trace timeout" if rc == "143" else "") + ")")
        try:
            res = _apply_as_the_program_does(k, op, obs)
        except Exception as e:  # noqa: BLE001 - a model that raises is a finding, not a crash
            from .trace import format_op
            return i, f"op {i}: {format_op(op)}\nmodel raised {type(e).__name__}: {e}"
        end_all_writeback(k)
        mres = O.result_name(res)
        obs = observe(k)
        diffs = []
        if kobs.get("res") != mres:
            diffs.append(f"result: model {mres}, kernel {kobs.get('res')}")
        if isinstance(op, O.Mincore) and k.output is not None:
            diffs += _compare_mincore(k.output, kobs.get("mc", ""), op.npages)
        diffs += _compare_obs(str(i), k, obs, kobs, prof, final=False)
        zswap = zswap or (isinstance(op, O.ZswapEnable) and res == O.OK)
        diffs += _compare_vmstat(prev_vm, obs.vmstat, kobs.get("vm", ""), zswap)
        prev_vm = dict(obs.vmstat)
        if diffs:
            from .trace import format_op
            return i, f"op {i}: {format_op(op)}\n" + "\n".join(diffs[:8])
    end = run["ops"].get("end")
    if end is None and not k.mms:
        return None, None  # every process exited: the program has nothing to read back
    if end is None:
        return len(ops), "the program did not reach the final content check"
    diffs = _compare_obs("end", k, observe(k), end, prof, final=True)
    if diffs:
        return len(ops), "final read-back of every page holding an entry:\n" + "\n".join(diffs[:8])
    return None, None


# ---------------------------------------------------------------------------------------------
# one boot: build the program of every trace, run them all, return the console
# ---------------------------------------------------------------------------------------------
def boot_and_run(tree: KernelTree, prof: Profile, cmdline: str,
                 tagged: list[tuple[str, tuple[str, list[O.Op]]]], per_trace_timeout: int = 60,
                 timeout: float | None = None, keep_log: str | None = None
                 ) -> tuple[str, int, float, str]:
    """Run every (tag, (name, ops)) in one qemu boot: one program holding all of them
    (export_c_batch()), built with gcc -static. Returns (console text, qemu status, wall seconds,
    accel). The console's `K:begin=<tag>` lines start each trace's output."""
    try:
        src = export_c_batch([t for _, t in tagged], prof)
    except ExportError as e:
        raise KernelCheckError(str(e)) from None
    if timeout is None:
        timeout = 120 + per_trace_timeout * len(tagged)
    with tempfile.TemporaryDirectory(prefix="pmdswap-kcheck-") as tmpd:
        work = Path(tmpd)
        (work / "traces.c").write_text(src)
        out = subprocess.run(["gcc", "-static", "-O2", "-Wall", "-o", str(work / "traces"),
                              str(work / "traces.c"), "-lpthread"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if out.returncode:
            raise KernelCheckError(f"gcc failed on the traces' program: {out.stdout[-500:]}")
        initrd = work / "initramfs.cpio"
        initrd.write_bytes(build_initramfs(tree, (work / "traces").read_bytes(),
                                           [t for t, _ in tagged], per_trace_timeout))
        swapimg = work / "swap.img"
        with open(swapimg, "wb") as f:
            f.truncate(64 << 20)
        accel = _pick_accel(tree, work)
        log = work / "console.log"
        rc, wall = _run_qemu(_qemu_cmd(tree.image, initrd, swapimg, accel, cmdline), log, timeout)
        text = log.read_bytes().decode(errors="replace")
        if keep_log:
            Path(keep_log).write_text(text)
    return text, rc, wall, accel


def _check_boot(text: str, rc: int, timeout: float | None, tree: KernelTree, accel: str):
    """(boot keys, runs) of a console; KernelCheckError if the kernel never reached /init or hung."""
    boot, runs = parse_console(text)
    tail = " | ".join(text.strip().splitlines()[-3:])[-300:]
    if "kernel" not in {k.split(".")[-1] for k in boot} and "boot.kernel" not in boot:
        what = "did not finish within the timeout" if rc == -1 else f"exited with status {rc}"
        raise KernelCheckError(f"kernel {tree.image} did not boot to /init (qemu {what}, "
                               f"accel {accel}); console tail: {tail!r}")
    if "alldone" not in boot and rc == -1:
        raise KernelCheckError(f"the guest hung: no end after {timeout or 0:.0f} s (kernel "
                               f"{boot.get('boot.kernel')}); console tail: {tail!r}")
    return boot, runs


def _new_report(boot: dict, tree: KernelTree, prof: Profile, accel: str, wall: float,
                cmdline: str, skipped=()) -> KernelReport:
    return KernelReport(kernel_version=boot.get("boot.kernel", tree.version),
                        kernel_image=str(tree.image), profile=prof.name, model=prof.model,
                        accel=accel, boot_seconds=float(boot.get("boot.uptime", "nan")),
                        wall_seconds=wall, sha256=tree.sha256,
                        kernel_package=tree.describe() if tree.package else None,
                        kernel_build=boot.get("boot.build", ""), cmdline=cmdline, note=tree.note,
                        skipped=list(skipped))


def judge(path: str, ops: list[O.Op], run: dict | None, prof: Profile,
          without: frozenset = frozenset()) -> TraceResult:
    """The TraceResult of one trace's kernel output `run` (None: the guest never ran it)."""
    if run is None:
        return TraceResult(path, False, len(ops), None, "the guest never ran this trace")
    secs = (float(run["t1"]) - float(run["t0"])) if "t1" in run and "t0" in run else None
    try:
        idx, why = compare_trace(ops, run, prof, without)
    except (KeyError, ValueError, IndexError) as e:
        idx, why = None, f"unparsable kernel output ({type(e).__name__}: {e})"
    if why and run.get("dmesg"):
        why += "\nkernel log: " + " / ".join(run["dmesg"])
    return TraceResult(path, why is None, len(ops), secs, why, idx)


def mismatch_observable(why: str | None) -> str | None:
    """The observable a mismatch text is about: result, procs, vma, state, soft_dirty, uffd_wp,
    exclusive, swap, smaps, contents, vmstat; `model` (the model raised), `program` (the kernel's
    program stopped early), `setup`, or `other`."""
    if why is None:
        return None
    lines = why.splitlines()
    first = lines[0]
    if first.startswith("op ") or first.startswith("final read-back"):
        first = lines[1] if len(lines) > 1 else ""
    m = re.match(r"(?:pid \d+ )?(\w+)", first)
    word = m.group(1) if m else ""
    if word in ("result", "procs", "vma", "state", "soft_dirty", "uffd_wp", "exclusive", "swap",
                "smaps", "contents", "vmstat", "model", "setup"):
        return word
    if word == "the" and "program" in first:
        return "program"
    return "other"


# ---------------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------------
def _pick_profile(model: str, tree: KernelTree | None, profile: str | None) -> Profile:
    """The profile: as given; else for --model pmd mainline-pmd; else, without a kernel, the
    default (linux-7.3), and for a given kernel the profile of its version (uname -r: 6.1.*,
    7.2.*, 7.3*), mainline-legacy for any other."""
    if profile is not None:
        if profile not in PROFILES:
            raise KernelCheckError(f"unknown profile {profile!r} (profiles: {', '.join(PROFILES)})")
        return PROFILES[profile]
    if model == "pmd":
        return PROFILES["mainline-pmd"]
    if model != "legacy":
        raise KernelCheckError(f"unknown model {model!r}: legacy or pmd")
    if tree is None:
        return PROFILES[DEFAULT_PROFILE]
    for prof in PROFILES.values():
        if prof.model == "legacy" and prof.package is not None and re.match(
                rf"{re.escape(prof.package.series)}([.+-]|$)", tree.version):
            return prof
    return PROFILES["mainline-legacy"]


def kernel_check(trace_paths, kernel: str | None = None, model: str = "legacy",
                 profile: str | None = None, timeout: float | None = None,
                 per_trace_timeout: int = 60, keep_log: str | None = None,
                 log=None, skip_inexpressible: bool = False,
                 prove_differences: bool = False) -> KernelReport:
    """Run every trace on a real kernel in one qemu boot and compare with `model` op by op.

    Without `kernel` the profile's Debian package is fetched (or the cached copy verified): the
    profile is `profile`, else linux-7.3 (--model pmd: mainline-pmd, which names no package).
    A trace the profile cannot express is an error, or with `skip_inexpressible` left out and
    listed in the report's `skipped`. With `prove_differences`, every model-handled difference
    of the profile is left out of the model in turn and the agreeing traces are compared again
    from the same boot: the report's `proofs` lists, per difference, the traces that need it."""
    t_start = time.monotonic()
    traces: list[tuple[str, list[O.Op]]] = []
    for p in trace_paths:
        try:
            traces.append((str(p), parse_trace_bytes(Path(p).read_bytes(), str(p))))
        except OSError as e:
            raise KernelCheckError(f"{p}: {e.strerror}") from None
        except TraceError as e:
            raise KernelCheckError(str(e)) from None
    if not traces:
        raise KernelCheckError("no traces given")
    if model not in ("legacy", "pmd"):
        raise KernelCheckError(f"unknown model {model!r}: legacy or pmd")
    # a trace the target cannot express is an error before anything is fetched, built or booted
    early = _pick_profile(model, None, profile) if (profile or model == "pmd" or kernel is None) \
        else None
    if early is not None:
        if kernel is None and early.package is None:
            raise KernelCheckError(f"profile {early.name} names no kernel package ({early.kernel}):"
                                   " pass --kernel IMAGE")
    skipped: list[tuple[str, str]] = []

    def expressible(prof) -> None:
        keep = []
        for path, ops in traces:
            try:
                check_exportable(ops, prof)
            except ExportError as e:
                if not skip_inexpressible:
                    raise KernelCheckError(f"{path}: {e}") from None
                skipped.append((path, str(e)))
                continue
            keep.append((path, ops))
        if not keep:
            raise KernelCheckError(f"no trace can be expressed on profile {prof.name} "
                                   f"({len(skipped)} skipped)")
        traces[:] = keep

    if early is not None:
        expressible(early)
    missing = qemu_available()
    if missing:
        raise KernelCheckError(missing)
    tree = resolve_kernel(kernel, early, log)
    prof = _pick_profile(model, tree, profile)
    if early is None:
        expressible(prof)
    cmdline = kernel_cmdline(tree)
    tags = [f"t{n:03d}" for n in range(len(traces))]
    text, rc, wall, accel = boot_and_run(tree, prof, cmdline, list(zip(tags, traces, strict=False)),
                                         per_trace_timeout, timeout, keep_log)
    boot, runs = _check_boot(text, rc, timeout, tree, accel)
    rep = _new_report(boot, tree, prof, accel, wall, cmdline, skipped)
    for n, (path, ops) in enumerate(traces):
        rep.results.append(judge(path, ops, runs.get(f"t{n:03d}"), prof))
    if prove_differences:
        agreeing = [(n, path, ops)
                    for n, ((path, ops), r) in enumerate(zip(traces, rep.results, strict=False))
                    if r.ok]
        for d in prof.differences:
            if d.handling != "model":
                continue
            needed = []
            for n, path, ops in agreeing:
                r = judge(path, ops, runs.get(f"t{n:03d}"), prof, frozenset({d.key}))
                if not r.ok:
                    needed.append((path, r.op_index))
            rep.proofs.append((d.key, needed))
    rep.check_seconds = time.monotonic() - t_start
    return rep


# ---------------------------------------------------------------------------------------------
# command line: `pmdswap-fuzz export-c` and `pmdswap-fuzz kernel-check` (hooked in by fuzz/cli.py)
# ---------------------------------------------------------------------------------------------
def _trace_files(args_paths) -> list[str]:
    out: list[str] = []
    for p in args_paths:
        if Path(p).is_dir():
            out += sorted(str(q) for q in Path(p).glob("*.trace"))
        else:
            out.append(p)
    return out


def _positive(v: str) -> int:
    import argparse
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{v!r} is not a positive integer")
    return n


def add_cli_commands(sub, usage_error) -> None:
    """Add `export-c` and `kernel-check` to an argparse subparsers object; `usage_error` is the
    CLI's one-line bad-usage exception (exit 2)."""

    def cmd_export_c(args) -> int:
        if Path(args.output).exists():
            raise usage_error(f"{args.output}: exists; export-c does not overwrite (pick a new name)")
        try:
            ops = parse_trace_bytes(Path(args.trace).read_bytes(), args.trace)
            src = export_c(ops, Path(args.trace).stem, args.profile)
        except OSError as e:
            raise usage_error(f"{args.trace}: {e.strerror}") from None
        except (TraceError, ExportError, ValueError) as e:
            raise usage_error(str(e)) from None
        Path(args.output).write_text(src)
        print(f"{args.output}: {len(ops)} ops, kernel profile {args.profile or DEFAULT_PROFILE}; "
              f"build with: gcc -static -O2 -Wall -o repro {args.output} -lpthread")
        return 0

    def cmd_kernel_check(args) -> int:
        for name in ("timeout", "time_budget"):
            v = getattr(args, name)
            if v is not None and not 0 < v < float("inf"):
                raise usage_error(f"--{name.replace('_', '-')} must be a positive number of "
                                  f"seconds, got {v}")
        if args.generate is not None:
            return cmd_generate(args)
        if not args.traces:
            raise usage_error("kernel-check: give TRACE files or directories, or --generate N")
        try:
            rep = kernel_check(_trace_files(args.traces), kernel=args.kernel, model=args.model,
                               profile=args.profile, timeout=args.timeout, keep_log=args.log,
                               log=lambda s: print(f"kernel-check: {s}", file=sys.stderr),
                               skip_inexpressible=args.skip_inexpressible,
                               prove_differences=args.prove_differences)
        except KernelCheckError as e:
            raise usage_error(str(e)) from None
        print(format_report(rep))
        if args.json:
            Path(args.json).write_text(report_json(rep))
        return 0 if rep.ok and not rep.unproven else 1

    def cmd_generate(args) -> int:
        from .kernel_generate import format_generate, generate_check
        if args.traces:
            raise usage_error("kernel-check: --generate draws its own sequences; give no TRACE")
        if args.model != "legacy":
            raise usage_error("kernel-check --generate compares with the legacy model only")
        if args.seed is None:
            raise usage_error("kernel-check --generate needs --seed S (the sequences are seeded)")
        try:
            gen = generate_check(args.generate, args.seed, args.length, kernel=args.kernel,
                                 profile=args.profile, out_dir=args.out,
                                 minimize=not args.no_minimize, min_rounds=args.min_rounds,
                                 time_budget=args.time_budget, keep_log=args.log,
                                 log=lambda s: print(f"kernel-check: {s}", file=sys.stderr))
        except KernelCheckError as e:
            raise usage_error(str(e)) from None
        print(format_generate(gen))
        if args.json:
            from .kernel_generate import generate_json
            Path(args.json).write_text(generate_json(gen))
        return 0 if not gen.disagreements else 1

    r = sub.add_parser("export-c", help="write a trace as a C reproducer for a real kernel")
    r.add_argument("trace", metavar="TRACE")
    r.add_argument("-o", "--output", required=True, metavar="FILE.c")
    r.add_argument("--profile", choices=tuple(PROFILES), default=None,
                   help=f"target kernel profile (default {DEFAULT_PROFILE})")
    r.set_defaults(fn=cmd_export_c)

    pkgs = "; ".join(f"{n}: {p.package.describe()}" for n, p in PROFILES.items() if p.package)
    r = sub.add_parser("kernel-check", help="run traces on a real kernel under qemu and compare "
                       "with a model op by op")
    r.add_argument("traces", nargs="*", metavar="TRACE", help="trace files or directories")
    r.add_argument("--kernel", default=None, metavar="IMAGE", help="bzImage or dpkg -x tree "
                   "(default: the profile's Debian cloud kernel, fetched with apt-get download "
                   "and cached in ~/.cache/pmdswap-fuzz/kernel/)")
    r.add_argument("--model", choices=("legacy", "pmd"), default="legacy")
    r.add_argument("--profile", choices=tuple(PROFILES), default=None,
                   help=f"kernel profile; without --kernel it also picks the kernel package "
                   f"({pkgs}). Default {DEFAULT_PROFILE}, or with --kernel the profile of its "
                   "version (--model pmd: mainline-pmd)")
    r.add_argument("--json", default=None, metavar="FILE", help="also write the report as JSON")
    r.add_argument("--prove-differences", action="store_true",
                   help="after the check, leave each of the profile's model-handled differences "
                        "out in turn and compare the agreeing traces again (same boot): lists the "
                        "traces each difference is needed for, exit 1 if one is needed by none")
    r.add_argument("--skip-inexpressible", action="store_true",
                   help="leave out (and list) traces the profile cannot express, e.g. UFFDIO_MOVE "
                   "on linux-6.1, instead of stopping")
    r.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="bound on the whole qemu run (default 120 + 60 per trace)")
    r.add_argument("--log", default=None, metavar="FILE", help="keep the serial console here")
    g = r.add_argument_group("the real kernel as a third model (fuzz/kernel_generate.py)")
    g.add_argument("--generate", type=_positive, default=None, metavar="N",
                   help="instead of TRACEs: draw N sequences from the fuzzer's generator (ops a "
                   "real kernel can express), run them in one boot, compare each with the legacy "
                   "model; save and minimise every disagreement")
    g.add_argument("--seed", type=int, default=None, metavar="S", help="the sequences' seed")
    g.add_argument("--length", type=_positive, default=32, metavar="OPS",
                   help="ops per drawn sequence before inexpressible ones are dropped (32)")
    g.add_argument("--out", default="artifacts/kernel-check", metavar="DIR",
                   help="where disagreements are saved, never over a file "
                   "(default ./artifacts/kernel-check)")
    g.add_argument("--no-minimize", action="store_true",
                   help="save disagreements as drawn, without minimising them on the kernel")
    g.add_argument("--min-rounds", type=_positive, default=8, metavar="R",
                   help="at most R minimisation boots (8)")
    g.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="bound the main boot to this many seconds (what it did not reach is "
                   "left out and counted) and start no minimisation boot after it")
    r.set_defaults(fn=cmd_kernel_check)
