#include "server.h"
#include "server_journal.h"

#include "cluster.h"
#include "conn.h"
#include "http.h"
#include "journal.h"
#include "keyring.h"
#include "log.h"
#include "net.h"
#include "qsbr.h"
#include "response.h"
#include "room.h"
#include "static_files.h"
#include "thread.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Accepts per listener wakeup: new connections cannot starve the
 * established ones. */
#define ACCEPT_BATCH 64
/* Descriptors kept free for files and the spare fd when deriving the client
 * limit from RLIMIT_NOFILE. */
#define RESERVED_FDS ((size_t)32)
/* After EMFILE with nothing to shed, retry accepting after this long. */
#define ACCEPT_RETRY_MS 100

/* Bytes of a refused connection's request looked at for its Origin. */
#define BUSY_PEEK 4096

/*
 * The answer at --max-clients (and to a connection shed when out of
 * descriptors): best effort, never blocking; the caller closes fd. The
 * request head, when it has already arrived, is read without waiting for
 * its Origin (response_busy_origin); reading it also means closing sends a
 * FIN, not a reset that could destroy the answer in flight.
 */
static void send_busy(int fd, void *arg)
{
    struct worker *w = arg;
    const struct config *cfg = &w->srv->cfg;
    char head[BUSY_PEEK];
    int status;
    ssize_t n = recv(fd, head, sizeof head, MSG_DONTWAIT);
    bool parsed = n > 0 && http_parse_head(head, (size_t)n, 0, &w->req, &status) > 0;
    const char *origin = response_busy_origin(cfg, parsed ? &w->req : NULL);
    char response[256 + sizeof cfg->cors_origins];
    size_t len = response_busy(response, sizeof response, cfg, origin);
    if (len > 0) {
        ssize_t sent = send(fd, response, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)sent;
    }
}

/* The thread's own loop: NULL on a thread that runs none. */
static _Thread_local struct worker *current_worker;

static void sum_counter(counter_t *sum, const counter_t *c)
{
    counter_add(sum, counter_get(c));
}

void server_worker_totals(const struct server *srv, struct worker_stats *sum, size_t *nconns,
                          size_t *streams)
{
    memset(sum, 0, sizeof *sum);
    *nconns = *streams = 0;
    for (size_t i = 0; i < srv->nworkers; i++) {
        const struct worker *w = &srv->workers[i];
        const struct worker_stats *st = &w->stats;
        sum_counter(&sum->accepted, &st->accepted);
        sum_counter(&sum->closed, &st->closed);
        sum_counter(&sum->rejected_busy, &st->rejected_busy);
        sum_counter(&sum->shed_no_fds, &st->shed_no_fds);
        sum_counter(&sum->requests, &st->requests);
        for (size_t k = 0; k < sizeof st->responses_by_class / sizeof st->responses_by_class[0];
             k++) {
            sum_counter(&sum->responses_by_class[k], &st->responses_by_class[k]);
        }
        sum_counter(&sum->deliveries, &st->deliveries);
        sum_counter(&sum->bytes_sent, &st->bytes_sent);
        sum_counter(&sum->lagged_dropped, &st->lagged_dropped);
        sum_counter(&sum->auth_refused, &st->auth_refused);
        *nconns += counter_get(&w->nconns);
        *streams += counter_get(&w->streams);
    }
}

/* Open connections over all workers: --max-clients is a global limit. */
static size_t server_connections(const struct server *srv)
{
    return atomic_load(&srv->connections);
}

/* An accepted connection on its way to another loop. */
struct fd_handoff {
    struct inbox_item item;
    int fd;
};

/* The loop with the fewest connections. What the acceptor handed to each
 * (it alone counts that) minus what each has closed (its own counter) is
 * exact even for connections still in flight to their loop, so a burst of
 * accepts spreads evenly instead of piling onto the one that looked idle. */
static struct worker *least_loaded(struct server *srv)
{
    struct worker *best = &srv->workers[0];
    uint64_t best_load = UINT64_MAX;
    for (size_t i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        uint64_t load = w->handed - counter_get(&w->stats.closed);
        if (load < best_load) {
            best = w;
            best_load = load;
        }
    }
    return best;
}

