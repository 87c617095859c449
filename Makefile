# sse-server -- build, run, test.
#
#   make            build ./sse-server
#   make run        build and run it on port 8080
#   make test       install missing test dependencies, then run every test:
#                   unit + integration (plain, then under ASan+UBSan, each
#                   with the server at --threads 1 and 4, and the cluster's
#                   chaos test once, plain at 4; then under
#                   ThreadSanitizer at 4, then the integration tests with
#                   the server under valgrind at 1), the
#                   deployment tests (nginx, systemd unit, man page, install,
#                   contrib/cluster and make cluster-demo)
#                   and the chat page and the dashboard in headless Chromium
#   make fuzz       run each libFuzzer target for FUZZ_SECONDS
#   make bench      run the benchmarks (bench-threads, bench-scale: by event-loop count;
#                   bench-cluster: three nodes over Redis against one)
#   make cluster-demo  Redis, three nodes and nginx on loopback until Ctrl-C

SHELL   := /bin/bash
CC      ?= cc
VERSION := 0.1.0
BUILD   ?= build

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wvla -Wwrite-strings
CSTD    := -std=c17 -D_GNU_SOURCE
OPT     ?= -O2 -g
CFLAGS  ?=
ALL_CFLAGS = $(CSTD) -pthread $(OPT) $(WARN) -Iinclude -DSSE_VERSION='"$(VERSION)"' -MMD -MP $(CFLAGS) $(SAN)
LDLIBS  := -pthread

SRCS     := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
# The dashboard's files, built into the binary as a C table by our own
# tools/embed (see include/dashboard.h).
DASH_FILES := /dashboard=src/dashboard/index.html /dashboard/app.js=src/dashboard/app.js \
              /dashboard/style.css=src/dashboard/style.css
DASH_GEN   := $(BUILD)/gen/dashboard_files.c
OBJS     := $(SRCS:src/%.c=$(BUILD)/src/%.o) $(DASH_GEN:.c=.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/src/%.o) $(DASH_GEN:.c=.o)

UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
ITEST_SRCS := $(wildcard tests/integration/test_*.c)
ITEST_BINS := $(ITEST_SRCS:tests/integration/%.c=$(BUILD)/tests/integration/%)
# The cluster's chaos test (three nodes and one Redis killed at random for
# CHAOS_SECONDS, 30 by default, then every subscriber checked) is long and
# loads the machine: it runs once, in the plain build at --threads 4
# (make chaos, part of test-plain), not in every integration pass.
CHAOS_BIN  := $(BUILD)/tests/integration/test_cluster_chaos
ITEST_BINS := $(filter-out $(CHAOS_BIN),$(ITEST_BINS))
# Test helpers shared by several test binaries: a reference WHATWG
# event-stream parser and the integration-test client library.
TEST_HELPERS := $(BUILD)/tests/unit/sse_parse.o
# The client library is split by job (tests/integration/itest_*.c, one public
# header itest.h); the pure JSON validator too, so the tests can check what the
# server sends.
ITEST_OBJS   := $(patsubst tests/integration/%.c,$(BUILD)/tests/integration/%.o, \
                  $(wildcard tests/integration/itest_*.c))
