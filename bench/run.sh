#!/usr/bin/env bash
# Benchmarks: sse-server against bench/baseline.c on the standard workloads.
#
#   bench/run.sh                 full run (7-11 minutes on 2 cores)
#   QUICK=1 bench/run.sh         smoke run, about 1/10 of the load (about 1 minute)
#   WORKLOADS="1 2" SERVERS=sse-server bench/run.sh
#   THREADS=2 bench/run.sh       sse-server with 2 event loops (--threads 2)
#   THREADS="1 2" WORKLOADS="1 2 3" SERVERS=sse-server bench/run.sh
#                                every workload at 1 and at 2 loops, and a table
#                                of them side by side: deliveries/s, p99, server
#                                CPU per delivery and its ratio (within 10%?),
#                                delivered/expected (bench/threads.awk)
#   bench/scale.sh               loops 1, 2, 4, 8, 16 on workload 1, one table
#
# Workloads (QUICK=1 in brackets):
#   1  10,000 [1,000] subscribers, 1,000 [100] messages of 100 B, one post in flight
#   2  the same with 32 posts in flight (pipelined on one keep-alive connection)
#   3  1,000 [100] subscribers, 100,000 [10,000] messages of 100 B, pipeline 32;
#      publishing stops after $DURATION s (60 [15]) if not done, reported as "N of M"
#   4  10,000 [1,000] idle subscribers for 10 [2] s: server RSS per subscriber
#   5  100 [10] subscribers, 1,000 [100] messages of 64 KiB, one post in flight
#   6  (optional, not in the default set) 10,000 [1,000] subscribers, 200 [50]
#      messages at a fixed 5 [10] posts/s: latency at equal offered load
#
# Each run starts a fresh server (pinned to core 0 with taskset, the load
# generator to core 1; with THREADS=T the server gets T cores and the load
# generator the next, when the machine has them, otherwise nothing is pinned
# and the table's header says so); every server is killed by its PID at the
# end. The baseline and peers always run one loop. Prints
# a markdown table and the ratios to the baseline, and draws SVG charts of
# them (bench/charts.py; CHARTS_DIR=docs/bench for the docs' copies);
# results, charts and logs go to build/bench/. See bench/lib.sh for the
# environment variables and docs/PERFORMANCE.md for what is measured.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

WORKLOADS=${WORKLOADS:-1 2 3 4 5}
SERVERS=${SERVERS:-sse-server baseline}

bench_build
bench_main
