#!/usr/bin/env bash
# Installs the headless browser that tests/e2e drives: Debian's `chromium` package (never a downloaded build).
# Safe to run repeatedly; it never fails the caller: without root or apt-get it says why and exits 0, and the
# browser test then skips with that reason.
set -u
BROWSER="${ECG_INSIGHT_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$BROWSER" ]; then
    echo "install_browser: chromium found at $BROWSER ($("$BROWSER" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: not installing chromium: apt-get is not available on this system (not Debian/Ubuntu)."
    echo "install_browser: the browser test (tests/e2e) will be skipped."
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_browser: not installing chromium: root is needed for apt-get (run: sudo apt-get install -y chromium)."
    echo "install_browser: the browser test (tests/e2e) will be skipped."
    exit 0
fi
echo "install_browser: installing Debian chromium with apt-get..."
export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null; then
    # emoji glyphs for the page icons in screenshots (cosmetic; ignore failure)
    apt-get install -y -qq --no-install-recommends fonts-noto-color-emoji >/dev/null 2>&1 || true
    echo "install_browser: installed $("$BROWSER" --version 2>/dev/null || echo chromium)"
else
    echo "install_browser: apt-get could not install chromium (no network or no package?);"
    echo "install_browser: the browser test (tests/e2e) will be skipped."
fi
exit 0
