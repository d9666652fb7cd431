#!/usr/bin/env bash
# Build the sdist and a portable manylinux wheel of allcores for this machine's Python.
#
#   scripts/build-wheels.sh [OUT_DIR]        (default: dist/)
#
# 1. `python -m build` makes the sdist, then builds the wheel *from the sdist* (so the
#    sdist is proven to rebuild everything from the Cython sources).
# 2. `auditwheel repair` checks which glibc symbols and shared libraries the extension
#    uses and retags the wheel with the oldest manylinux policy it satisfies (patchelf
#    is what it rewrites the ELF files with).
# 3. The result is checked: a manylinux tag, and no GLIBC symbol version newer than it.
# Needs: Python >= 3.11 with venv, a C compiler. Everything else comes from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
python=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet build auditwheel patchelf

"$work/venv/bin/python" -m build --outdir "$work/raw" .
mkdir -p "$out"
cp "$work"/raw/*.tar.gz "$out"/
if [ "$(uname -s)" = Linux ]; then
    # auditwheel finds patchelf on PATH.
    PATH="$work/venv/bin:$PATH" auditwheel repair --wheel-dir "$out" "$work"/raw/*.whl
    "$work/venv/bin/python" - "$out" <<'PY'
import pathlib, re, subprocess, sys, zipfile, tempfile
wheels = sorted(pathlib.Path(sys.argv[1]).glob("*manylinux*.whl"))
assert wheels, "auditwheel produced no manylinux wheel"
wheel = wheels[-1]
tag = re.search(r"manylinux_(\d+)_(\d+)", wheel.name)
allowed = (int(tag.group(1)), int(tag.group(2)))
with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
    zf.extractall(tmp)
    for so in pathlib.Path(tmp).rglob("*.so"):
        symbols = subprocess.run(["objdump", "-T", str(so)], capture_output=True,
                                 text=True, check=True).stdout
        versions = {tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_([\d.]+)", symbols)}
        newest = max(versions, default=(2, 0))
        assert newest[:2] <= allowed, f"{so.name} needs GLIBC_{newest}, tag allows {allowed}"
        print(f"{wheel.name}: {so.name} needs at most GLIBC_{'.'.join(map(str, newest))}")
PY
else
    cp "$work"/raw/*.whl "$out"/  # macOS and Windows wheels need no repair step here
fi
ls -l "$out"
