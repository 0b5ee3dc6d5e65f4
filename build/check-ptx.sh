#!/usr/bin/env bash
# Assembles every committed PTX module with NVIDIA's ptxas for each Jetson/datacentre target the runtime supports,
# so PTX that a device's driver JIT would reject fails CI on a machine with no GPU.
#
# ptxas comes from Debian's nvidia-cuda-toolkit package (non-free, CUDA 11.8): the .deb is downloaded through a
# private apt configuration (the system's sources and state are left alone) and unpacked, not installed, into
# artifacts/cuda-ptxas, which later runs reuse. PTXAS=/path/to/ptxas skips all of that.
#
# Environment:
#   PTXAS                ptxas to use instead of the downloaded one
#   GLOWQ_PTX_DIR        folder of .ptx files (default src/GlowQ.Runtime/Cuda/Ptx)
#   GLOWQ_PTX_ARCHES     targets to check (default "sm_53 sm_62 sm_72 sm_87 sm_90")
#   GLOWQ_DEBIAN_MIRROR  Debian mirror (default: the one apt uses here, else deb.debian.org)
set -euo pipefail
cd "$(dirname "$0")/.."

ptx_dir=${GLOWQ_PTX_DIR:-src/GlowQ.Runtime/Cuda/Ptx}
# Nano (53), TX2 (62), Xavier (72), Orin (87), Hopper (90).
read -r -a arches <<<"${GLOWQ_PTX_ARCHES:-sm_53 sm_62 sm_72 sm_87 sm_90}"
tool_dir=$PWD/artifacts/cuda-ptxas

die() { echo "check-ptx: $*" >&2; exit 1; }
log() { echo "check-ptx: $*" >&2; }

# shellcheck source=debian-mirror.sh
source build/debian-mirror.sh  # the working directory is the repository root

fetch_ptxas() {
  local ptxas=$tool_dir/root/usr/bin/ptxas
  if [ -x "$ptxas" ]; then echo "$ptxas"; return; fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get is required to fetch ptxas (or set PTXAS=/path/to/ptxas)"
  local mirror apt_dir suite
  mirror=$(debian_mirror)
  suite=$( (. /etc/os-release && echo "${VERSION_CODENAME:-}") 2>/dev/null || true)
  suite=${suite:-bookworm}
  apt_dir=$tool_dir/apt
  rm -rf "$tool_dir"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/download"
  # A private sources list with non-free enabled: the machine's own apt configuration stays untouched.
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite non-free" >"$apt_dir/sources.list"
  local -a apt_opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
  log "downloading nvidia-cuda-toolkit ($suite non-free, $mirror) for ptxas (once)"
  apt-get "${apt_opts[@]}" update -qq >"$apt_dir/update.log" 2>&1 \
    || { tail -n 20 "$apt_dir/update.log" >&2; die "apt-get update of $mirror $suite non-free failed"; }
  (cd "$apt_dir/download" && apt-get "${apt_opts[@]}" download nvidia-cuda-toolkit) >"$apt_dir/download.log" 2>&1 \
    || { tail -n 20 "$apt_dir/download.log" >&2; die "apt-get download nvidia-cuda-toolkit failed"; }
  dpkg -x "$apt_dir"/download/nvidia-cuda-toolkit_*.deb "$tool_dir/root"
  rm -rf "$apt_dir/download" "$apt_dir/cache" "$apt_dir/lists"
  [ -x "$ptxas" ] || die "the nvidia-cuda-toolkit package held no usr/bin/ptxas"
  echo "$ptxas"
}

shopt -s nullglob
files=("$ptx_dir"/*.ptx)
[ "${#files[@]}" -gt 0 ] || die "no .ptx files in $ptx_dir (run: dotnet run -c Release --project build/GlowQ.PtxCompiler)"

ptxas=${PTXAS:-$(fetch_ptxas)}
"$ptxas" --version | tail -n 1 >&2

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
printf '%-40s' "kernel"
for arch in "${arches[@]}"; do printf ' %-7s' "$arch"; done
printf '\n'
failures=0
for file in "${files[@]}"; do
  printf '%-40s' "$(basename "$file" .ptx)"
  for arch in "${arches[@]}"; do
    if out=$("$ptxas" "-arch=$arch" -o /dev/null "$file" 2>&1); then
      printf ' %-7s' "ok"
    else
      printf ' %-7s' "FAIL"
      failures=$((failures + 1))
      printf '%s %s:\n%s\n' "$file" "$arch" "$out" >>"$errors"
    fi
  done
  printf '\n'
done

if [ "$failures" -gt 0 ]; then
  cat "$errors" >&2
  die "$failures kernel/target pair(s) failed ptxas"
fi
echo "check-ptx: ${#files[@]} PTX module(s) assemble for ${arches[*]}"
