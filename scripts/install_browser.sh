#!/usr/bin/env bash
# Installs what tests/test_browser.py needs: Debian's headless Chromium and its driver.
# Idempotent and fast when already installed (no apt-get update then). Needs root (CI).
# The Python side (playwright) is a pinned dev dependency in pyproject.toml; we never run
# `playwright install`, which would download a browser build of its own.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "install_browser: chromium and chromedriver already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium installed')"