ITEST_LIB    := $(ITEST_OBJS) $(TEST_HELPERS) $(BUILD)/src/json.o $(BUILD)/src/number.o
# LD_PRELOAD shims that inject faults into the server (tests/fault/*.c),
# built without $(SAN) in every build directory: see fail_fdatasync.c.
FAULT_SRCS := $(wildcard tests/fault/*.c)
FAULT_SOS  := $(FAULT_SRCS:tests/fault/%.c=$(BUILD)/tests/fault/%.so)

CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

.PHONY: all run test test-deps test-plain test-asan test-tsan check unit integration chaos fuzz fuzz-build \
        bench format format-check lint clean install uninstall test-deploy test-e2e test-valgrind bench-quick \
        bench-auth bench-threads bench-scale bench-cluster cluster-demo

all: sse-server

# Copy, then rename: replacing a binary that is running must not fail.
sse-server: $(BUILD)/sse-server
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/sse-server: $(OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(@D)
	$(CC) $(CSTD) -O1 $(WARN) -o $@ $<

$(DASH_GEN): $(BUILD)/tools/embed $(foreach f,$(DASH_FILES),$(lastword $(subst =, ,$(f))))
	@mkdir -p $(@D)
	$(BUILD)/tools/embed $@ dashboard.h dashboard_files $(DASH_FILES)

$(DASH_GEN:.c=.o): $(DASH_GEN)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

run: sse-server
	./sse-server

# ---------------------------------------------------------------- tests
$(BUILD)/tests/unit/sse_parse.o: tests/unit/sse_parse.c tests/unit/sse_parse.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/unit -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_OBJS) $(TEST_HELPERS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Wno-missing-prototypes -Itests/unit -o $@ $< \
	    $(LIB_OBJS) $(TEST_HELPERS) $(CMOCKA_LIBS) $(LDLIBS)

$(ITEST_OBJS): $(BUILD)/tests/integration/%.o: tests/integration/%.c tests/integration/itest.h \
        tests/integration/itest_internal.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/integration -Itests/unit -c -o $@ $<

$(BUILD)/tests/fault/%.so: tests/fault/%.c
	@mkdir -p $(@D)
	$(CC) $(CSTD) $(OPT) $(WARN) -fPIC -shared -o $@ $<

# test_loss finds its shim beside it (../fault/).
$(BUILD)/tests/integration/test_loss: $(FAULT_SOS)

$(BUILD)/tests/integration/%: tests/integration/%.c $(ITEST_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Wno-missing-prototypes -Itests/integration -Itests/unit -o $@ $< \
	    $(ITEST_LIB) $(CMOCKA_LIBS) $(LDLIBS)

# The Redis client's tests run the event loop themselves (against a real
# redis-server, or a fake one): they link the server's objects and their own
# harness, not the HTTP client helpers. test_cluster runs sse-server nodes
# against a real redis-server: it links the HTTP client helpers as well, and
# its own (cluster_nodes.c); the link line takes every object prerequisite.
REDIS_TESTS   := test_redis test_redis_fault test_cluster_proto test_cluster test_cluster_http
REDIS_HARNESS := $(BUILD)/tests/integration/redis_harness.o
CLUSTER_NODES := $(BUILD)/tests/integration/cluster_nodes.o

$(REDIS_HARNESS): tests/integration/redis_harness.c tests/integration/redis_harness.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/integration -c -o $@ $<

$(CLUSTER_NODES): tests/integration/cluster_nodes.c tests/integration/cluster_nodes.h \
        tests/integration/redis_harness.h tests/integration/itest.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/integration -Itests/unit -c -o $@ $<

$(BUILD)/tests/integration/test_cluster $(BUILD)/tests/integration/test_cluster_http: \
        $(ITEST_OBJS) $(TEST_HELPERS) $(CLUSTER_NODES)

$(REDIS_TESTS:%=$(BUILD)/tests/integration/%): $(BUILD)/tests/integration/%: \
        tests/integration/%.c $(REDIS_HARNESS) $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Wno-missing-prototypes -Itests/integration -Itests/unit \
	    -o $@ $< $(filter %.o,$^) $(CMOCKA_LIBS) $(LDLIBS)

# Every binary runs even when an earlier one fails; the target fails at the end.
unit: $(UNIT_BINS)
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; exit $$fail

# The integration suite runs once per value of ITEST_PASSES, the passes side
# by side: every server a pass starts gets --threads N (ITEST_THREADS, see
# tests/integration/itest.h). Each pass logs to $(BUILD)/integration-threads-N.log,
# shown afterwards with its lines prefixed "[threads=N] "; a failure in any
# pass fails the target (tests/integration/passes.sh).
ITEST_PASSES ?= 1 4

integration: $(BUILD)/sse-server $(ITEST_BINS) $(FAULT_SOS)
	@SSE_SERVER=$(BUILD)/sse-server SSE_STATIC=$(CURDIR)/static \
	    bash tests/integration/passes.sh $(BUILD) "$(ITEST_PASSES)" $(ITEST_BINS)

check: unit integration

test-deps:
	@sh tests/deps.sh

test-plain:
	$(MAKE) check
	$(MAKE) chaos

# Its clients and their check are a module of their own (chaos.h).
CHAOS_OBJS := $(BUILD)/tests/integration/chaos_client.o

$(CHAOS_OBJS): $(BUILD)/tests/integration/%.o: tests/integration/%.c tests/integration/chaos.h \
        tests/integration/itest.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Itests/integration -Itests/unit -c -o $@ $<

$(CHAOS_BIN): tests/integration/test_cluster_chaos.c tests/integration/chaos.h $(CHAOS_OBJS) \
        $(ITEST_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(CMOCKA_CFLAGS) -Wno-missing-prototypes -Itests/integration -Itests/unit -o $@ $< \
	    $(CHAOS_OBJS) $(ITEST_LIB) $(CMOCKA_LIBS) $(LDLIBS)

# Needs redis-server (make test-deps installs it); bounded by its watchdog.
chaos: $(BUILD)/sse-server $(CHAOS_BIN)
	SSE_SERVER=$(BUILD)/sse-server SSE_STATIC=$(CURDIR)/static ITEST_THREADS=4 $(CHAOS_BIN)

# The whole suite again with AddressSanitizer + UndefinedBehaviorSanitizer,
# in its own build directory so plain and instrumented objects never mix.
test-asan:
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(MAKE) BUILD=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" check

# The unit and integration tests under ThreadSanitizer (the server's helper
# threads: static reload, journal compaction and syncer; its event loops), in
# their own build directory. A race makes the server exit with status 66 when
# it stops, which fails the test that started it, as does one in a test
# binary. One integration pass, at --threads 4: where races can be.
test-tsan:
	TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1 ITEST_TIMEOUT_SCALE=5 \
	    $(MAKE) BUILD=build/tsan OPT="-O1 -g -fno-omit-frame-pointer" SAN="-fsanitize=thread" \
	    ITEST_PASSES=4 check

test: test-deps
	$(MAKE) test-plain
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) test-valgrind
	$(MAKE) test-deploy
	$(MAKE) test-e2e
	@echo "all test suites passed"

# The integration tests with the server run under valgrind memcheck (a plain
# -O1 -g build in its own directory). Any invalid access, uninitialised value
# or definite leak makes valgrind exit with status 99 when the server stops,
# which fails the test binary (see SSE_SERVER_WRAPPER in itest.h). One pass,
# at --threads 1: valgrind runs a program's threads one at a time anyway.
VALGRIND       ?= valgrind --quiet --error-exitcode=99 --leak-check=full \
                  --errors-for-leak-kinds=definite --show-leak-kinds=definite
VALGRIND_TESTS ?= test_http test_stream test_static test_lifecycle test_hostile test_delivery \
                  test_ops test_dashboard test_auth test_cluster
VG_BUILD       := build/valgrind

test-valgrind:
	$(MAKE) BUILD=$(VG_BUILD) OPT="-O1 -g" $(VG_BUILD)/sse-server \
	    $(VALGRIND_TESTS:%=$(VG_BUILD)/tests/integration/%)
	@fail=0; for t in $(VALGRIND_TESTS); do echo "== valgrind $$t (ITEST_THREADS=1)"; \
	    SSE_SERVER=$(VG_BUILD)/sse-server SSE_STATIC=$(CURDIR)/static ITEST_THREADS=1 \
	    SSE_SERVER_WRAPPER="$(VALGRIND)" ITEST_TIMEOUT_SCALE=20 \
	    $(VG_BUILD)/tests/integration/$$t || fail=1; done; exit $$fail

# ---------------------------------------------------------------- fuzzing
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 120
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_check.h $(LIB_SRCS) $(DASH_GEN) tests/unit/sse_parse.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CSTD) -g -O1 -Iinclude -Itests/unit -DSSE_VERSION='"$(VERSION)"' \
	    -pthread -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $< $(LIB_SRCS) \
	    $(DASH_GEN) tests/unit/sse_parse.c

fuzz-build: $(FUZZ_BINS)

# Each target runs for FUZZ_SECONDS on its seed corpus (plus what earlier
# runs found, kept in build/fuzz); any crash, leak or failed check fails.
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus-$$t; \
	    dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
	    echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	    if ! build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	            -artifact_prefix=build/fuzz/ $$dict build/fuzz/corpus-$$t tests/fuzz/corpus/$$t \
	            > build/fuzz/$$t.log 2>&1; then \
	        tail -n 60 build/fuzz/$$t.log; echo "fuzz $$t: FAILED"; exit 1; \
	    fi; \
	    grep -E "^#[0-9]+.*DONE|stat::number_of_executed_units" build/fuzz/$$t.log | tail -n 2; \
	done

# ---------------------------------------------------------------- install
#   make install   [PREFIX=/usr/local] [DESTDIR=]   binary, static files,
#                  man page, systemd unit (its paths rewritten for PREFIX)
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/sse-server
MANDIR  ?= $(PREFIX)/share/man/man1
UNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install

install: sse-server
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/static $(DESTDIR)$(MANDIR) \
	    $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 755 sse-server $(DESTDIR)$(BINDIR)/sse-server
	cd static && find . -type f -exec $(INSTALL) -D -m 644 {} $(DESTDIR)$(DATADIR)/static/{} \;
	$(INSTALL) -m 644 contrib/nginx.conf $(DESTDIR)$(DATADIR)/nginx.conf
	$(INSTALL) -m 644 docs/sse-server.1 $(DESTDIR)$(MANDIR)/sse-server.1
	sed 's|/usr/local/|$(PREFIX)/|g' contrib/sse-server.service > $(DESTDIR)$(UNITDIR)/sse-server.service.tmp
	chmod 644 $(DESTDIR)$(UNITDIR)/sse-server.service.tmp
	mv $(DESTDIR)$(UNITDIR)/sse-server.service.tmp $(DESTDIR)$(UNITDIR)/sse-server.service
	sed 's|/usr/local/|$(PREFIX)/|g' 'contrib/cluster/sse-server@.service' \
	    > '$(DESTDIR)$(UNITDIR)/sse-server@.service.tmp'
	chmod 644 '$(DESTDIR)$(UNITDIR)/sse-server@.service.tmp'
	mv '$(DESTDIR)$(UNITDIR)/sse-server@.service.tmp' '$(DESTDIR)$(UNITDIR)/sse-server@.service'

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/sse-server $(DESTDIR)$(MANDIR)/sse-server.1 \
	    $(DESTDIR)$(UNITDIR)/sse-server.service '$(DESTDIR)$(UNITDIR)/sse-server@.service'
	rm -rf $(DESTDIR)$(DATADIR)

# Deployment tests: nginx in front (contrib/nginx.conf), the systemd unit, the
# man page, make install, contrib/cluster/ and make cluster-demo. Installs nginx, man-db and strace when missing (root).
test-deploy: sse-server
	bash tests/deploy/run.sh

# The chat page and the dashboard in headless Chromium, driven by playwright-core (installs
# chromium, nodejs and the pinned npm package when missing and root).
test-e2e: sse-server
	SSE_SERVER=$(CURDIR)/sse-server tests/e2e/run.sh

# ---------------------------------------------------------------- benchmarks
# bench/run.sh builds sse-server (make sse-server) and bench/*.c itself, runs
# the standard workloads against sse-server and a naive fan-out baseline,
# prints markdown tables and writes SVG charts next to them (bench/charts.py).
# QUICK=1 for a smoke run; WORKLOADS, SERVERS, RUNS, PROFILE, CHARTS_DIR: see
# bench/lib.sh. nginx+nchan: bench/peers/nchan.sh.
bench:
	bash bench/run.sh

bench-quick:
	QUICK=1 bash bench/run.sh

# sse-server at 1 and 2 event loops (--threads) on workloads 1-3, side by side;
# and at 1, 2, 4, 8, 16 loops on workload 1 (bench/scale.sh, SCALE_THREADS=).
bench-threads:
	THREADS="1 2" WORKLOADS="1 2 3" SERVERS=sse-server bash bench/run.sh

bench-scale:
	bash bench/scale.sh

# Private rooms: token verification cost, and 10,000 subscribers connecting
# with tokens vs without (bench/auth.sh).
bench-auth:
	bash bench/auth.sh

# Three nodes x 3,000 subscribers against one node x 9,000, over one Redis:
# deliveries/s, p99 and Redis CPU per message (bench/cluster.sh).
bench-cluster:
	bash bench/cluster.sh

# ---------------------------------------------------------------- demo
# Redis, three nodes and nginx on loopback in a temporary directory; prints
# the URLs and runs until Ctrl-C (contrib/cluster/demo.sh).
cluster-demo: $(BUILD)/sse-server
	@SSE_SERVER=$(CURDIR)/$(BUILD)/sse-server bash contrib/cluster/demo.sh

# ---------------------------------------------------------------- misc
FORMAT_FILES = $(wildcard src/*.c include/*.h tests/*/*.c tests/*/*.h bench/*.c bench/*.h tools/*.c)

format:
	clang-format -i $(FORMAT_FILES)

format-check:
	clang-format --dry-run --Werror $(FORMAT_FILES)

# cppcheck, clang-tidy (checks in .clang-tidy) and clang-format, all clean.
lint: format-check
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	    --inline-suppr -Iinclude -D_GNU_SOURCE src/
	clang-tidy --quiet src/*.c -- $(CSTD) -Iinclude -DSSE_VERSION='"$(VERSION)"'

clean:
	rm -rf build sse-server

-include $(OBJS:.o=.d)
