#!/usr/bin/env bash
# Make sure headless Chromium and its WebDriver (chromedriver) are installed,
# for the dashboard's browser test (tests/it/browser.rs). Idempotent: does
# nothing when /usr/bin/chromedriver exists. On Debian/Ubuntu installs the
# distribution packages; elsewhere stops with what to install.
set -euo pipefail

CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
if [[ -x "$CHROMEDRIVER" ]]; then
  exit 0
fi
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
if ! command -v apt-get >/dev/null; then
  echo "error: $CHROMEDRIVER is missing and this is not Debian/Ubuntu;" \
    "install Chromium and a matching chromedriver, or set CHROMEDRIVER to its path" >&2
  exit 1
fi
echo "installing chromium and chromium-driver with apt-get (for the dashboard's browser test)" >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver >/dev/null
if [[ ! -x "$CHROMEDRIVER" ]]; then
  echo "error: chromium-driver installed but $CHROMEDRIVER is still missing" >&2
  exit 1
fi
