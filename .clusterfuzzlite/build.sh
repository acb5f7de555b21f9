#!/bin/bash -eu
# ClusterFuzzLite / OSS-Fuzz build script, with the python builder's conventions (docs/clusterfuzzlite.md).
#
# In the image of .clusterfuzzlite/Dockerfile the builder runs it with $SRC, $OUT and $WORK set;
# `compile_python_fuzzer FUZZER.py [PYINSTALLER ARGS]` (a script of that image) packages a target
# with PyInstaller as $OUT/NAME.pkg plus the wrapper $OUT/NAME that libFuzzer runs, NAME being the
# file's name without .py.
#
# One target, pmdswap_fuzzer: fuzz/atheris_target.py, both models under the oracle after every op.
# ClusterFuzzLite runs it without environment, so no catalogue bug is injected (PMDSWAP_BUG unset):
# a crash is a real divergence between the models. PMDSWAP_BUG=<bug> in the environment of the
# packaged target injects one, as for `fuzz/atheris_target.py` (the tests do that).
#
# Outside Docker (tests/test_clusterfuzzlite.py): SRC, OUT and WORK may be any directories,
# compile_python_fuzzer any command on PATH, and PMDSWAP_CFLITE_SKIP_PIP=1 skips step 1 when the
# python3 on PATH already has the project installed (the test's .venv: reinstalling it there would
# need the network and would replace its editable install).

TARGET=pmdswap_fuzzer
cd "$SRC/pmdswap-fuzz"
mkdir -p "$OUT" "$WORK"

# 1. The project, with the dependencies pyproject.toml pins (atheris==3.0.0 for CPython 3.11, ...).
if [[ "${PMDSWAP_CFLITE_SKIP_PIP:-}" != 1 ]]; then
  python3 -m pip install --no-cache-dir .
fi

# 2. The fuzz target. compile_python_fuzzer names it after the file, so it gets a copy of the harness
#    named pmdswap_fuzzer.py in $WORK (which also leaves the checkout as it is: in coverage builds
#    compile_python_fuzzer rewrites the file it is given). models.bugs is imported inside a function:
#    --collect-submodules makes PyInstaller bundle the whole models package whatever it detects.
cp fuzz/atheris_target.py "$WORK/$TARGET.py"
compile_python_fuzzer "$WORK/$TARGET.py" --collect-submodules models

# 3. $OUT/pmdswap_fuzzer_seed_corpus.zip: the text traces of corpus/seeds as fuzzer inputs, converted
#    by the atheris engine's own seed_corpus() (so they are the bytes the harness decodes: `run
#    --engine atheris` seeds its corpus the same way); and $OUT/pmdswap_fuzzer.options, the libFuzzer
#    flags that engine passes for op sequences (inputs as long as the decoder reads, at once).
python3 - "$TARGET" <<'PY'
import os
import shutil
import sys
import zipfile
from pathlib import Path

from pmdswap_fuzz.fuzz.decode import MAX_OPS, op_size
from pmdswap_fuzz.fuzz.engines import seed_corpus
from pmdswap_fuzz.models import ops as O

target = sys.argv[1]
out, work = Path(os.environ["OUT"]), Path(os.environ["WORK"])
seeds = work / "seed_corpus"
shutil.rmtree(seeds, ignore_errors=True)
seeds.mkdir(parents=True)
traces = sorted(Path("corpus/seeds").glob("*.trace"))
n = seed_corpus(seeds, [Path("corpus/seeds")])
if n == 0 or n != len(traces):
    sys.exit(f"build.sh: {n} of the {len(traces)} traces of corpus/seeds became seed inputs")
zip_path = out / f"{target}_seed_corpus.zip"
with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
    for p in sorted(seeds.iterdir()):
        z.write(p, p.name)
# the longest flat input the harness decodes, and its form byte (fuzz.fuzzer_input)
max_len = 1 + MAX_OPS * max(op_size(cls) for cls in O.OPS)
(out / f"{target}.options").write_text(f"[libfuzzer]\nmax_len = {max_len}\nlen_control = 0\n")
print(f"build.sh: {zip_path} ({n} seed inputs), {target}.options (max_len = {max_len})")
PY
