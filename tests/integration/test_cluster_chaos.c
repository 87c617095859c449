/*
 * test_cluster_chaos: the cluster under chaos. One redis-server that fsyncs
 * every write (appendonly yes, appendfsync always) and three nodes given it
 * with --redis; then, for $CHAOS_SECONDS (default 30):
 *
 *   - a publisher posts continuously, to the live nodes in turn, and records
 *     each answer: 202 with its id is an acknowledgement, 503 is not, and
 *     neither is a request whose node died under it;
 *   - 300 subscribers in three rooms each hold a stream to a random live
 *     node and, whenever it ends, reconnect to a random live node with their
 *     Last-Event-ID, as an EventSource does;
 *   - at random moments a node is killed with SIGKILL and started again (on a
 *     new port: the clients then go to the others), or Redis is killed with
 *     SIGKILL and started again on the same port and directory.
 *
 * Then the chaos stops, everything is started again and settles, and EVERY
 * subscriber must hold every acknowledged message of its room exactly once,
 * with the id its 202 gave, in id order, and no `event: reset`: Redis loses
 * nothing it answered, so no room ever has a gap. A message that was not
 * acknowledged may arrive or not, but never twice (each carries its own
 * sequence number, so a duplicate shows whatever its id). The figures go to
 * stderr; on a failure, the clients' connections, and every node's log and
 * Redis's directory are kept and named.
 *
 * Before it, test_resume_on_a_node_behind makes one of the faults the chaos
 * meets by chance certain: a node that wakes behind the room after a Redis
 * restart must not hand a resuming client what it already holds.
 *
 * The subscribers are non-blocking sockets in one poll loop (itest_sub) on
 * the main thread, which also runs the chaos; the publisher is a thread of
 * its own, so that a POST waiting on a node in trouble never holds up the
 * streams. The redis-server is spawned here, not by redis_harness.c, which
 * runs it without persistence and links the server's own objects.
 *
 * The duration is only how long the chaos lasts; settling is bounded apart,
 * and the kills come closer together in a short run. Under sanitizers or
 * valgrind, or with many --threads on few cores, a shorter run
 * (CHAOS_SECONDS=10) is enough to see every kind of fault; the Makefile runs
 * it once, in the plain build at ITEST_THREADS=4 (make chaos).
 * CHAOS_SEED repeats a run's random choices (timing still differs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "itest.h"

#define NODES        3
#define POST_EVERY   10 /* ms between two posts: 100 messages a second */
#define MAX_OLD_LOGS 128

static uint64_t rng_state;
static uint64_t first_seed; /* CHAOS_SEED repeats the run's choices */

/* A random number in [lo, hi]. */
static int rnd(int lo, int hi)
{
    return lo + (int)(itest_rng_next(&rng_state) % (uint64_t)(hi - lo + 1));
}

/* ------------------------------------------------------------ redis-server */

struct redis_proc {
    pid_t pid; /* 0 while it is down */
    int port;
    char dir[64];
    char url[64];
    bool keep_dir; /* after a failure: for reading its AOF */
};

static struct redis_proc redis = {.pid = 0};

/* Whether a socket can connect to (or else bind) 127.0.0.1:port now. */
static bool port_try(int port, bool to_connect)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && (to_connect ? connect(fd, (struct sockaddr *)&a, sizeof a)
                                     : bind(fd, (struct sockaddr *)&a, sizeof a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A free port below the kernel's ephemeral range. Redis starts again on the
 * same port, and while it is down any of the hundreds of connections this
 * test opens could be given that port as its local one, which would keep
 * Redis from binding it: ports outside the range are never handed out so. */
static int redis_pick_port(void)
{
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    if (lo < 12000)
        lo = 12000;
    for (int tries = 0; tries < 200; tries++) {
        int port = rnd(10000, lo - 1);
        if (port_try(port, false))
            return port;
    }
    return -1;
}

/* Starts redis-server on redis.port in redis.dir (its AOF, if any, is loaded
 * again); true once it accepts connections. */
static bool redis_spawn(void)
{
    char port[16], log[96];
    snprintf(port, sizeof port, "%d", redis.port);
    snprintf(log, sizeof log, "%s/redis.log", redis.dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        const char *argv[] = {"redis-server", "--port",        port,     "--bind",
                              "127.0.0.1",    "--save",        "",       "--appendonly",
                              "yes",          "--appendfsync", "always", "--dir",
                              redis.dir,      "--daemonize",   "no",     NULL};
        execvp(argv[0], (char *const *)argv); /* execvp does not write to them */
        _exit(127);
    }
    redis.pid = pid;
    int64_t deadline = itest_now_ms() + itest_ms(10000);
    while (itest_now_ms() < deadline) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            redis.pid = 0;
            return false;
        }
        if (port_try(redis.port, true))
            return true;
        itest_sleep_ms(5);
    }
    return false;
}

