#!/usr/bin/env bash
# nginx + nchan (Debian's packages) on workloads 1-3, with the same load
# generator and the same table as bench/run.sh. Not part of CI.
#
#   bench/peers/nchan.sh                       nchan alone
#   SERVERS="sse-server baseline nchan" bench/peers/nchan.sh
#                                              all three, ratios to the baseline
#   QUICK=1 bench/peers/nchan.sh               smoke run
#
# Installs nginx-light and libnginx-mod-nchan with apt-get when missing
# (needs root; the packages' service is kept from starting). nginx runs in
# the foreground with one worker and the configuration bench/peers/nchan.conf
# (a template: @PORT@ and @DIR@ are filled in), listening on 127.0.0.1 only
# at a free port; /proc numbers are those of the worker process.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=bench/lib.sh
. "$HERE/../lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

WORKLOADS=${WORKLOADS:-1 2 3}
SERVERS=${SERVERS:-nchan}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
NCHAN_MODULE=${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}
NGINX_MASTER=

# The first of the given packages that apt knows.
first_available() {
    local p out
    for p in "$@"; do
        out=$(apt-cache policy "$p" 2>/dev/null || true)
        if [[ $out == *"Candidate: "[0-9]* ]]; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

nchan_install() {
    if [ -x "$NGINX_BIN" ] && [ -e "$NCHAN_MODULE" ]; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        log "nginx and nchan are not installed, and installing needs root"
        exit 2
    fi
    log "== installing nginx and nchan"
    apt-get update >&2
    local ngx mod
    ngx=$(first_available nginx-light nginx-core nginx) || {
        log "no nginx package"
        exit 2
    }
    mod=$(first_available libnginx-mod-nchan libnginx-mod-http-nchan) || {
        log "no nchan package"
        exit 2
    }
    # Keep the package's service from starting (it would listen on :80).
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$ngx" "$mod" >&2 ||
        rc=$?
    if [ $made_policy = 1 ]; then
        rm -f "$policy"
    fi
    if [ $rc != 0 ]; then
        exit 2
    fi
    if [ ! -e "$NCHAN_MODULE" ]; then
        NCHAN_MODULE=$(dpkg -L "$mod" | grep -m1 '\.so$' || true)
    fi
    if [ ! -x "$NGINX_BIN" ] || [ ! -e "$NCHAN_MODULE" ]; then
        log "nginx or the nchan module not found after installing"
        exit 2
    fi
}

# A TCP port nothing listens on, below the ephemeral range.
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 10000))
        if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

server_start_nchan() {
    local base=$1 dir="$BENCH_OUT/nchan" port nofile
    mkdir -p "$dir"
    nofile=$(ulimit -Hn)
    [ "$nofile" = unlimited ] && nofile=65536
    for _ in 1 2 3; do
        port=$(free_port)
        sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|@MODULE@|$NCHAN_MODULE|g" \
            -e "s|@NOFILE@|$nofile|g" -e "s|@CONNS@|$((nofile - 100))|g" \
            "$HERE/nchan.conf" >"$dir/nginx.conf"
        ${PIN_SRV[@]+"${PIN_SRV[@]}"} "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" \
            -e "$dir/error.log" >"$base.out" 2>"$base.err" &
        SRV_PID=$!
        NGINX_MASTER=$SRV_PID
        # Up when the port answers; then find the worker.
        for _ in $(seq 50); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                SRV_PORT=$port
                break
            fi
            kill -0 "$SRV_PID" 2>/dev/null || break
            sleep 0.1
        done
        if [ -n "$SRV_PORT" ] && [ "$SRV_PORT" = "$port" ]; then
            SRV_STAT_PID=$(ps -o pid=,args= --ppid "$NGINX_MASTER" |
                awk '/worker process/ {print $1; exit}')
            if [ -n "$SRV_STAT_PID" ]; then
                return 0
            fi
        fi
        log "nginx did not start on port $port:"
        cat "$base.err" "$dir/error.log" >&2 2>/dev/null || true
        server_stop_nchan
        SRV_PORT=
    done
    return 1
}

server_stop_nchan() {
    [ -n "$NGINX_MASTER" ] || return 0
    kill -TERM "$NGINX_MASTER" 2>/dev/null || true # fast shutdown, workers too
    for _ in $(seq 50); do
        kill -0 "$NGINX_MASTER" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$NGINX_MASTER" 2>/dev/null || true
    wait "$NGINX_MASTER" 2>/dev/null || true
    NGINX_MASTER=
}

if [[ " $SERVERS " == *" nchan "* ]]; then
    nchan_install
fi
bench_build
bench_main
