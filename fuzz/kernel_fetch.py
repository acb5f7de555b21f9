"""Fetch a Debian cloud kernel for `pmdswap-fuzz kernel-check`: apt-get download, dpkg -x, never
installed.

    fetch_kernel(spec, cache=CACHE) -> FetchedKernel

A `KernelPackage` (one per kernel profile, see fuzz/kernel_profiles.py) names a kernel series
("7.3") and where Debian ships it. For the system's own suites (6.1 on bookworm) the system's apt
is asked. For other suites (experimental, sid) a PRIVATE apt configuration under CACHE/apt/ is
used: a sources file with one `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] URI
SUITE main` line per suite, URI being the Debian mirror the system already uses (read from
/etc/apt/sources.list.d/*.sources and /etc/apt/sources.list), and private lists and cache
directories, passed as

    -o Dir::Etc::sourcelist=FILE -o Dir::Etc::sourceparts=/nonexistent
    -o Dir::State::Lists=DIR -o Dir::Cache=DIR

so nothing in the system's apt configuration or state changes. apt checks the archive signature.
The private lists are refreshed with `apt-get update` when older than LISTS_MAX_AGE.

The package is the highest version, across the spec's suites, of any `linux-image-<series>...-
cloud-amd64` package (suites move and the ABI name carries the point release, so neither is
hard-coded). A 7.x image package is a metapackage: the files are in the `linux-base-*`,
`linux-binary-*` and `linux-modules-*` packages it depends on with `(= version)`; those are fetched
with it. Everything is unpacked with `dpkg -x` into CACHE/kernel/<package>_<version>/, with a
manifest.json recording the package, version, suite, the sha256 of every .deb and a sha256 over the
unpacked tree. A cached tree is reused when it is the newest known version (or apt cannot be
reached) and is verified against its manifest every time.

Only the standard library is used, so tools/install-realkernel-deps.sh can pre-fetch with
`python3 -m fuzz.kernel_fetch PROFILE...` before the project's virtualenv exists.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KernelPackage", "FetchedKernel", "KernelFetchError", "fetch_kernel", "verify_tree",
           "tree_digest", "debian_version_cmp", "system_mirror", "private_apt", "CACHE",
           "KERNEL_PACKAGES"]

CACHE = Path(os.environ.get("PMDSWAP_CACHE", Path.home() / ".cache" / "pmdswap-fuzz"))
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR_ENV = "PMDSWAP_DEBIAN_MIRROR"  # the Debian archive to use where apt's sources name none
LISTS_MAX_AGE = 12 * 3600  # private apt lists older than this are refreshed with apt-get update


class KernelFetchError(Exception):
    """The kernel could not be had (apt failed, nothing cached, a cached tree altered): one line."""


@dataclass(frozen=True)
class KernelPackage:
    """Where Debian ships the cloud kernel of one series."""
    series: str  # "7.3": the package name starts linux-image-<series>
    suites: tuple[str, ...] = ()  # () = the system's own apt sources; else a private configuration
    flavour: str = "cloud-amd64"

    @property
    def pattern(self) -> str:
        """Regex of the ABI image package names of this series: linux-image-7.3-cloud-amd64,
        linux-image-7.2.13+deb14-cloud-amd64, linux-image-6.1.0-56-cloud-amd64 (not -dbg)."""
        return (rf"linux-image-{re.escape(self.series)}(\.\d+)*(\+deb\d+)?(-\d+)?"
                rf"-{re.escape(self.flavour)}")

    def describe(self) -> str:
        where = ("the system's apt sources" if not self.suites
                 else "Debian " + " or ".join(self.suites))
        return f"linux-image-{self.series}*-{self.flavour} (newest in {where})"


# the kernel package of each real-kernel profile (fuzz/kernel_profiles.py refers to these)
KERNEL_PACKAGES = {
    "linux-7.3": KernelPackage("7.3", ("experimental", "sid")),
    "linux-7.2": KernelPackage("7.2", ("sid",)),
    "linux-6.1": KernelPackage("6.1"),  # bookworm's linux-image-cloud-amd64, the system's suite
}


@dataclass
class FetchedKernel:
    tree: Path  # the dpkg -x tree
    package: str
    version: str
    suite: str
    tree_sha256: str
    note: str = ""  # e.g. "apt unreachable: newest cached kernel used"


# ---------------------------------------------------------------------------------------------
# Debian version comparison (deb-version(7)), to pick the highest version across suites
# ---------------------------------------------------------------------------------------------
def _order(c: str) -> int:
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _cmp_part(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return -1 if ac < bc else 1
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not diff:
                diff = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if diff:
            return -1 if diff < 0 else 1
    return 0


def debian_version_cmp(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian version a is lower than, equal to or higher than b."""
    def split(v: str):
        epoch, _, rest = v.partition(":") if ":" in v else ("0", "", v)
        up, _, rev = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch or 0), up, rev
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _cmp_part(ua, ub) or _cmp_part(ra, rb)


