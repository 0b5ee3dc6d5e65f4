#!/usr/bin/env bash
# Smoke tests of a published glowq binary, the same for every target:
#   build/smoke-test.sh BINARY [RUNNER...]
# RUNNER is a command prefix that runs BINARY, e.g. for the arm64 binary on an x64 host:
#   build/smoke-test.sh artifacts/linux-arm64/glowq env QEMU_LD_PREFIX=artifacts/sysroot-bullseye-arm64 qemu-aarch64-static
# Checks run from the repository root (model paths are repo-relative). Every check runs even after one fails;
# the exit status is 1 when any failed.
#
# Adding a check: write a function check_NAME that returns non-zero after calling fail "why", and add NAME to
# the checks list at the bottom. A check that does not apply to this target sets skipped="why" and returns 0.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: build/smoke-test.sh BINARY [RUNNER...]" >&2; exit 2; }
[ -x "$1" ] || { echo "smoke: binary not found or not executable: $1" >&2; exit 2; }
binary=$(realpath "$1")
shift
runner=("$@")
cd "$(dirname "$0")/.."

# llama2.c's greedy continuation of "Once upon a time" with stories260K, which the engine must reproduce.
readonly lily=", there was a little girl named Lily. She loved to play outside in the park."
readonly stories=models/stories260K/stories260K.bin

glowq() { ${runner[@]+"${runner[@]}"} "$binary" "$@"; }
fail() { echo "smoke: $current: $*" >&2; }

# One generation, greedy, from the llama2.c checkpoint given explicitly (the default model may change).
check_generate() {
  local out
  out=$(glowq generate -m "$stories" --prompt "Once upon a time" --temperature 0 --max-tokens 30 --quiet) \
    || { fail "exit $?"; return 1; }
  [[ "$out" == "$lily"* ]] || { fail "unexpected text: $out"; return 1; }
}

