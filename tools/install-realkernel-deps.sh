#!/bin/sh
# Install what `pmdswap-fuzz kernel-check` and tests/test_realkernel.py need on a Debian/Ubuntu host:
# qemu-system-x86 (the emulator), busybox-static (the guest's userland) and gcc + libc6-dev (the
# static reproducers). Idempotent: packages already installed are left alone and nothing is fetched.
# The kernel itself is fetched on first use by fuzz/kernelcheck.py (apt-get download + dpkg -x into
# ~/.cache/pmdswap-fuzz/kernel/, never installed).
set -eu
PKGS="qemu-system-x86 busybox-static gcc libc6-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-realkernel-deps: already installed:$(printf ' %s' $PKGS)"
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
echo "install-realkernel-deps: installed:$missing"
