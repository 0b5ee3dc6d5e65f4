# Sourced by the build scripts: debian_mirror prints the Debian mirror to download from.
# The mirror apt already reaches is the one most likely to be reachable from here (a proxy or a local copy);
# GLOWQ_DEBIAN_MIRROR overrides it.
debian_mirror() {
  if [ -n "${GLOWQ_DEBIAN_MIRROR:-}" ]; then echo "$GLOWQ_DEBIAN_MIRROR"; return; fi
  local found
  found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^[:space:]]+/debian/?([[:space:]]|$)' | head -n 1 | tr -d '[:space:]' || true)
  echo "${found:-http://deb.debian.org/debian}"
}