/* On the acceptor's loop: the connection goes to the least loaded loop. */
static void server_hand_out(struct server *srv, int fd)
{
    struct worker *w = least_loaded(srv);
    atomic_fetch_add(&srv->connections, 1);
    w->handed++;
    if (w == current_worker) {
        if (conn_accept(w, fd) < 0) {
            log_warn("cannot set up a connection: out of memory");
        }
        return;
    }
    struct fd_handoff *h = malloc(sizeof *h);
    if (!h) {
        close(fd);
        atomic_fetch_sub(&srv->connections, 1);
        w->handed--;
        log_warn("cannot hand a connection out: out of memory");
        return;
    }
    h->fd = fd;
    inbox_push(&w->inbox, &h->item);
}

static void server_pause_accept(struct server *srv);

static void on_accept_timer(struct loop *loop, struct loop_timer *t)
{
    struct server *srv = container_of(t, struct server, accept_timer);
    (void)loop;
    if (srv->accept_paused) {
        srv->accept_paused = false;
        if (loop_watch_mod(srv->loop, &srv->listen_watch, EPOLLIN) < 0) {
            log_error("cannot resume accepting: %s", strerror(errno));
        }
    }
}

/* Out of descriptors and nothing could be shed: stop watching the listener
 * for a moment rather than spin on a readable socket we cannot accept from. */
static void server_pause_accept(struct server *srv)
{
    if (srv->accept_paused) {
        return;
    }
    srv->accept_paused = true;
    loop_watch_mod(srv->loop, &srv->listen_watch, 0);
    loop_timer_start(srv->loop, &srv->accept_timer, ACCEPT_RETRY_MS, on_accept_timer);
}

static void on_listen(struct loop *loop, struct loop_watch *lw, uint32_t events)
{
    struct server *srv = container_of(lw, struct server, listen_watch);
    struct worker *w = &srv->workers[0];
    (void)loop;
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = net_accept(srv->listen_fd);
        if (fd == NET_AGAIN) {
            return;
        }
        if (fd == NET_NO_FDS) {
            counter_add(&w->stats.shed_no_fds, 1);
            if (counter_get(&w->stats.shed_no_fds) % 1000 == 1) {
                log_warn("out of file descriptors with %zu connections: shedding new ones",
                         server_connections(srv));
            }
            if (!net_shed_one(srv->listen_fd, &srv->spare_fd, send_busy, w)) {
                server_pause_accept(srv);
            }
            return;
        }
        if (fd < 0) {
            log_warn("accept: %s", strerror(errno));
            return;
        }
        if (server_connections(srv) >= srv->max_clients) {
            /* Admission control before any allocation: a polite, best-effort
             * answer on a fresh socket whose buffer is empty. */
            counter_add(&w->stats.rejected_busy, 1);
            send_busy(fd, w);
            close(fd);
            continue;
        }
        server_hand_out(srv, fd);
    }
}

/* Something other loops may be reading without a lock, to be freed once
 * none can (qsbr.h). */
struct retired_ptr {
    struct qsbr_node node;
    void *ptr;
};

static void retire_files(struct qsbr_node *node)
{
    struct retired_ptr *r = (struct retired_ptr *)node;
    static_files_unref(r->ptr);
    free(r);
}

static void retire_keys(struct qsbr_node *node)
{
    struct retired_ptr *r = (struct retired_ptr *)node;
    keyring_free(r->ptr);
    free(r);
}

static void server_retire(struct server *srv, void *ptr, qsbr_free_fn *fn)
{
    struct retired_ptr *r = malloc(sizeof *r);
    if (!r) {
        /* Rather a leak than a free under a reader's feet. */
        log_error("out of memory: an old table is not freed");
        return;
    }
    r->ptr = ptr;
    qsbr_retire(hub_qsbr(srv->hub), &r->node, fn);
}

/* A reload finished (see reload.h): swap the new files in. Responses still
 * borrowing the old table hold references on it; otherwise it is freed on
 * the reload thread. */