static void redis_kill(void)
{
    if (redis.pid > 0) {
        kill(redis.pid, SIGKILL);
        while (waitpid(redis.pid, NULL, 0) < 0 && errno == EINTR)
            ;
        redis.pid = 0;
    }
}

static void redis_show_log(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "tail -n 40 %s/redis.log >&2", redis.dir);
    fprintf(stderr, "chaos: ---- redis-server log (tail) ----\n");
    if (system(cmd) != 0)
        fprintf(stderr, "chaos: (no redis log)\n");
}

/* At exit, whatever happened: no redis-server or scratch directory left. */
static void redis_cleanup(void)
{
    redis_kill();
    if (redis.dir[0] && !redis.keep_dir)
        itest_rm_rf(redis.dir);
}

/* Starts the one redis-server of this binary, unless it runs already. */
static void redis_start(void)
{
    if (redis.pid > 0)
        return;
    snprintf(redis.dir, sizeof redis.dir, "/tmp/test_chaos.XXXXXX");
    assert_non_null(mkdtemp(redis.dir));
    atexit(redis_cleanup);
    for (int tries = 0; tries < 5; tries++) {
        redis.port = redis_pick_port();
        assert_true(redis.port > 0);
        if (redis_spawn()) {
            snprintf(redis.url, sizeof redis.url, "redis://127.0.0.1:%d", redis.port);
            return;
        }
    }
    redis_show_log();
    fail_msg("redis-server would not start (is it installed? make test-deps installs it)");
}

/* ------------------------------------------------------------------ nodes */

struct node {
    struct itest_server srv; /* .pid 0 while it is down */
    int64_t restart_ms;      /* while down: when it starts again */
    unsigned gen;            /* how many times it was started */
};

static struct node nodes[NODES];

/* The live nodes' ports (0: down), for the publisher's thread too. */
static pthread_mutex_t ports_lock = PTHREAD_MUTEX_INITIALIZER;
static int live_ports[NODES];

/* The logs of the nodes killed so far, kept for a failure's report. */
static char old_logs[MAX_OLD_LOGS][64];
static char old_names[MAX_OLD_LOGS][48];
static size_t n_old;

static void set_port(int i, int port)
{
    pthread_mutex_lock(&ports_lock);
    live_ports[i] = port;
    pthread_mutex_unlock(&ports_lock);
}

static bool node_start(int i)
{
    const char *args[] = {"--redis", redis.url, NULL};
    struct node *n = &nodes[i];
    n->srv = itest_server_start(args);
    if (n->srv.pid <= 0)
        return false;
    n->gen++;
    set_port(i, n->srv.port);
    return true;
}

/* Takes node i's log from the harness, which removes it with the server. */
static void keep_log(int i)
{
    struct node *n = &nodes[i];
    if (n_old < MAX_OLD_LOGS && n->srv.log_path[0]) {
        snprintf(old_logs[n_old], sizeof old_logs[n_old], "%s", n->srv.log_path);
        snprintf(old_names[n_old], sizeof old_names[n_old], "node %d start %u, port %d", i, n->gen,
                 n->srv.port);
        n_old++;
        n->srv.log_path[0] = 0;
    }
}

static void node_kill(int i, int64_t restart_ms)
{
    set_port(i, 0);
    keep_log(i);
    itest_server_signal(&nodes[i].srv, SIGKILL, itest_timeout());
    nodes[i].restart_ms = restart_ms;
}

/* A random live node, or -1. */
static int random_live_node(void)
{
    int live[NODES] = {0}, k = 0;
    for (int i = 0; i < NODES; i++)
        if (nodes[i].srv.pid > 0)
            live[k++] = i;
    return k ? live[rnd(0, k - 1)] : -1;
}

