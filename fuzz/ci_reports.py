"""What CI systems read: SARIF 2.1.0 for findings (code-scanning views), JUnit XML for a replay
(one test case per input), and libFuzzer's final `stat::` lines for tools that parse them."""

from __future__ import annotations

import json
import resource
import xml.etree.ElementTree as ET
from pathlib import Path

from .status import Stats

__all__ = ["TOOL", "finding_from_trace", "op_line", "sarif_log", "junit_xml",
           "libfuzzer_stats", "write_json"]

TOOL = "pmdswap-fuzz"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def op_line(text: str, index: int) -> int:
    """The line number of op `index` in a text trace (1 if it has no such op)."""
    n = -1
    for lineno, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if body and not body.startswith("pmdswap-trace"):
            n += 1
            if n == index:
                return lineno
    return 1


def finding_from_trace(path: Path) -> dict | None:
    """A saved divergence (fuzz/artifacts.py header) as a finding: its signature, rule, the
    diverging op and the line of that op in the file; None for a trace without that header."""
    text = path.read_text(errors="replace")
    head: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# ") and ":" in line:
            key, _, val = line[2:].partition(":")
            head.setdefault(key.strip(), val.strip())
    if "signature" not in head:
        return None
    op = next((k for k in head if k.startswith("op #")), None)
    line = op_line(text, int(op[4:])) if op and op[4:].isdigit() else 1
    return {"path": path, "signature": head["signature"], "rule": head.get("rule", "divergence"),
            "op": f"{op}: {head[op]}" if op else "", "detail": head.get("detail", ""),
            "line": line}


def sarif_log(findings: list[dict], version: str, base: Path | None = None) -> dict:
    """One SARIF run; each finding a result located at its trace's diverging op. A result's
    ruleId is the oracle rule that fired; its fingerprint the divergence signature, so a
    code-scanning view counts one divergence once however often a campaign meets it."""
    rules = sorted({f["rule"] for f in findings})
    results = []
    for f in findings:
        uri = Path(f["path"])
        if base is not None:
            try:
                uri = uri.resolve().relative_to(base.resolve())
            except ValueError:
                uri = uri.resolve()
        text = f"{f['signature']}: {f['detail']}" + (f" ({f['op']})" if f["op"] else "")
        results.append({
            "ruleId": f["rule"], "ruleIndex": rules.index(f["rule"]), "level": "error",
            "message": {"text": text},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": uri.as_posix()},
                "region": {"startLine": f["line"]}}}],
            "partialFingerprints": {"divergenceSignature/v1": f["signature"]}})
    driver = {"name": TOOL, "version": version, "informationUri": "README.md",
              "rules": [{"id": r, "shortDescription": {"text": f"the two models disagree ({r})"}}
                        for r in rules]}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": driver}, "results": results}]}


def write_json(path: str, doc: dict) -> None:
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def junit_xml(suite: str, cases: list[tuple[str, float, str | None, str | None]]) -> str:
    """<testsuites> with one <testsuite>: cases are (name, seconds, failure, error); a failure is
    a divergence, an error an input that could not be read."""
    failures = sum(1 for c in cases if c[2] is not None)
    errors = sum(1 for c in cases if c[3] is not None)
    total = sum(c[1] for c in cases)
    root = ET.Element("testsuites", name=TOOL, tests=str(len(cases)), failures=str(failures),
                      errors=str(errors), time=f"{total:.3f}")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                       failures=str(failures), errors=str(errors), time=f"{total:.3f}")
    for name, secs, failure, error in cases:
        tc = ET.SubElement(ts, "testcase", classname=suite, name=name, time=f"{secs:.3f}")
        if failure is not None:
            ET.SubElement(tc, "failure", message=failure.splitlines()[0][:200]).text = failure
        if error is not None:
            ET.SubElement(tc, "error", message=error.splitlines()[0][:200]).text = error
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def libfuzzer_stats(s: Stats) -> list[str]:
    """The lines libFuzzer prints at exit with -print_final_stats=1, for any engine."""
    secs = s.elapsed()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # Linux: KiB
    rate = s.exec_rate if s.exec_rate is not None else s.execs / secs
    # only what is known: no per-unit times are kept, and new_units_added is libFuzzer's own
    return [f"stat::number_of_executed_units: {s.execs}",
            f"stat::average_exec_per_sec:     {int(rate)}",
            f"stat::peak_rss_mb:              {rss_mb}"]