# The chat loop, piped: stdout holds only the replies, one line each; /stats goes to stderr; /quit exits 0.
check_chat() {
  local out err
  err=$(mktemp)
  out=$(printf 'Once upon a time\n/stats\n/quit\n' | glowq chat -m "$stories" --temperature 0 -n 30 -q 2>"$err") \
    || { fail "exit $?: $(cat "$err")"; rm -f "$err"; return 1; }
  rm -f "$err"
  [[ "$out" == "$lily"* ]] || { fail "unexpected text: $out"; return 1; }
  [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || { fail "expected one reply line on stdout, got: $out"; return 1; }
}

# Out of space while converting (a file-size limit stands in for a full disk): one error line, exit 1, no file left.
check_out_of_space() {
  local dir msg code left
  dir=$(mktemp -d)
  msg=$( (ulimit -f 64; glowq convert -m "$stories" -o "$dir/s.glq" --method rtn --group-size 32 -q) 2>&1 ) && code=0 || code=$?
  left=$(ls -A "$dir")
  rm -rf "$dir"
  if [ "$code" -ne 1 ] || [ -n "$left" ] || [[ "$msg" != *"cannot write the output file"* ]]; then
    fail "exit $code, left [$left], said: $msg"
    return 1
  fi
}

# The bundled model (built into the binary), greedy: the int4 runtime's text equals the converter's simulation of the
# same file, with no unit restored and with all of them, and the two masks give different text.
check_bundled_model() {
  local runtime_none sim_none runtime_all sim_all common=(generate --prompt "Once upon a time" --temperature 0 --max-tokens 120 --quiet)
  runtime_none=$(glowq "${common[@]}" --restore none) || { fail "exit $? (restore none)"; return 1; }
  sim_none=$(glowq "${common[@]}" --restore none --simulated) || { fail "exit $? (simulated, restore none)"; return 1; }
  runtime_all=$(glowq "${common[@]}" --restore all) || { fail "exit $? (restore all)"; return 1; }
  sim_all=$(glowq "${common[@]}" --restore all --simulated) || { fail "exit $? (simulated, restore all)"; return 1; }
  [ "$runtime_none" == "$sim_none" ] || { fail "restore none: int4 runtime [$runtime_none] vs simulation [$sim_none]"; return 1; }
  [ "$runtime_all" == "$sim_all" ] || { fail "restore all: int4 runtime [$runtime_all] vs simulation [$sim_all]"; return 1; }
  [ "$runtime_none" != "$runtime_all" ] || { fail "restore none and all gave the same text: the mask did not reach the model"; return 1; }
  [[ "$runtime_all" == ", there was a little girl named Lily."* ]] || { fail "unexpected text: $runtime_all"; return 1; }
}

# The bundled .glq is what this binary's converter makes from stories260K with the command in models/README.md, byte
# for byte. Only for the x86-64 binary that made it: other SIMD widths round differently.
check_bundled_model_reproduces() {
  if [ ${#runner[@]} -ne 0 ] || [ "$(uname -m)" != x86_64 ]; then
    skipped="the bundled file was made by the x86-64 binary"
    return 0
  fi
  local dir
  dir=$(mktemp -d)
  glowq convert -m "$stories" -o "$dir/stories260K.glq" --method glowq --quantizer gptq --act-order \
    --group-size 32 --rank 4 --calib-generate 64 --calib-seq-len 256 -q >/dev/null || { fail "convert exit $?"; rm -rf "$dir"; return 1; }
  cmp -s "$dir/stories260K.glq" models/stories260K/stories260K.glq \
    || { fail "a fresh conversion differs from models/stories260K/stories260K.glq; re-run the command in models/README.md"; rm -rf "$dir"; return 1; }
  rm -rf "$dir"
}

# The latency harness on the bundled model with tiny settings: every output file, a row per configuration and length.
check_bench() {
  local dir rows
  dir=$(mktemp -d)
  glowq bench --prompt-lengths 8,32 --gen 4 --repeats 2 --warmup 1 --restore none,all --backend cpu --bandwidth-gbs 10 \
    --out "$dir" -q >"$dir/stdout.md" || { fail "exit $?"; rm -rf "$dir"; return 1; }
  for file in report.md report.json decode.png ttfb.png roofline.png; do
    [ -s "$dir/$file" ] || { fail "$file missing or empty"; rm -rf "$dir"; return 1; }
  done
  cmp -s "$dir/stdout.md" "$dir/report.md" || { fail "stdout differs from report.md"; rm -rf "$dir"; return 1; }
  rows=$(grep -c '^| stories260K.glq | glowq | ' "$dir/report.md" || true)
  [ "$rows" -eq 4 ] || { fail "expected 4 table rows (2 restorations x 2 prompt lengths), found $rows"; rm -rf "$dir"; return 1; }
  grep -q '"configurations"' "$dir/report.json" || { fail "report.json has no configurations"; rm -rf "$dir"; return 1; }
  [ "$(head -c 4 "$dir/decode.png" | tail -c 3)" == "PNG" ] || { fail "decode.png is not a PNG image"; rm -rf "$dir"; return 1; }
  rm -rf "$dir"
}

checks=(generate chat out_of_space bundled_model bundled_model_reproduces bench)

failed=0
for current in "${checks[@]}"; do
  started=$SECONDS
  skipped=
  if "check_$current"; then
    if [ -n "$skipped" ]; then
      echo "smoke: $current skipped ($skipped)"
    else
      echo "smoke: $current ok ($((SECONDS - started)) s)"
    fi
  else
    failed=$((failed + 1))
  fi
done
target="$binary${runner[*]:+ (via ${runner[*]})}"
if [ "$failed" -ne 0 ]; then
  echo "smoke: $failed of ${#checks[@]} checks FAILED for $target" >&2
  exit 1
fi
echo "smoke: all ${#checks[@]} checks passed for $target"
