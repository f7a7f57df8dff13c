#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the browser tests (EventSource, the chat page).
# Playwright drives this system browser through executable_path: `playwright install` cannot download here.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
# A CJK font too: the chat page's screenshots show Chinese instead of empty boxes, and the test scans
# (tests/support/scans.py) are drawn by PDFium with it, so OCR has Chinese to read.
has_cjk_font() { fc-list :lang=zh 2>/dev/null | grep -q .; }
[ -x "$CHROMIUM" ] && has_cjk_font && exit 0

hint() {
  echo "$1" >&2
  echo "Install it yourself (Debian/Ubuntu: sudo apt-get install chromium), then re-run scripts/install_browser.sh." >&2
  exit 1
}

command -v apt-get >/dev/null || hint "$CHROMIUM is missing and apt-get is not available to install it."
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  hint "$CHROMIUM is missing and installing it needs root (or sudo without a password)."
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
apt() { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >>"$log" 2>&1; }
# Refresh the package lists only when they do not know chromium yet; a stale list shows up as a failed
# download during install, which one refresh and retry covers.
has_candidate() { apt-cache policy chromium 2>/dev/null | grep -q 'Candidate: [^(]'; }
started=$SECONDS
updated=no
if ! has_candidate; then
  apt update -qq || { tail -n 20 "$log" >&2; hint "apt-get update failed (is a package mirror reachable?)."; }
  updated=yes
fi
if ! apt install -y -qq --no-install-recommends chromium fonts-wqy-microhei; then
  if [ "$updated" = no ] && apt update -qq && apt install -y -qq --no-install-recommends chromium fonts-wqy-microhei; then
    :
  else
    tail -n 20 "$log" >&2
    hint "apt-get install chromium failed."
  fi
fi
[ -x "$CHROMIUM" ] || hint "chromium installed, but $CHROMIUM is still missing."
echo "Installed $("$CHROMIUM" --version 2>/dev/null || echo chromium) in $((SECONDS - started)) s."