/* The tail of every node's log, and the logs (and Redis's directory, its
 * AOF included) kept for reading whole: a failure's evidence. */
static void dump_node_logs(void)
{
    for (int i = 0; i < NODES; i++)
        keep_log(i);
    for (size_t k = 0; k < n_old; k++) {
        struct itest_server s = {.pid = 0};
        snprintf(s.log_path, sizeof s.log_path, "%s", old_logs[k]);
        fprintf(stderr, "chaos: %s, kept in %s:\n", old_names[k], old_logs[k]);
        itest_server_dump_log(&s, 4096);
    }
    fprintf(stderr, "chaos: Redis's directory kept: %s\n", redis.dir);
    redis.keep_dir = true;
    n_old = 0;
}

static void remove_old_logs(void)
{
    for (size_t k = 0; k < n_old; k++)
        unlink(old_logs[k]);
    n_old = 0;
}

/* -------------------------------------------------------------- publisher */

struct publisher {
    pthread_t thread;
    atomic_bool stop;
    uint64_t rng;             /* its own: rnd() is the main thread's */
    struct chaos_post *posts; /* posts[seq]; read by the main thread once joined */
    size_t count, cap;
};

/* The next live node after *turn, in turn; 0 when none is. */
static int next_live_port(unsigned *turn)
{
    int port = 0;
    pthread_mutex_lock(&ports_lock);
    for (int k = 0; k < NODES && !port; k++) {
        *turn = (*turn + 1) % NODES;
        port = live_ports[*turn];
    }
    pthread_mutex_unlock(&ports_lock);
    return port;
}

static void publish_one(struct publisher *p, int port)
{
    size_t seq = p->count;
    struct chaos_post *m = &p->posts[seq];
    char target[64], body[48];
    m->room = (unsigned)(itest_rng_next(&p->rng) % CHAOS_ROOMS);
    m->port = port;
    snprintf(target, sizeof target, "/message?room=" CHAOS_ROOM_FMT, m->room);
    int len = snprintf(body, sizeof body, "{\"seq\":%zu}", seq);
    m->status = itest_post_message(port, target, body, (size_t)len, &m->id, NULL);
    m->at_ms = itest_now_ms();
    p->count = seq + 1;
}

/* Posts every POST_EVERY ms (never in a burst to catch up after a slow
 * answer) until told to stop. */
static void *publish_loop(void *arg)
{
    struct publisher *p = arg;
    unsigned turn = 0;
    int64_t next = itest_now_ms();
    while (!atomic_load(&p->stop) && p->count < p->cap) {
        int port = next_live_port(&turn);
        if (port > 0)
            publish_one(p, port);
        next += POST_EVERY;
        int64_t wait = next - itest_now_ms();
        if (wait > 0)
            itest_sleep_ms((int)wait);
        else
            next = itest_now_ms();
    }
    return NULL;
}

/* ------------------------------------------------------------------ world */

struct chaos {
    bool on;               /* kills happen only while on */
    int64_t next_ms;       /* the next kill */
    int64_t redis_back_ms; /* while Redis is down: when it starts again */
    unsigned kills;        /* so far: the first is a node's, the second Redis's */
    int gap_ms;            /* the longest time between two kills */
    unsigned node_kills, redis_kills, start_failures;
};

struct world {
    struct chaos_client *clients;
    struct chaos chaos;
    struct pollfd pfd[CHAOS_CLIENTS];
    size_t idx[CHAOS_CLIENTS];
    size_t connections;
};

/* Opens c's next stream, to a random live node. */
static void client_open(struct chaos_client *c, int64_t now)
{
    int i = random_live_node();
    if (i < 0 || !chaos_client_open(c, nodes[i].srv.port, i, nodes[i].gen, now))
        c->retry_ms = now + 100;
}

