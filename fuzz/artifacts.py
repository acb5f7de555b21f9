"""Where findings go: `<artifacts>/<signature>.trace`, `.bin` (raw bytes), `.min.trace`; never overwritten."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pmdswap_fuzz.models import ops as O

from .minimize import NotReproducible, minimize
from .oracle import Divergence
from .trace import format_trace

__all__ = ["safe_name", "create_unique", "describe", "Finding", "Artifacts"]


def safe_name(signature: str, limit: int = 100) -> str:
    """A filesystem-safe file stem for a signature: `invariant:foo:fork:-` -> `invariant_foo_fork`."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", signature).strip("._-")
    s = re.sub(r"_+", "_", s)
    return s[:limit] or "divergence"


def create_unique(directory: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write `data` to directory/stem+suffix, or stem-1+suffix, stem-2... : never over a file."""
    n = 0
    while True:
        path = directory / (f"{stem}{suffix}" if n == 0 else f"{stem}-{n}{suffix}")
        try:
            with open(path, "xb") as fh:
                fh.write(data)
            return path
        except FileExistsError:
            n += 1


def describe(div: Divergence) -> list[str]:
    """The comment lines that head a saved trace."""
    return [f"signature: {div.signature()}",
            f"rule: {div.rule}",
            f"op #{div.op_index}: {div.op.name}"
            + (f" (pid {div.pid})" if div.pid is not None else " (no single process)"),
            f"detail: {div.detail}",
            f"legacy: {div.legacy}",
            f"pmd: {div.pmd}"]


@dataclass
class Finding:
    signature: str
    trace: Path
    raw: Path | None = None
    minimized: Path | None = None


class Artifacts:
    """One campaign's artifact directory."""

    def __init__(self, directory: str | Path, bug: str | None = None, header: list[str] | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bug = bug
        self.header = header or []

    def save(self, ops: list[O.Op], div: Divergence, raw: bytes | None = None) -> Finding:
        stem = safe_name(div.signature())
        text = format_trace(ops, comments=self.header + describe(div),
                            notes={div.op_index: "<- diverges here"})
        path = create_unique(self.dir, stem, ".trace", text.encode())
        finding = Finding(div.signature(), path)
        if raw is not None:
            finding.raw = create_unique(self.dir, path.name[:-len(".trace")], ".bin", raw)
        return finding

    def minimize(self, finding: Finding, ops: list[O.Op], div: Divergence) -> Path | None:
        """Minimise into `<name>.min.trace`; None if the finding did not reproduce."""
        try:
            small = minimize(ops, div.signature(), self.bug)
        except NotReproducible:
            return None
        stem = finding.trace.name[:-len(".trace")] + ".min"
        text = format_trace(small, comments=self.header + [f"minimised from {finding.trace.name}: "
                                                           f"{len(ops)} -> {len(small)} ops",
                                                           f"signature: {div.signature()}"])
        finding.minimized = create_unique(self.dir, stem, ".trace", text.encode())
        return finding.minimized
