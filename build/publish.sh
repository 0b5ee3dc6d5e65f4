#!/usr/bin/env bash
# Publishes glowq as Native-AOT single binaries:
#   build/publish.sh [linux-x64] [linux-arm64]      (no argument: both)
# to artifacts/<rid>/glowq. linux-arm64 is cross-compiled on an x64 host with clang + lld against a Debian 11
# (bullseye) arm64 sysroot, so the binary needs at most glibc 2.31 and runs on JetPack 5 (Ubuntu 20.04) and 6.
# Missing tools are installed with apt-get when run as root; the sysroot is built once and reused.
#
# Environment:
#   GLOWQ_SYSROOT        arm64 sysroot folder (default artifacts/sysroot-bullseye-arm64)
#   GLOWQ_DEBIAN_MIRROR  Debian mirror for debootstrap (default: the one apt uses here, else deb.debian.org)
#   GLOWQ_MAX_GLIBC      highest glibc symbol version the arm64 binary may need (default 2.31, JetPack 5)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# debootstrap lives in /usr/sbin, which a non-login root shell may lack.
export PATH="$PATH:/usr/sbin:/sbin"

sysroot=${GLOWQ_SYSROOT:-$root/artifacts/sysroot-bullseye-arm64}
case "$sysroot" in /*) ;; *) sysroot=$root/$sysroot ;; esac
max_glibc=${GLOWQ_MAX_GLIBC:-2.31}
# Written last into a finished sysroot: a folder without it is a half-built one from an interrupted run.
sysroot_stamp=.glowq-sysroot-complete

die() { echo "publish: $*" >&2; exit 1; }
log() { echo "publish: $*" >&2; }

targets=()
for arg in "$@"; do
  case "$arg" in
    linux-x64|linux-arm64) targets+=("$arg") ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown target '$arg' (expected linux-x64 and/or linux-arm64)" ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(linux-x64 linux-arm64)

command -v dotnet >/dev/null 2>&1 || die "the .NET 10 SDK (dotnet) is required and was not found on PATH"
[ "$(uname -m)" = x86_64 ] || die "this script cross-builds from an x86_64 host; this host is $(uname -m)"

apt_updated=false
# apt_install PACKAGE... : installs what is missing, as root only; others get told what to install.
apt_install() {
  [ $# -gt 0 ] || return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    die "missing packages: $* (install them with apt-get as root, or run this script as root)"
  fi
  if ! $apt_updated; then
    apt-get update -qq
    apt_updated=true
  fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# highest_glibc BINARY : prints the highest GLIBC_x.y symbol version the binary needs.
highest_glibc() {
  local readelf
  readelf=$(command -v readelf || command -v llvm-readelf) || die "readelf (binutils) or llvm-readelf is required to read the glibc versions"
  "$readelf" --version-info --wide "$1" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/^GLIBC_//' | sort -uV | tail -n 1
}

# version_le A B : true when version A <= version B.
version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]; }

# shellcheck source=debian-mirror.sh
source build/debian-mirror.sh  # the working directory is the repository root

build_sysroot() {
  if [ -f "$sysroot/$sysroot_stamp" ]; then
    log "reusing the arm64 sysroot $sysroot"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "building the arm64 sysroot needs root (debootstrap); missing: $sysroot"
  local mirror tmp
  mirror=$(debian_mirror)
  tmp=$sysroot.partial
  rm -rf "$tmp" "$sysroot"
  mkdir -p "$(dirname "$sysroot")"
  log "building the Debian 11 arm64 sysroot from $mirror (once)"
  # --foreign stops before the second stage, which would run arm64 code (nothing ever runs inside the sysroot);
  # minbase + the three -dev packages are all the link needs: libc, libgcc's crt files and libraries, zlib.
  # --no-merged-usr: the dpkg -x below would replace a lib -> usr/lib link with a second, real lib folder.
  debootstrap --variant=minbase --arch=arm64 --foreign --no-merged-usr \
    --include=libc6-dev,libgcc-10-dev,zlib1g-dev bullseye "$tmp" "$mirror" >"$tmp.log" 2>&1 \
    || { tail -n 20 "$tmp.log" >&2; die "debootstrap of Debian 11 arm64 from $mirror failed (log: $tmp.log)"; }
  local debs=("$tmp"/var/cache/apt/archives/*.deb)
  [ -e "${debs[0]}" ] || die "debootstrap left no packages in $tmp/var/cache/apt/archives"
  # --foreign leaves most packages unpacked only by its second stage; unpack all of them (files only) ourselves.
  local deb
  for deb in "${debs[@]}"; do dpkg -x "$deb" "$tmp"; done
  # Debian's -dev symlinks are absolute (libpthread.so -> /lib/...); the linker would follow them to the host's
  # x86-64 files, so make every absolute link inside the sysroot relative to the sysroot.
  local link target
  while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    case "$target" in
      /*) ln -sfn "$(realpath -ms --relative-to="$(dirname "$link")" "$tmp$target")" "$link" ;;
    esac
  done < <(find "$tmp" -type l -print0)
  rm -rf "$tmp/var/cache/apt/archives"/*.deb "$tmp.log"
  touch "$tmp/$sysroot_stamp"
  mv "$tmp" "$sysroot"
}

publish_x64() {
  # Native AOT links with clang or gcc, and needs zlib's headers and library.
  local missing=()
  command -v clang >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  [ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
  apt_install "${missing[@]}"
  dotnet publish src/GlowQ.Cli -c Release -r linux-x64 -o artifacts/linux-x64
}

publish_arm64() {
  local missing=()
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  command -v ld.lld >/dev/null 2>&1 || missing+=(lld)
  # With clang as the linker driver, the ILCompiler targets split the symbols off (glowq.dbg) with llvm-objcopy.
  command -v llvm-objcopy >/dev/null 2>&1 || missing+=(llvm)
  if [ ! -f "$sysroot/$sysroot_stamp" ]; then
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  fi
  apt_install "${missing[@]}"
  build_sysroot
  # Default arm64 instruction set on purpose: armv8.2/dotprod code aborts on the Jetson Nano's Cortex-A57.
  dotnet publish src/GlowQ.Cli -c Release -r linux-arm64 -o artifacts/linux-arm64 \
    -p:SysRoot="$sysroot" -p:LinkerFlavor=lld
}

for rid in "${targets[@]}"; do
  log "publishing $rid"
  case "$rid" in
    linux-x64) publish_x64 ;;
    linux-arm64) publish_arm64 ;;
  esac
  bin=artifacts/$rid/glowq
  [ -x "$bin" ] || die "dotnet publish finished but $bin is missing"
  glibc=$(highest_glibc "$bin")
  [ -n "$glibc" ] || die "found no GLIBC symbol versions in $bin"
  log "$bin: $(stat -c %s "$bin") bytes, needs glibc $glibc"
  if [ "$rid" = linux-arm64 ] && ! version_le "$glibc" "$max_glibc"; then
    die "$bin needs GLIBC_$glibc, above $max_glibc (JetPack 5's glibc): was it linked against the host's libraries instead of the bullseye sysroot?"
  fi
done
