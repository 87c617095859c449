#!/bin/sh
# Installs what the test suite needs when it is missing (Debian 12 and
# derivatives). Does nothing when everything is already there.
set -e

need=""
pkg-config --exists cmocka 2>/dev/null || need="$need libcmocka-dev pkg-config"
command -v cc >/dev/null 2>&1 || need="$need build-essential"
command -v make >/dev/null 2>&1 || need="$need make"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v clang-14 >/dev/null 2>&1 || need="$need clang-14"
[ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ] ||
    dpkg -s libclang-rt-14-dev >/dev/null 2>&1 || need="$need libclang-rt-14-dev"
command -v valgrind >/dev/null 2>&1 || need="$need valgrind"
# Debian's PyJWT: the independent implementation tokens are cross-checked with.
/usr/bin/python3 -c "import jwt" >/dev/null 2>&1 || need="$need python3-jwt"
# The Redis client's tests start their own redis-server on a free port (they
# never use the system service the package may start).
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"

[ -z "$need" ] && exit 0

echo "installing test dependencies:$need"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "please install as root: apt-get install -y$need" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# redis-server's package would start the system's Redis service; the tests
# run their own on a free port, so no service is started while installing.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq $need