def _newest(versions):
    best = None
    for v in versions:
        if best is None or debian_version_cmp(v[0], best[0]) > 0:
            best = v
    return best


# ---------------------------------------------------------------------------------------------
# the private apt configuration
# ---------------------------------------------------------------------------------------------
def system_mirror(etc: Path = Path("/etc/apt")) -> str:
    """The Debian archive URI the system's apt uses (not the security one), else $PMDSWAP_DEBIAN_MIRROR;
    no archive is built in (a host with apt has one in its sources)."""
    found: list[str] = []
    for f in sorted(glob.glob(str(etc / "sources.list.d" / "*.sources"))):
        try:
            text = Path(f).read_text()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            key = None
            for line in stanza.splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                if line[0].isspace() and key:
                    fields[key] += " " + line.strip()
                    continue
                key, _, val = line.partition(":")
                key = key.strip().lower()
                fields[key] = val.strip()
            if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get(
                    "types", "").split():
                continue
            suites = fields.get("suites", "").split()
            for uri in fields.get("uris", "").split():
                if any("-" not in s for s in suites):  # a plain codename: the main archive
                    found.append(uri)
    lists = [etc / "sources.list"] + [Path(p) for p in
                                      sorted(glob.glob(str(etc / "sources.list.d" / "*.list")))]
    for f in lists:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "-" not in m.group(2):
                found.append(m.group(1))
    for uri in found:
        if re.match(r"https?://", uri) and not uri.rstrip("/").endswith("-security"):
            return uri.rstrip("/")
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV].rstrip("/")
    raise KernelFetchError(f"no Debian archive in the apt sources under {etc}: set {MIRROR_ENV} "
                           "to the Debian archive URI to fetch kernels from")


@dataclass
class AptConfig:
    """apt-get / apt-cache with the system's configuration (opts empty) or a private one."""
    opts: tuple[str, ...] = ()
    root: Path | None = None  # the private configuration's directory

    def run(self, tool: str, *args: str, cwd: Path | None = None, timeout: float = 300):
        cmd = [tool, *self.opts, *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
        except FileNotFoundError:
            raise KernelFetchError(f"{tool} not found: this needs a Debian-like host with apt "
                                   "(or pass --kernel IMAGE)") from None
        except subprocess.TimeoutExpired:
            raise KernelFetchError(f"{tool} {' '.join(args)} timed out after {timeout:.0f} s") \
                from None


def private_apt(suites, cache: Path = CACHE, etc: Path = Path("/etc/apt")) -> AptConfig:
    """The private apt configuration for `suites` in cache/apt/ (created or rewritten as needed)."""
    root = cache / "apt"
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    mirror = system_mirror(etc)
    src = "".join(f"deb [signed-by={KEYRING}] {mirror} {s} main\n" for s in suites)
    sl = root / "sources.list"
    if not sl.exists() or sl.read_text() != src:
        sl.write_text(src)
        stamp = root / "lists" / ".updated"
        if stamp.exists():
            stamp.unlink()  # other suites or mirror: update again
    opts = (f"-o Dir::Etc::sourcelist={sl}", "-o Dir::Etc::sourceparts=/nonexistent",
            f"-o Dir::State::Lists={root / 'lists'}", f"-o Dir::Cache={root / 'cache'}",
            "-o Acquire::Languages=none")
    return AptConfig(tuple(x for o in opts for x in o.split(" ", 1)), root)


def _update(apt: AptConfig, force: bool = False) -> str:
    """apt-get update of a private configuration if its lists are missing or old.

    Returns '' or a one-line warning (the lists that did arrive are still used)."""
    if apt.root is None:
        return ""
    stamp = apt.root / "lists" / ".updated"
    if not force and stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE:
        return ""
    r = apt.run("apt-get", "update")
    if r.returncode == 0:
        stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        return ""
    err = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.startswith(("E:", "W:", "Err"))]
    return f"apt-get update failed: {' / '.join(err[-2:]) or r.returncode}"


