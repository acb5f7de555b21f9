#!/bin/sh
# Install what `pmdswap-fuzz kernel-check` and tests/test_realkernel.py need on a Debian/Ubuntu host:
# qemu-system-x86 (the emulator), busybox-static (the guest's userland) and gcc + libc6-dev (the
# static reproducers). Idempotent: packages already installed are left alone.
#
# Then it pre-fetches the kernels of the profiles in $PMDSWAP_KERNELS (default: linux-7.3, the
# newest 7.3 cloud kernel in Debian experimental or sid) with fuzz/kernel_fetch.py, the same code
# kernel-check uses: apt-get download through a private apt configuration in
# ~/.cache/pmdswap-fuzz/apt/ (or $PMDSWAP_CACHE/apt/; the system's apt sources are not touched),
# dpkg -x into ~/.cache/pmdswap-fuzz/kernel/, never installed. A kernel already cached is verified,
# not fetched again. PMDSWAP_KERNELS="linux-7.3 linux-7.2 linux-6.1" fetches all three;
# PMDSWAP_KERNELS=none skips this step. It runs as the calling user (without sudo), so the cache is
# that user's.
set -eu
PKGS="qemu-system-x86 busybox-static gcc libc6-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
	echo "install-realkernel-deps: already installed:$(printf ' %s' $PKGS)"
else
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	$SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
	echo "install-realkernel-deps: installed:$missing"
fi

KERNELS=${PMDSWAP_KERNELS:-linux-7.3}
[ "$KERNELS" = none ] && exit 0
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
# shellcheck disable=SC2086 # one word per profile
$PY -m fuzz.kernel_fetch $KERNELS