static void on_static_reloaded(void *arg, struct static_files *files, const char *err)
{
    struct server *srv = arg;
    if (!files) {
        log_error("reloading static files: %s; keeping the old ones", err);
        return;
    }
    struct static_files *old = atomic_exchange(&srv->files, files);
    if (srv->nworkers == 1) {
        reload_retire(&srv->reload, old); /* nobody else can hold it */
    } else {
        server_retire(srv, old, retire_files);
    }
    log_info("reloaded %zu static files from %s", static_files_count(files), srv->cfg.static_dir);
}

/* A key file that cannot be read keeps the old keys: a half-written file
 * during a rotation must not lock every client out. */
static void server_reload_keys(struct server *srv)
{
    char err[256];
    if (!srv->keys) {
        return;
    }
    struct keyring *kr = keyring_load(srv->cfg.jwt_key_file, err, sizeof err);
    if (!kr) {
        log_error("reloading the token keys: %s; keeping the old ones", err);
        return;
    }
    struct keyring *old = atomic_exchange(&srv->keys, kr);
    if (srv->nworkers == 1) {
        keyring_free(old);
    } else {
        server_retire(srv, old, retire_keys);
    }
    size_t n;
    keyring_keys(kr, &n);
    log_info("reloaded %zu token keys from %s", n, srv->cfg.jwt_key_file);
}

/* Tells the other loops to stop, once: their stop items are pushed only
 * once (a second SIGTERM must not queue an item that is still queued). */
static void server_stop_workers(struct server *srv)
{
    if (srv->stopping) {
        return;
    }
    srv->stopping = true;
    for (size_t i = 1; i < srv->nworkers; i++) {
        inbox_push(&srv->workers[i].inbox, &srv->workers[i].stop);
    }
}

static void on_signal(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    struct server *srv = container_of(w, struct server, signal_watch);
    struct signalfd_siginfo si;
    (void)events;
    while (read(srv->signal_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
            log_info("signal %u: shutting down", si.ssi_signo);
            server_stop_workers(srv);
            loop_stop(loop);
        } else if (si.ssi_signo == SIGHUP) {
            reload_request(&srv->reload);
            server_reload_keys(srv);
        }
    }
}

/* Writes pending log lines; watches for writability only while the pipe is
 * full, and not at all once its reader has gone. */
static void server_flush_log(struct server *srv)
{
    srv->log_blocked = log_flush();
    if (log_broken()) {
        loop_watch_del(srv->loop, &srv->log_watch);
        return;
    }
    loop_watch_mod(srv->loop, &srv->log_watch, srv->log_blocked ? EPOLLOUT : 0);
}

static void on_log_writable(struct loop *loop, struct loop_watch *w, uint32_t events)
{
    (void)loop;
    /* A pipe's reader gone is EPOLLERR; a socket's peer gone, EPOLLHUP. */
    if (events & (EPOLLERR | EPOLLHUP)) {
        log_output_lost();
    }
    server_flush_log(container_of(w, struct server, log_watch));
}

/* The start of every iteration: from here the loop may hold pointers to
 * frames and tables other loops retire. Its lag figures, up to the last
 * iteration, are copied for /stats on other loops. */
static void after_wake(struct loop *loop, void *arg)
{
    struct worker *w = arg;
    (void)loop;
    qsbr_online(hub_qsbr(w->srv->hub), w->index);
    worker_lag_publish(w);
}

/* The end of every iteration: this iteration's log lines go out in one
 * write, unless the pipe was full and has not said it takes more; what no
 * loop can hold any more is freed; and the loop holds nothing while it
 * sleeps. */
static void before_sleep(struct loop *loop, void *arg)
{
    struct worker *w = arg;
    struct server *srv = w->srv;
    (void)loop;
    if (w->index == 0) {
        if (srv->log_watch.fd >= 0 && !srv->log_blocked) {
            server_flush_log(srv);
        }
    } else {
        (void)log_flush();
    }
    struct qsbr *q = hub_qsbr(srv->hub);
    qsbr_offline(q, w->index);
    qsbr_reclaim(q);
}

/* The publishers held in one iteration of a loop, and the flush of each
 * loop that must have run before they are answered (hub_flush_targets). */
struct held_batch {
    struct held_batch *next;
    struct list conns;
    uint64_t targets[];
};

/* This iteration's held publishers become a batch; then every batch whose
 * flushes have all run, oldest first, is answered. With one loop that is
 * at once. Without memory for a batch they are answered now: late for the
 * other loops' subscribers, but never stuck. */