def _candidates(apt: AptConfig, spec: KernelPackage) -> list[tuple[str, str, str]]:
    """(version, package, suite) of every image package of the series in the spec's suites."""
    r = apt.run("apt-cache", "pkgnames", "linux-image-")
    names = [n for n in r.stdout.split() if re.fullmatch(spec.pattern, n)]
    out = []
    if names:
        r = apt.run("apt-cache", "madison", *names)
        for line in r.stdout.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) < 3 or not parts[2].endswith("Packages"):
                continue
            suite = parts[2].split()[1].split("/")[0] if len(parts[2].split()) > 1 else ""
            if spec.suites and suite not in spec.suites:
                continue
            out.append((parts[1], parts[0], suite))
    return out


def _payload(apt: AptConfig, pkg: str, version: str) -> list[str]:
    """pkg=version and every linux-* package it depends on with (= version): the files' packages."""
    r = apt.run("apt-cache", "show", f"{pkg}={version}")
    dep = re.search(r"^Depends:(.*)$", r.stdout, re.M)
    out = [f"{pkg}={version}"]
    for alt in (dep.group(1).split(",") if dep else []):
        m = re.fullmatch(r"\s*(linux-\S+)\s*\(=\s*(\S+)\)\s*", alt)
        if m and m.group(2) == version:
            out.append(f"{m.group(1)}={version}")
    return out


