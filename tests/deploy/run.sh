#!/usr/bin/env bash
# run.sh: every deployment test (tests/deploy/test_*.sh), each bounded in
# time. Installs what they need when missing and root (or passwordless sudo):
# curl, nginx, man-db, strace. Last line: "N passed, N failed" over all tests;
# exits non-zero on any failure.
#
#   bash tests/deploy/run.sh            # all
#   bash tests/deploy/run.sh nginx man  # some (test_nginx.sh, test_man.sh)
set -u
. "$(dirname "$0")/lib.sh"

TEST_TIMEOUT=${TEST_TIMEOUT:-180}

for need in "curl curl" "nginx nginx" "man man-db" "strace strace"; do
    # shellcheck disable=SC2086
    need_pkg $need || echo "note: ${need#* } is missing; tests that need it will say so"
done
make -C "$REPO" -s build/sse-server || {
    bad "build sse-server" "make failed"
    summary
    exit
}

if [ $# -gt 0 ]; then
    tests=()
    for t in "$@"; do tests+=("$DEPLOY_DIR/test_$t.sh"); done
else
    tests=("$DEPLOY_DIR"/test_*.sh)
fi

total_pass=0
total_fail=0
failed_tests=""
for t in "${tests[@]}"; do
    name=$(basename "$t")
    if [ ! -f "$t" ]; then
        echo "== $name: no such test"
        total_fail=$((total_fail + 1))
        failed_tests="$failed_tests $name"
        continue
    fi
    out=$(mktemp /tmp/deploy-run-XXXXXX)
    timeout -k 5 "$TEST_TIMEOUT" bash "$t" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    last=$(tail -n 1 "$out")
    rm -f "$out"
    if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        p=${BASH_REMATCH[1]}
        f=${BASH_REMATCH[2]}
    else
        p=0
        f=0
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # Killed by the timeout, or died before its summary.
        echo "FAIL  $name exited with status $rc${last:+ after: $last}"
        f=1
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    [ "$f" -gt 0 ] && failed_tests="$failed_tests $name"
    echo
done

[ -n "$failed_tests" ] && echo "failing:$failed_tests"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
