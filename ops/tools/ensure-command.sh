#!/bin/sh
# ensure-command.sh COMMAND PACKAGE...: make COMMAND available, installing the Debian PACKAGEs
# when it is missing. What the tests need beyond the virtualenv: `promtool` (package
# `prometheus`, for tests/integration/ops/test_promtool.py) and `node` with `npm` (for the Node.js
# client example, tests/system/test_node_client.py). Non-interactive and quiet; run as root (or
# with sudo available). Called from the Makefile's test targets.
set -eu

if [ "$#" -lt 2 ]; then
    echo "usage: ensure-command.sh COMMAND PACKAGE..." >&2
    exit 2
fi
COMMAND=$1
shift

if command -v "$COMMAND" >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-command: $COMMAND is missing and apt-get is not available;" \
        "install $* and put $COMMAND on PATH" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "ensure-command: $COMMAND is missing; run as root or install $*" \
            "(apt-get install $*)" >&2
        exit 1
    fi
fi

echo "ensure-command: installing Debian's $* for $COMMAND" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "$@" >/dev/null

command -v "$COMMAND" >/dev/null 2>&1 || {
    echo "ensure-command: installing $* put no $COMMAND on PATH" >&2
    exit 1
}
