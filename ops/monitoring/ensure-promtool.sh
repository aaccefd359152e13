#!/bin/sh
# Make `promtool` available for tests/integration/test_promtool.py: install Debian's
# `prometheus` package when promtool is missing. Non-interactive and quiet; run as root (or
# with sudo available). Called from the Makefile's test target.
set -eu

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-promtool: promtool is missing and apt-get is not available;" \
        "install Prometheus (which ships promtool) and put promtool on PATH" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "ensure-promtool: promtool is missing; run as root or install the" \
            "'prometheus' package (apt-get install prometheus)" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "ensure-promtool: installing Debian's prometheus package for promtool" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    prometheus >/dev/null

command -v promtool >/dev/null 2>&1 || {
    echo "ensure-promtool: the prometheus package installed no promtool on PATH" >&2
    exit 1
}