static void worker_release_batches(struct worker *w, bool batch)
{
    struct server *srv = w->srv;
    conn_failed_fn *failed = batch ? server_held_failed : NULL;
    if (!list_empty(&w->held)) {
        struct held_batch *b = malloc(sizeof *b + hub_parts(srv->hub) * sizeof b->targets[0]);
        if (!b) {
            conn_release_held(&w->held, failed, srv);
        } else {
            b->next = NULL;
            list_init(&b->conns);
            list_move_all(&b->conns, &w->held);
            hub_lock(srv->hub);
            hub_flush_targets(srv->hub, b->targets);
            hub_unlock(srv->hub);
            *w->batches_tail = b;
            w->batches_tail = &b->next;
        }
    }
    while (w->batches && hub_flushes_done(srv->hub, w->batches->targets, w->index)) {
        struct held_batch *b = w->batches;
        w->batches = b->next;
        if (!w->batches) {
            w->batches_tail = &w->batches;
        }
        conn_release_held(&b->conns, failed, srv);
        free(b);
    }
}

/* Runs once after each loop iteration that published something, or that
 * another loop's publish gave fan-out work: the journal's group commit
 * (--fsync batch), the fan-out to this loop's subscribers, then this
 * loop's publishers' answers, which were held for both. */
static void on_hub_task(struct loop *loop, struct loop_task *task)
{
    struct worker *w = container_of(task, struct worker, hub_task);
    struct server *srv = w->srv;
    (void)loop;
    bool batch = srv->journal && srv->cfg.fsync_mode == FSYNC_BATCH;
    if (batch) {
        hub_lock(srv->hub);
        server_group_commit(srv);
        hub_unlock(srv->hub);
    }
    hub_flush(srv->hub);
    worker_release_batches(w, batch);
}

void server_hold_publisher(struct worker *w)
{
    loop_task_queue(w->loop, &w->hub_task, on_hub_task);
}

/* The hub has fan-out work for a loop (hub lock held): its own loop
 * queues the task; another loop is woken through its inbox, at most once
 * until it has taken the wake-up. */
static void schedule_hub_flush(void *arg, unsigned part)
{
    struct server *srv = arg;
    struct worker *w = &srv->workers[part];
    if (w == current_worker) {
        loop_task_queue(w->loop, &w->hub_task, on_hub_task);
    } else if (!atomic_exchange(&w->hub_wake_queued, true)) {
        inbox_push(&w->inbox, &w->hub_wake);
    }
}

/* On a loop: what another thread handed it. */
static void on_inbox(struct inbox_item *item, void *arg)
{
    struct worker *w = arg;
    if (item == &w->hub_wake) {
        atomic_store(&w->hub_wake_queued, false);
        loop_task_queue(w->loop, &w->hub_task, on_hub_task);
    } else if (item == &w->stop) {
        loop_stop(w->loop);
    } else if (item == &w->cluster_wake) {
        cluster_on_wake(w);
    } else {
        struct fd_handoff *h = container_of(item, struct fd_handoff, item);
        int fd = h->fd;
        free(h);
        if (conn_accept(w, fd) < 0) {
            log_warn("cannot set up a connection: out of memory");
        }
    }
}

/* Message ids start from the wall clock in microseconds, so ids from an
 * earlier run of the server are always older than this run's: a client that
 * resumes with an old id is told what it missed instead of being confused
 * with a new message. (2^53, the largest integer JavaScript holds exactly, is
 * reached in the year 2255.) */
