#!/bin/sh
# Install Debian's chromium, the headless browser tests/test_html_report.py renders
# `pmdswap-fuzz report` pages with (the test skips, saying why, without it). Idempotent.
set -eu
if command -v chromium >/dev/null 2>&1; then
	echo "install-browser: chromium already installed"
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
echo "install-browser: installed chromium"