# ---------------------------------------------------------------------------------------------
# the cache
# ---------------------------------------------------------------------------------------------
def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path, exclude: Path | None = None) -> str:
    """sha256 over every regular file of an unpacked tree (path and content), in sorted order."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and p != exclude:
            h.update(str(p.relative_to(root)).encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def verify_tree(tree: Path) -> dict:
    """The manifest of a cached tree, after checking the tree against its recorded sha256."""
    try:
        m = json.loads((tree / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise KernelFetchError(f"cached kernel {tree} has no readable manifest.json ({e}): "
                               "delete it to fetch again") from None
    if tree_digest(tree, exclude=tree / "manifest.json") != m.get("tree_sha256"):
        raise KernelFetchError(f"cached kernel {tree} does not match its recorded sha256: "
                               "delete it to fetch again")
    return m


def _cached(kdir: Path, spec: KernelPackage) -> list[tuple[str, str, Path]]:
    out = []
    for mf in kdir.glob("*/manifest.json"):
        try:
            m = json.loads(mf.read_text())
        except (OSError, ValueError):
            continue
        if re.fullmatch(spec.pattern, m.get("package", "")):
            out.append((m.get("version", ""), m["package"], mf.parent))
    return out


def _from_manifest(tree: Path, m: dict, note: str = "") -> FetchedKernel:
    return FetchedKernel(tree, m["package"], m["version"], m.get("suite", ""), m["tree_sha256"],
                         note)


def fetch_kernel(spec: KernelPackage, cache: Path = CACHE, etc: Path = Path("/etc/apt"),
                 log=None) -> FetchedKernel:
    """The newest kernel of `spec`, unpacked (and verified) in cache/kernel/."""
    kdir = cache / "kernel"
    say = log or (lambda s: None)
    apt = private_apt(spec.suites, cache, etc) if spec.suites else AptConfig()
    cached = _cached(kdir, spec)
    warn = ""
    try:
        warn = _update(apt)
        cands = _candidates(apt, spec)
        if not cands and apt.root is not None and not warn:
            warn = _update(apt, force=True)  # lists too old to hold the series any more?
            cands = _candidates(apt, spec)
    except KernelFetchError as e:
        warn, cands = str(e), []
    best = _newest(cands)
    if best is None:
        have = _newest(cached)
        if have is None:
            where = " ".join(apt.opts[1::2][:1]) or "the system's apt sources"
            raise KernelFetchError(
                f"no {spec.describe()} found ({warn or 'apt lists it nowhere'}; apt configuration: "
                f"{where}) and none is cached in {kdir}: pass --kernel IMAGE")
        return _from_manifest(have[2], verify_tree(have[2]),
                              f"apt did not answer ({warn or 'no such package'}): cached "
                              f"{have[1]} {have[0]} used")
    version, pkg, suite = best
    dest = kdir / f"{pkg}_{version}"
    if (dest / "manifest.json").exists():
        return _from_manifest(dest, verify_tree(dest), warn)
    kdir.mkdir(parents=True, exist_ok=True)
    want = _payload(apt, pkg, version)
    say(f"fetching {' '.join(want)} from Debian {suite or '(system sources)'}")
    with tempfile.TemporaryDirectory(prefix="pmdswap-kdl-", dir=kdir) as tmp:
        dl = Path(tmp) / "debs"
        dl.mkdir()
        r = apt.run("apt-get", "download", *want, cwd=dl, timeout=900)
        debs = sorted(dl.glob("*.deb"))
        if r.returncode or len(debs) != len(want):
            last = (r.stderr or r.stdout).strip().splitlines()[-1:]
            raise KernelFetchError(f"apt-get download {' '.join(want)} failed: {last}")
        unpack = Path(tmp) / "tree"
        for deb in debs:
            r = subprocess.run(["dpkg", "-x", str(deb), str(unpack)], capture_output=True,
                               text=True)
            if r.returncode:
                raise KernelFetchError(f"dpkg -x {deb.name} failed: {r.stderr.strip()}")
        manifest = {"package": pkg, "version": version, "suite": suite,
                    "series": spec.series, "apt_sources": (
                        (apt.root / "sources.list").read_text().splitlines() if apt.root
                        else "system"),
                    "debs": {d.name: sha256_file(d) for d in debs},
                    "tree_sha256": tree_digest(unpack),
                    "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (unpack / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(unpack, dest)
    return _from_manifest(dest, manifest, warn)


def main(argv=None) -> int:
    """python3 -m fuzz.kernel_fetch [PROFILE...]: pre-fetch the kernels of these profiles."""
    names = (argv if argv is not None else sys.argv[1:]) or ["linux-7.3"]
    bad = [n for n in names if n not in KERNEL_PACKAGES]
    if bad:
        print(f"kernel_fetch: unknown profile {bad[0]!r} (profiles with a kernel package: "
              f"{', '.join(KERNEL_PACKAGES)})", file=sys.stderr)
        return 2
    rc = 0
    for name in names:
        try:
            k = fetch_kernel(KERNEL_PACKAGES[name], log=lambda s: print(f"kernel_fetch: {s}"))
        except KernelFetchError as e:
            print(f"kernel_fetch: {name}: {e}", file=sys.stderr)
            rc = 1
            continue
        print(f"kernel_fetch: {name}: {k.package} {k.version} ({k.suite or 'system'}) in {k.tree}, "
              f"tree sha256 {k.tree_sha256}" + (f"; {k.note}" if k.note else ""))
    return rc


if __name__ == "__main__":
    sys.exit(main())