static uint64_t first_message_id(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Creates the workers and their loops (not their threads yet); the first
 * one's loop also carries the listener, the signals, the reload and the
 * log, and runs on this thread. */
static int server_make_workers(struct server *srv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    size_t n = config_threads(&srv->cfg);
    srv->workers = calloc(n, sizeof *srv->workers);
    if (!srv->workers) {
        log_error("out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct worker *w = &srv->workers[i];
        if (worker_init(w, srv, seed + i * 0x9e3779b97f4a7c15ULL) < 0) {
            log_error("epoll: %s", strerror(errno));
            return -1;
        }
        w->inbox.efd = -1;
        w->inbox.watch.fd = -1;
        srv->nworkers = i + 1;
        w->index = (unsigned)i;
        if (inbox_init(&w->inbox, w->loop, on_inbox, w) < 0) {
            log_error("eventfd: %s", strerror(errno));
            return -1;
        }
        loop_set_after_wake(w->loop, after_wake, w);
        loop_set_before_sleep(w->loop, before_sleep, w);
    }
    srv->loop = srv->workers[0].loop;
    current_worker = &srv->workers[0];
    hub_bind_part(0);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    current_worker = w;
    hub_bind_part(w->index);
    if (loop_run(w->loop) < 0) {
        log_error("epoll_wait: %s", strerror(errno));
    }
    qsbr_offline(hub_qsbr(w->srv->hub), w->index);
    return NULL;
}

/* The static files and the token keys: read with blocking I/O, before the
 * loop runs. */
static int server_load_files(struct server *srv)
{
    char err[256];
    const struct config *cfg = &srv->cfg;
    srv->files = static_files_load(cfg->static_dir, err, sizeof err);
    if (!srv->files) {
        log_error("%s", err);
        return -1;
    }
    if (static_files_count(srv->files) == 0) {
        log_warn("no static files found in %s", cfg->static_dir);
    }
    if (*cfg->jwt_key_file) {
        srv->keys = keyring_load(cfg->jwt_key_file, err, sizeof err);
        if (!srv->keys) {
            log_error("token keys: %s", err);
            return -1;
        }
    }
    return 0;
}

/* SIGINT, SIGTERM and SIGHUP are read from a signalfd on the loop; SIGHUP's
 * static reload runs on a thread that reports back through an eventfd. */
static int server_watch_signals(struct server *srv)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    srv->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (srv->signal_fd < 0 ||
        loop_watch_add(srv->loop, &srv->signal_watch, srv->signal_fd, EPOLLIN, on_signal) < 0) {
        log_error("signalfd: %s", strerror(errno));
        return -1;
    }
    if (reload_init(&srv->reload, srv->loop, srv->cfg.static_dir, on_static_reloaded, srv) < 0) {
        log_error("eventfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Binds, watches the listening socket and prints the one line scripts wait
 * for ("sse-server listening on ..."). */
static int server_listen(struct server *srv)
{
    char err[256];
    const struct config *cfg = &srv->cfg;
    srv->listen_fd = net_listen(cfg->bind, cfg->port, &srv->port, err, sizeof err);
    if (srv->listen_fd < 0) {
        log_error("%s", err);
        return -1;
    }
    srv->spare_fd = net_spare_open();
    if (loop_watch_add(srv->loop, &srv->listen_watch, srv->listen_fd, EPOLLIN, on_listen) < 0) {
        log_error("epoll_ctl: %s", strerror(errno));
        return -1;
    }
    const char *host = cfg->bind;
    bool v6 = strchr(host, ':') != NULL;
    printf("sse-server listening on http://%s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "",
           srv->port);
    fflush(stdout);
    log_info("serving %zu static files from %s; at most %zu clients",
             static_files_count(srv->files), cfg->static_dir, srv->max_clients);
    return 0;
}

int server_init(struct server *srv, const struct config *cfg)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = *cfg;
    srv->listen_fd = srv->spare_fd = srv->signal_fd = -1;
    srv->listen_watch.fd = srv->signal_watch.fd = srv->log_watch.fd = -1;
    srv->reload.efd = srv->reload.watch.fd = -1;
    log_set_level((enum log_level)cfg->log_level);
    log_set_format((enum log_format)cfg->log_format);

    /* A write to a client that just went away must fail with EPIPE, not
     * kill the server. */
    signal(SIGPIPE, SIG_IGN);
    /* Likewise a journal append past a file-size limit must fail with EFBIG
     * (and be answered 503), not kill the server. */
    signal(SIGXFSZ, SIG_IGN);

    size_t fd_limit = net_raise_fd_limit();
    srv->max_clients = cfg->max_clients
                           ? cfg->max_clients
                           : (fd_limit > 2 * RESERVED_FDS ? fd_limit - RESERVED_FDS : fd_limit / 2);

    if (server_load_files(srv) < 0 || server_make_workers(srv) < 0) {
        return -1;
    }
    srv->started_ms = loop_now_ms(srv->loop);
    struct hub_limits limits = {cfg->history, cfg->history_bytes, cfg->max_rooms, cfg->max_memory,
                                (unsigned)srv->nworkers};
    srv->hub = hub_new(&limits, first_message_id(), conn_hub_ready, schedule_hub_flush, srv);
    if (!srv->hub) {
        log_error("out of memory");
        return -1;
    }

    if (*cfg->data_dir && server_open_journal(srv) < 0) {
        return -1;
    }
    if (cfg->has_redis && cluster_init(srv) < 0) {
        return -1;
    }

    if (server_watch_signals(srv) < 0 || server_listen(srv) < 0) {
        return -1;
    }
    /* From here on nothing on the loop may block, log lines included. */
    int log_fd = log_buffer_begin();
    if (log_fd >= 0 && loop_watch_add(srv->loop, &srv->log_watch, log_fd, 0, on_log_writable) < 0) {
        log_buffer_end(0);
        log_warn("cannot watch the log output (%s): writing it directly", strerror(errno));
    }
    return 0;
}

/* The other loops get their threads; this one runs here. When it stops
 * (SIGTERM), it has told the others to stop too, and waits for them. */
int server_run(struct server *srv)
{
    int rc = 0;
    if (srv->cluster) {
        cluster_start(srv->cluster);
    }
    for (size_t i = 1; i < srv->nworkers && rc == 0; i++) {
        struct worker *w = &srv->workers[i];
        int err = thread_start(&w->thread, worker_main, w);
        if (err != 0) {
            log_error("cannot start event loop %zu: %s", i, strerror(err));
            rc = -1;
        } else {
            w->thread_started = true;
        }
    }
    if (rc == 0 && (rc = loop_run(srv->loop)) < 0) {
        log_error("epoll_wait: %s", strerror(errno));
    }
    if (rc < 0) {
        server_stop_workers(srv);
    }
    for (size_t i = 1; i < srv->nworkers; i++) {
        if (srv->workers[i].thread_started) {
            pthread_join(srv->workers[i].thread, NULL);
            srv->workers[i].thread_started = false;
        }
    }
    qsbr_offline(hub_qsbr(srv->hub), 0);
    return rc;
}

void server_release(struct server *srv)
{
    if (srv->cluster) {
        /* Rooms left by the connections closed below are not followed any
         * more: nothing is queued for a loop that has stopped. */
        hub_set_watch(srv->hub, NULL, NULL);
    }
    if (srv->loop) {
        /* Every loop has stopped (server_run joined their threads): this
         * thread finishes what they leave. Connections still in an inbox
         * are taken in first, so that every one is closed. */
        for (size_t i = 0; i < srv->nworkers; i++) {
            struct worker *w = &srv->workers[i];
            current_worker = w;
            hub_bind_part(w->index);
            inbox_release(&w->inbox, w->loop);
            conn_close_all(w);
            /* Frees the connections just closed (their free tasks are queued). */
            loop_run_pending(w->loop);
        }
        current_worker = &srv->workers[0];
        hub_bind_part(0);
        loop_stop(srv->loop);
        loop_watch_del(srv->loop, &srv->listen_watch);
        loop_watch_del(srv->loop, &srv->signal_watch);
        loop_watch_del(srv->loop, &srv->log_watch);
        reload_release(&srv->reload, srv->loop);
        loop_run_pending(srv->loop);
    }
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
    }
    if (srv->spare_fd >= 0) {
        close(srv->spare_fd);
    }
    if (srv->signal_fd >= 0) {
        close(srv->signal_fd);
    }
    cluster_free(srv->cluster);
    journal_close(srv->journal);
    keyring_free(srv->keys);
    hub_free(srv->hub);
    static_files_unref(srv->files);
    /* What the loop left in the log buffer gets a second to go out. */
    log_buffer_end(1000);
    for (size_t i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        while (w->batches) { /* their connections are closed */
            struct held_batch *b = w->batches;
            w->batches = b->next;
            free(b);
        }
        worker_release(w);
    }
    free(srv->workers);
    memset(srv, 0, sizeof *srv);
}
