#!/bin/sh
# promtool_check.sh FILE: runs `promtool check metrics < FILE` (Prometheus's own
# linter for the text exposition format) and fails on any problem it reports.
#
# When promtool is missing it is installed from the Debian package
# `prometheus` (as root, or with password-less sudo), with a temporary
# /usr/sbin/policy-rc.d so that the Prometheus service the package ships is
# never started. Set ITEST_NO_INSTALL=1 to never install anything.
#
# Exit status: 0 the file passes, 1 promtool reported a problem (printed),
# 77 skipped (promtool missing and not installable; the reason is printed),
# 2 usage error. Every step is bounded in time.
set -u

file=${1:-}
if [ -z "$file" ] || [ ! -r "$file" ]; then
    echo "usage: $0 METRICS_FILE" >&2
    exit 2
fi

skip() {
    echo "promtool_check: SKIPPED: $*" >&2
    exit 77
}

install_promtool() {
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            skip "promtool is missing and we are not root; install it with: apt-get install -y prometheus"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || skip "promtool is missing and there is no apt-get"
    echo "promtool_check: installing the Debian package 'prometheus' (for promtool)" >&2
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        # Refuse every service start while the package is configured.
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" &&
            made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        $sudo timeout 120 apt-get update -qq >/dev/null 2>&1
    fi
    # shellcheck disable=SC2086
    $sudo timeout 300 apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 ||
        { $sudo timeout 120 apt-get update -qq >/dev/null 2>&1 &&
            $sudo timeout 300 apt-get install -y -qq --no-install-recommends prometheus \
                >/dev/null 2>&1; }
    [ -n "$made_policy" ] && $sudo rm -f "$policy"
    command -v promtool >/dev/null 2>&1 ||
        skip "promtool is missing and 'apt-get install -y prometheus' did not provide it"
}

if ! command -v promtool >/dev/null 2>&1; then
    [ -n "${ITEST_NO_INSTALL:-}" ] &&
        skip "promtool is missing (ITEST_NO_INSTALL is set; apt-get install -y prometheus)"
    install_promtool
fi

out=$(timeout 30 promtool check metrics <"$file" 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "promtool check metrics: exit status $rc" >&2
    [ -n "$out" ] && printf '%s\n' "$out" >&2
    exit 1
fi
echo "promtool_check: $(promtool --version 2>&1 | head -n 1): no problems" >&2
exit 0
