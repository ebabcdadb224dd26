#!/usr/bin/env bash
# Installs the browser of the Web UI test (test/webui.test.ts): Debian's chromium package,
# which playwright-core drives (idempotent: nothing happens when /usr/bin/chromium exists).
# playwright's own browser downloads are not used, so the test needs no download site beyond
# the Debian mirrors. Runs apt-get as root, or through sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get > /dev/null; then
  echo "setup-browser: apt-get not found; install Chromium at /usr/bin/chromium by hand" >&2
  exit 1
fi
# No prompts; sudo drops the environment, so the setting goes on its command line.
as_root=(env DEBIAN_FRONTEND=noninteractive)
if [ "$(id -u)" -ne 0 ]; then
  as_root=(sudo DEBIAN_FRONTEND=noninteractive)
fi
# Waits for another apt or dpkg run (an image's own provisioning) instead of failing at once.
apt=("${as_root[@]}" apt-get -o DPkg::Lock::Timeout=600 --quiet)
# A fresh machine's package lists may be missing or stale: refresh them only when needed.
if ! "${apt[@]}" install -y chromium; then
  "${apt[@]}" update
  "${apt[@]}" install -y chromium
fi