/* Starts again what is down and due. */
static void restart_due(struct chaos *ch, int64_t now)
{
    if (redis.pid == 0 && now >= ch->redis_back_ms) {
        bool ok = redis_spawn();
        fprintf(stderr, "chaos: %6" PRId64 " ms: Redis %s\n", now - chaos_t0,
                ok ? "started again" : "failed to start");
        if (!ok) {
            ch->start_failures++;
            ch->redis_back_ms = now + 200;
        }
    }
    for (int i = 0; i < NODES; i++) {
        if (nodes[i].srv.pid > 0 || now < nodes[i].restart_ms)
            continue;
        bool ok = node_start(i);
        fprintf(stderr, "chaos: %6" PRId64 " ms: node %d start %u, port %d\n", now - chaos_t0, i,
                nodes[i].gen, ok ? nodes[i].srv.port : 0);
        if (!ok) {
            ch->start_failures++;
            nodes[i].restart_ms = now + 200;
        }
    }
}

/* One kill, when it is time: a node (never the last live one) or Redis,
 * each down for a random while. */
static void chaos_tick(struct chaos *ch, int64_t now)
{
    restart_due(ch, now);
    if (!ch->on || now < ch->next_ms)
        return;
    ch->next_ms = now + rnd(ch->gap_ms / 4, ch->gap_ms);
    bool kill_redis = ch->kills == 1 || (ch->kills > 1 && rnd(0, 2) == 0);
    int live = 0;
    for (int i = 0; i < NODES; i++)
        live += nodes[i].srv.pid > 0;
    if (kill_redis && redis.pid > 0) {
        redis_kill();
        ch->redis_back_ms = now + rnd(200, 2000);
        ch->redis_kills++;
        fprintf(stderr, "chaos: %6" PRId64 " ms: Redis killed, down for %" PRId64 " ms\n",
                now - chaos_t0, ch->redis_back_ms - now);
    } else if (live > 1) {
        int i = random_live_node();
        fprintf(stderr, "chaos: %6" PRId64 " ms: node %d start %u, port %d, killed\n",
                now - chaos_t0, i, nodes[i].gen, nodes[i].srv.port);
        node_kill(i, now + rnd(200, 1500));
        ch->node_kills++;
    } else {
        return;
    }
    ch->kills++;
}

/* One turn of the loop: the chaos, the clients due to connect, then I/O for
 * at most wait_ms. */
static void world_turn(struct world *w, int wait_ms)
{
    int64_t now = itest_now_ms();
    chaos_tick(&w->chaos, now);
    size_t active = 0;
    for (size_t i = 0; i < CHAOS_CLIENTS; i++) {
        struct chaos_client *c = &w->clients[i];
        if (!c->open && now >= c->retry_ms) {
            client_open(c, now);
            w->connections += c->open;
        }
        if (c->open && itest_sub_poll_events(&c->sub)) {
            w->pfd[active] =
                (struct pollfd){.fd = c->sub.conn.fd, .events = itest_sub_poll_events(&c->sub)};
            w->idx[active++] = i;
        }
    }
    int rc = poll(w->pfd, active, wait_ms);
    for (size_t k = 0; rc > 0 && k < active; k++)
        if (w->pfd[k].revents)
            itest_sub_step(&w->clients[w->idx[k]].sub);
    now = itest_now_ms();
    for (size_t i = 0; i < CHAOS_CLIENTS; i++)
        if (w->clients[i].open)
            if (chaos_client_ended(&w->clients[i], now)) /* again, a little later */
                w->clients[i].retry_ms = now + rnd(50, 500);
}

static size_t clients_streaming(const struct world *w)
{
    size_t n = 0;
    for (size_t i = 0; i < CHAOS_CLIENTS; i++)
        n += w->clients[i].open && w->clients[i].sub.state == ITEST_SUB_STREAM;
    return n;
}

/* True once every client got a message at least as new as the newest
 * acknowledged one of its room. */
static bool clients_caught_up(const struct world *w, const uint64_t *room_last)
{
    for (size_t i = 0; i < CHAOS_CLIENTS; i++) {
        const struct chaos_client *c = &w->clients[i];
        if (c->n_got == 0 ? room_last[c->room] > c->last_id
                          : c->got[c->n_got - 1].id < room_last[c->room])
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------- test */

static int env_int(const char *name, int def, int min)
{
    const char *e = getenv(name);
    uint64_t v;
    if (!e || !itest_parse_u64(e, &v) || v < (uint64_t)min || v > 3600)
        return def;
    return (int)v;
}

/* One message per room before anything else, acknowledged: the clients'
 * first connections resume after it, so what they must hold is exactly
 * what the publisher gets acknowledged later. */
static void post_seeds(uint64_t *seed)
{
    for (unsigned r = 0; r < CHAOS_ROOMS; r++) {
        char target[64], body[32];
        snprintf(target, sizeof target, "/message?room=" CHAOS_ROOM_FMT, r);
        int len = snprintf(body, sizeof body, "{\"seed\":%u}", r);
        int64_t deadline = itest_now_ms() + itest_ms(10000);
        int st;
        /* The node may not have reached Redis yet: 503 until it has. */
        while ((st = itest_post_message(nodes[0].srv.port, target, body, (size_t)len, &seed[r],
                                        NULL)) != 202 &&
               itest_now_ms() < deadline)
            itest_sleep_ms(50);
        if (st != 202) {
            dump_node_logs();
            fail_msg("the seed message of room %u was answered %d", r, st);
        }
    }
}

/* Every client connects (no chaos yet) and must be streaming in time. */
static void open_clients(struct world *w, const uint64_t *seed)
{
    for (size_t i = 0; i < CHAOS_CLIENTS; i++) {
        w->clients[i].room = (unsigned)(i % CHAOS_ROOMS);
        w->clients[i].last_id = seed[i % CHAOS_ROOMS];
    }
    int64_t deadline = itest_now_ms() + itest_ms(15000);
    while (clients_streaming(w) < CHAOS_CLIENTS && itest_now_ms() < deadline)
        world_turn(w, 10);
    size_t n = clients_streaming(w);
    if (n < CHAOS_CLIENTS) {
        size_t shown = 0;
        for (size_t i = 0; i < CHAOS_CLIENTS && shown < 3; i++) {
            if (w->clients[i].failed || w->clients[i].sub.state != ITEST_SUB_STREAM) {
                chaos_client_print(&w->clients[i], i);
                shown++;
            }
        }
        dump_node_logs();
        fail_msg("%zu of %d clients streaming before the chaos", n, CHAOS_CLIENTS);
    }
}

/* The chaos itself: the publisher runs, kills happen, for `seconds`. */
static void run_chaos(struct world *w, struct publisher *pub, int seconds)
{
    pub->cap = (size_t)(seconds + 60) * (1000 / POST_EVERY);
    pub->posts = calloc(pub->cap, sizeof *pub->posts);
    assert_non_null(pub->posts);
    pub->rng = itest_rng_next(&rng_state) | 1;
    atomic_init(&pub->stop, false);
    assert_int_equal(pthread_create(&pub->thread, NULL, publish_loop, pub), 0);
    int64_t now = itest_now_ms(), end = now + (int64_t)seconds * 1000;
    w->chaos.on = true;
    /* At most 2.5 s between kills, less in a short run, so that even one
     * of a few seconds sees a node's death and Redis's. */
    w->chaos.gap_ms = seconds * 1000 / 3 < 2500 ? seconds * 1000 / 3 : 2500;
    w->chaos.next_ms = now + rnd(w->chaos.gap_ms / 10, w->chaos.gap_ms / 2);
    while (itest_now_ms() < end)
        world_turn(w, 10);
    /* Everything down starts again now, and the publisher stops. */
    w->chaos.on = false;
    w->chaos.redis_back_ms = 0;
    for (int i = 0; i < NODES; i++)
        nodes[i].restart_ms = 0;
    world_turn(w, 0);
    atomic_store(&pub->stop, true);
    pthread_join(pub->thread, NULL);
}

/* Drives the clients until each caught up with its room (or the bound
 * passed), then a little longer, for anything arriving late (twice, say).
 * Returns how long catching up took, -1 if it never did. */
static int64_t settle(struct world *w, const struct publisher *pub)
{
    uint64_t room_last[CHAOS_ROOMS] = {0};
    for (size_t s = 0; s < pub->count; s++)
        if (pub->posts[s].status == 202 && pub->posts[s].id > room_last[pub->posts[s].room])
            room_last[pub->posts[s].room] = pub->posts[s].id;
    int64_t start = itest_now_ms(), deadline = start + itest_ms(20000), took = -1;
    while (itest_now_ms() < deadline) {
        world_turn(w, 10);
        if (clients_caught_up(w, room_last)) {
            took = itest_now_ms() - start;
            break;
        }
    }
    int64_t linger = itest_now_ms() + 500;
    while (itest_now_ms() < linger)
        world_turn(w, 10);
    return took;
}

static void print_figures(const struct world *w, const struct publisher *pub, int seconds,
                          int64_t settled_ms)
{
    size_t acked = 0, refused = 0, lost = 0, other = 0, deliveries = 0, failed = 0;
    for (size_t s = 0; s < pub->count; s++) {
        int st = pub->posts[s].status;
        acked += st == 202;
        refused += st == 503;
        lost += st == -1;
        other += st != 202 && st != 503 && st != -1;
    }
    for (size_t i = 0; i < CHAOS_CLIENTS; i++) {
        deliveries += w->clients[i].n_got;
        failed += w->clients[i].failed;
    }
    fprintf(stderr,
            "chaos: %d s, %d nodes, Redis with appendfsync always, %d clients in %d rooms "
            "(seed %" PRIu64 ")\n"
            "chaos: %zu posts: %zu acknowledged (202), %zu answered 503, %zu without an answer "
            "(node killed), %zu other\n"
            "chaos: %u node kills, %u Redis kills, %u restarts that failed\n"
            "chaos: %zu reconnects (%zu attempts failed), %zu deliveries; caught up %" PRId64
            " ms after the chaos (-1: never)\n",
            seconds, NODES, CHAOS_CLIENTS, CHAOS_ROOMS, first_seed, pub->count, acked, refused,
            lost, other, w->chaos.node_kills, w->chaos.redis_kills, w->chaos.start_failures,
            w->connections - CHAOS_CLIENTS, failed, deliveries, settled_ms);
}

/* Checks every client (chaos_check); on a failure shows Redis's log and
 * every node's, and keeps them. The number of clients that failed. */
static size_t check_all(const struct world *w, const struct publisher *pub)
{
    size_t bad = chaos_check(w->clients, pub->posts, pub->count);
    if (bad) {
        redis_show_log();
        dump_node_logs();
    }
    return bad;
}

/* The wall-clock time of t0, to match the times printed here (ms after it)
 * with the nodes' log lines. */
static void print_start_time(void)
{
    struct timespec ts;
    struct tm tm;
    char buf[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "chaos: 0 ms is %s.%03ldZ\n", buf, ts.tv_nsec / 1000000);
}

static void test_chaos(void **state)
{
    (void)state;
    chaos_t0 = itest_now_ms();
    print_start_time();
    int seconds = env_int("CHAOS_SECONDS", 30, 1);
    uint64_t seed[CHAOS_ROOMS];
    struct world *w = calloc(1, sizeof *w);
    struct publisher pub = {.count = 0};
    assert_non_null(w);
    w->clients = calloc(CHAOS_CLIENTS, sizeof *w->clients);
    assert_non_null(w->clients);

    redis_start();
    for (int i = 0; i < NODES; i++)
        assert_true(node_start(i));
    post_seeds(seed);
    open_clients(w, seed);
    run_chaos(w, &pub, seconds);
    int64_t settled_ms = settle(w, &pub);
    print_figures(w, &pub, seconds, settled_ms);
    size_t bad = check_all(w, &pub);

    int stops[NODES];
    for (int i = 0; i < NODES; i++)
        stops[i] = itest_server_stop(&nodes[i].srv);
    remove_old_logs();
    for (size_t i = 0; i < CHAOS_CLIENTS; i++)
        chaos_client_free(&w->clients[i]);
    size_t acked = 0;
    for (size_t s = 0; s < pub.count; s++)
        acked += pub.posts[s].status == 202;
    free(pub.posts);
    struct chaos ch = w->chaos;
    free(w->clients);
    free(w);

    assert_int_equal(bad, 0);
    /* A run that tested nothing must not pass. */
    assert_true(acked > 0);
    assert_true(ch.node_kills > 0);
    assert_true(ch.redis_kills > 0);
    for (int i = 0; i < NODES; i++)
        assert_int_equal(stops[i], 0);
}

/* ------------------------------------------------ one fault, deterministic */

/* Posts to room `lag` through port until Redis takes it; its id. */
static uint64_t post_lag(int port)
{
    uint64_t id = 0;
    int64_t deadline = itest_now_ms() + itest_ms(10000);
    while (itest_post_message(port, "/message?room=lag", "{}", 2, &id, NULL) != 202 &&
           itest_now_ms() < deadline)
        itest_sleep_ms(20);
    return id;
}

/* Every event of s is a message after `after`, ids increasing; true if so. */
static bool all_after(const struct itest_sub *s, uint64_t after, const char *who)
{
    bool ok = true;
    for (size_t e = 0; e < s->events.count; e++) {
        uint64_t id = itest_event_id(&s->events.ev[e]);
        ok = ok && id > after && strcmp(s->events.ev[e].type, "message") == 0;
        after = id;
    }
    if (!ok)
        itest_print_events(who, &s->events, 0, 20);
    return ok;
}

/*
 * What the chaos finds by chance, made certain: node A sleeps (SIGSTOP)
 * through a Redis restart, so that it wakes with its connections to Redis
 * gone and its ring behind the room; meanwhile node B appends three
 * messages. A client holding all three resumes on A (its request waits in
 * A's backlog until A wakes) and must get only what follows them; A's
 * follower of the room must get them once.
 */
static void test_resume_on_a_node_behind(void **state)
{
    (void)state;
    redis_start();
    const char *args[] = {"--redis", redis.url, NULL};
    struct itest_server a = itest_server_start(args), b = itest_server_start(args);
    struct itest_sub follower, late;
    char hdr[64];
    assert_true(a.pid > 0 && b.pid > 0);
    uint64_t first = post_lag(b.port);
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", first);
    assert_int_equal(itest_sub_start(&follower, a.port, "/messages?room=lag", hdr), 0);
    assert_int_equal(itest_subs_drive(&follower, 1, 0, itest_timeout()), 1);
    uint64_t id = post_lag(b.port);
    assert_true(itest_sub_wait(&follower, 1, itest_timeout())); /* A follows the room */

    kill(a.pid, SIGSTOP);
    redis_kill();
    assert_true(redis_spawn());
    for (int k = 0; k < 3; k++)
        id = post_lag(b.port);
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %" PRIu64 "\r\n", id);
    assert_int_equal(itest_sub_start(&late, a.port, "/messages?room=lag", hdr), 0);
    for (int k = 0; k < 20 && late.state < ITEST_SUB_HEAD; k++) {
        itest_sub_step(&late);
        itest_sleep_ms(5);
    }
    kill(a.pid, SIGCONT);
    assert_int_equal(itest_subs_drive(&late, 1, 0, itest_timeout()), 1);
    uint64_t next = post_lag(b.port);
    assert_true(next > id);
    int64_t deadline = itest_now_ms() + itest_ms(10000);
    while (
        itest_now_ms() < deadline &&
        (late.events.count == 0 || itest_event_id(&late.events.ev[late.events.count - 1]) < next))
        itest_sub_wait(&late, late.events.count + 1, 100);
    itest_subs_drive(&follower, 1, 5, itest_ms(2000));
    bool late_ok = all_after(&late, id, "the client that resumed on A");
    bool follower_ok = all_after(&follower, first, "A's follower");
    size_t follower_n = follower.events.count;
    uint64_t late_last =
        late.events.count ? itest_event_id(&late.events.ev[late.events.count - 1]) : 0;
    itest_sub_close(&late);
    itest_sub_close(&follower);
    if (!late_ok || !follower_ok) {
        itest_server_dump_log(&a, 4096);
        itest_server_dump_log(&b, 4096);
    }
    assert_int_equal(itest_server_stop(&a), 0);
    assert_int_equal(itest_server_stop(&b), 0);
    assert_true(late_ok);
    assert_true(follower_ok);
    assert_true(late_last == next);
    assert_true(follower_n >= 5); /* the first, the three, the next */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_on_a_node_behind),
        cmocka_unit_test(test_chaos),
    };
    int seconds = env_int("CHAOS_SECONDS", 30, 1);
    const char *e = getenv("CHAOS_SEED");
    uint64_t s;
    first_seed = e && itest_parse_u64(e, &s) && s ? s : ((uint64_t)time(NULL) * 2654435761u) | 1;
    rng_state = first_seed;
    fprintf(stderr, "chaos: seed %" PRIu64 "\n", first_seed);
    /* The chaos, settling (bounded at 20 s, scaled) and the set-up. */
    itest_init((unsigned)seconds + 90);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
