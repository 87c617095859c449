/*
 * itest: a small client library for the integration tests.
 *
 * The integration tests run the real sse-server binary (path in $SSE_SERVER)
 * on an ephemeral loopback port and talk to it over real sockets. This
 * library provides:
 *
 *   - server control: start (and read the "listening on" line), stop with a
 *     signal and a bounded wait, exit status, stderr captured to a temporary
 *     file shown when something goes wrong, fd count and RSS from /proc;
 *   - raw connections with deadlines (nothing can hang: every read and write
 *     is bounded), a strict HTTP/1.1 response reader and one-shot requests;
 *   - SSE subscribers: GET a stream, check its head, parse its body with the
 *     reference WHATWG parser (tests/unit/sse_parse.h) and collect the
 *     events; all I/O is non-blocking so one poll loop can drive thousands;
 *   - what the tests share besides: diagnostics (a response, escaped bytes,
 *     a list of events), parsing ids, a seeded generator, scratch files, and
 *     a cmocka fixture that gives each test a server of its own.
 *
 * Failures never abort: functions return an error value and print why to
 * stderr (prefixed "itest: "), so the test's assertion shows the context.
 * (itest_event_id alone fails the running cmocka test, as it says.)
 *
 * Typical use (cmocka):
 *
 *     itest_init(120);                          // in main()
 *     struct itest_server srv = itest_server_start(NULL);
 *     struct itest_response r;
 *     assert_int_equal(itest_request(srv.port, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
 *     assert_int_equal(r.status, 404);
 *     itest_response_free(&r);
 *
 *     struct itest_sub sub;                     // one subscriber
 *     assert_int_equal(itest_sub_open(&sub, srv.port, "/messages", itest_timeout()), 0);
 *     uint64_t id;
 *     assert_int_equal(itest_post_message(srv.port, NULL, "{}", 2, &id, NULL), 202);
 *     assert_true(itest_sub_wait(&sub, 1, itest_timeout()));
 *     // sub.events.ev[0].data / .id / .type, sub.event_ms[0]
 *     itest_sub_close(&sub);
 *
 *     struct itest_sub *subs = calloc(500, sizeof *subs);  // many, one poll loop
 *     assert_int_equal(itest_subs_open(subs, 500, srv.port, "/messages", itest_ms(10000)), 500);
 *     ...post...
 *     assert_int_equal(itest_subs_drive(subs, 500, 1, itest_ms(10000)), 500);
 *
 *     assert_int_equal(itest_server_stop(&srv), 0);   // SIGTERM, exit status
 *
 * Environment variables the library reads (none reaches the server unless
 * said so; the server's own SSE_* variables are removed from its
 * environment, see itest_server_start):
 *
 *   SSE_SERVER           path of the sse-server binary (required)
 *   SSE_STATIC           its --static directory
 *   SSE_SERVER_WRAPPER   a command put before it, e.g. valgrind
 *   ITEST_THREADS        N or auto: every server started here gets
 *                        `--threads $ITEST_THREADS` after its arguments,
 *                        unless the test passes --threads (or --threads=)
 *                        itself; unset, the server's own default applies.
 *                        `make integration` runs the suite at 1 and at 4.
 *   ITEST_TIMEOUT_SCALE  see below
 *   ITEST_SERVER_LOG     1: the server's stderr goes through; 2: always shown
 *   ITEST_KEEP_ENV       set: the server keeps the SSE_* variables
 *
 * Every timeout below is in milliseconds of real time. Use itest_ms() to scale
 * "generous upper bounds" for slow builds (sanitizers): it multiplies by
 * $ITEST_TIMEOUT_SCALE, or by 3 when the test itself is built with
 * AddressSanitizer, else by 1. Never scale a tolerance that is part of the
 * specification (e.g. a 2 s +- 0.5 s cadence).
 */
#ifndef SSE_ITEST_H
#define SSE_ITEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sse_parse.h"

/* ------------------------------------------------------------------ time */

/* Monotonic clock in milliseconds. */
int64_t itest_now_ms(void);
void itest_sleep_ms(int ms);
/* base_ms times the timeout scale (see above). */
int itest_ms(int base_ms);
/* The default upper bound for one network operation: itest_ms(5000). */
int itest_timeout(void);

/*
 * Call first in main(): ignores SIGPIPE, makes stdout unbuffered, registers
 * an exit handler that kills any server still running, and arms a watchdog
 * that kills the servers and exits with status 3 after itest_ms(seconds)
 * (0: no watchdog) so a stuck test binary can never hang a CI run.
 */
void itest_init(unsigned watchdog_seconds);

/* ---------------------------------------------------------------- server */

struct itest_server {
    pid_t pid;            /* > 0 while the server runs; 0 once reaped */
    int port;             /* the port it listens on (from its first line) */
    int stdout_fd;        /* read end of the server's stdout pipe, -1 if none */
    char first_line[256]; /* its first stdout line, without the newline */
    char log_path[64];    /* its stderr goes to this file ("" = inherited) */
    int exit_status;      /* as returned by itest_server_stop, once reaped */
    /* What it printed on stdout after the first line, collected when it was
     * reaped (NUL-terminated, truncated to the buffer). */
    char stdout_tail[512];
    size_t stdout_tail_len;
};

/*
 * Starts `$SSE_SERVER --port 0 --bind 127.0.0.1 [--static $SSE_STATIC]
 * extra_args... [--threads $ITEST_THREADS]` (extra_args is NULL-terminated,
 * may be NULL; --static is only added when $SSE_STATIC is set and extra_args
 * has no --static of its own, --threads when $ITEST_THREADS is set and
 * extra_args has no --threads). Waits up to itest_ms(10000) for the first stdout line
 * "sse-server listening on http://127.0.0.1:<port>" and returns the server
 * with .pid > 0 and .port set; on failure .pid is 0 (the reason and the
 * server's stderr are printed). The server dies with the test process
 * (PR_SET_PDEATHSIG) and is killed at exit if still running.
 * Set $ITEST_SERVER_LOG=1 to let its stderr through instead of capturing it.
 * The server's environment has every SSE_* variable removed (the server reads
 * its options from them), unless $ITEST_KEEP_ENV is set, so only the
 * arguments configure it.
 *
 * $SSE_SERVER_WRAPPER, when set, is a command prefix split on blanks and put
 * before the server binary (looked up in $PATH), e.g.
 *     SSE_SERVER_WRAPPER="valgrind --quiet --error-exitcode=99 --leak-check=full"
 * The PID is then the wrapper's (valgrind runs the server in its own process,
 * so /proc figures are still the server's, plus the wrapper's own fds). When
 * the wrapper has an "--error-exitcode=N" option, a server that ends with
 * status N (on its own or after a signal other than SIGKILL) is reported
 * ("itest: ... wrapper reported errors") and the test binary then exits with
 * a non-zero status whatever its tests said. Use a large ITEST_TIMEOUT_SCALE
 * with such wrappers.
 */
struct itest_server itest_server_start(const char *const *extra_args);
/*
 * itest_server_start, but the server runs with RLIMIT_NOFILE soft = hard =
 * `nofile` (set in the child before exec; 0: inherited), e.g. to reach its
 * descriptor limit with a few hundred connections.
 */
struct itest_server itest_server_start_nofile(const char *const *extra_args, unsigned long nofile);
/*
 * itest_server_start, but the server runs with a soft RLIMIT_FSIZE of `fsize`
 * bytes (hard limit unchanged; set in the child before exec), so that its
 * writes past that file size fail (EFBIG), e.g. to fill a "disk".
 */
struct itest_server itest_server_start_fsize(const char *const *extra_args, unsigned long fsize);
/*
 * itest_server_start, but with the "NAME=VALUE" entries of env (NULL-terminated)
 * added to the server's environment after the SSE_* scrub, e.g. LD_PRELOAD
 * and the variables of a fault-injection shim (see tests/fault/).
 */
struct itest_server itest_server_start_env(const char *const *extra_args, const char *const *env);
/*
 * itest_server_start, but the server's stderr is `path` opened write-only in
 * the child (e.g. a FIFO, whose read end the caller must already hold open
 * or the open blocks); nothing is captured.
 */
struct itest_server itest_server_start_stderr(const char *const *extra_args, const char *path);
/* Number of servers that ended with the wrapper's error exit code so far
 * (always 0 without $SSE_SERVER_WRAPPER). */
int itest_wrapper_failures(void);

/* Exit statuses returned by itest_server_signal / itest_server_stop. */
#define ITEST_EXIT_TIMEOUT (-2) /* did not exit in time: it was SIGKILLed */
#define ITEST_EXIT_ERROR   (-1) /* not running / waitpid failed */

/*
 * Sends `sig` to the server (by PID) and waits up to timeout_ms for it to
 * exit; if it does not, SIGKILLs it. Returns its exit code (0..255), 128+N if
 * it was ended by signal N, or ITEST_EXIT_TIMEOUT / ITEST_EXIT_ERROR. Closes
 * the pipes; the captured stderr is printed when the result is not 0 (or
 * always with $ITEST_SERVER_LOG=2) and then removed.
 */
int itest_server_signal(struct itest_server *s, int sig, int timeout_ms);
/* itest_server_signal(s, SIGTERM, itest_ms(10000)). */
int itest_server_stop(struct itest_server *s);
/* True while the process has not exited (reaps it if it has). */
bool itest_server_running(struct itest_server *s);
/*
 * Reads whatever the server printed to stdout after its first line (without
 * blocking; at most cap-1 bytes, NUL-terminated) and returns its length.
 * Call it before itest_server_stop (which closes the pipe).
 */
size_t itest_server_stdout_extra(struct itest_server *s, char *buf, size_t cap);
/* Prints the captured stderr (last max_bytes of it) to our stderr. */
void itest_server_dump_log(const struct itest_server *s, size_t max_bytes);
/* Number of open fds of the server (/proc/<pid>/fd), -1 on error. */
int itest_server_fd_count(const struct itest_server *s);
/* Polls the fd count until it is <= target or timeout_ms passed; returns the
 * last count seen. */
int itest_server_fd_settle(const struct itest_server *s, int target, int timeout_ms);
/* VmRSS of the server in KiB (/proc/<pid>/status), -1 on error. */
long itest_server_rss_kb(const struct itest_server *s);

/* ----------------------------------------------------------- connections */

/*
 * A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY and
 * SO_RCVTIMEO/SO_SNDTIMEO of itest_timeout(); returns the fd or -1.
 */
int itest_connect(int port);
/* A non-blocking TCP connection to 127.0.0.1:port with TCP_NODELAY, the
 * connect done or still in progress; returns the fd or -1 (reason printed). */
int itest_connect_nb(int port);
/* Closes fd with SO_LINGER {1, 0}: the peer gets a RST, not a FIN. */
void itest_close_rst(int fd);
/* Writes all of buf (MSG_NOSIGNAL); false on error or timeout. */
bool itest_send_all(int fd, const void *buf, size_t len);
bool itest_send_str(int fd, const char *s);
/* Writes buf `chunk` bytes at a time, pausing pause_ms between writes. */
bool itest_send_slowly(int fd, const void *buf, size_t len, size_t chunk, int pause_ms);
/* Reads up to cap bytes, waiting at most timeout_ms. Returns the count, 0 at
 * end of stream (or on a reset), -1 on timeout (errno ETIMEDOUT) or error. */
ssize_t itest_recv_deadline(int fd, void *buf, size_t cap, int timeout_ms);

/* A connection with a receive buffer (bytes read but not yet consumed). */
struct itest_conn {
    int fd;
    char *buf; /* always NUL-terminated (buf[len] == 0) once allocated */
    size_t len;
    size_t cap;
    bool eof;   /* the peer closed its side (FIN) or reset the connection */
    bool reset; /* ... and it was a reset (ECONNRESET) */
};

/* Opens a connection (see itest_connect); 0 or -1. */
int itest_conn_open(struct itest_conn *c, int port);
/* Closes the socket and frees the buffer; safe on a closed connection. */
void itest_conn_close(struct itest_conn *c);
bool itest_conn_send(struct itest_conn *c, const char *s);
bool itest_conn_sendn(struct itest_conn *c, const void *buf, size_t len);
/* Waits up to timeout_ms for more bytes and appends them to c->buf.
 * Returns bytes added (> 0), 0 at end of stream, -1 on timeout/error. */
ssize_t itest_conn_fill(struct itest_conn *c, int timeout_ms);
/* Reads until c->buf contains needle; false on timeout or end of stream. */
bool itest_conn_read_until(struct itest_conn *c, const char *needle, int timeout_ms);
/* Reads (keeping the bytes in c->buf) until the peer closes the connection;
 * true if it did within timeout_ms. */
bool itest_conn_wait_close(struct itest_conn *c, int timeout_ms);
/* Drops the first n buffered bytes. */
void itest_conn_consume(struct itest_conn *c, size_t n);

/* -------------------------------------------------------------- responses */

#define ITEST_MAX_HEADERS 64
#define ITEST_MAX_HEAD    65536
#define ITEST_MAX_BODY    (64u << 20)

struct itest_header {
    const char *name;  /* as sent */
    const char *value; /* leading/trailing blanks removed */
};

struct itest_response {
    int status;         /* e.g. 200 */
    int minor_version;  /* HTTP/1.<minor_version> */
    const char *reason; /* reason phrase, may be "" */
    size_t num_headers;
    struct itest_header headers[ITEST_MAX_HEADERS];
    char *body; /* NUL-terminated (body may contain NULs itself) */
    size_t body_len;
    bool closed;     /* the connection was seen closed after this response */
    char *head;      /* private: storage of the head strings */
    size_t head_len; /* bytes of the head on the wire, CRLFCRLF included */
};

/* Flags of itest_read_response. */
#define ITEST_RESP_NO_BODY   1u /* answer to HEAD: no body whatever the headers say */
#define ITEST_RESP_HEAD_ONLY 2u /* stop after the head; the body stays in c->buf */

/*
 * Reads one response from c: a head (status line + fields + CRLF, checked
 * strictly) then, unless flags say otherwise, a body delimited as RFC 9112
 * says (none for 1xx/204/304, chunked, Content-Length, else until close).
 * Bytes after the response stay in c->buf. Returns 0, or -1 (reason printed;
 * *r is then empty). A "100 Continue" interim response is returned as such.
 */
int itest_read_response(struct itest_conn *c, struct itest_response *r, unsigned flags,
                        int timeout_ms);
void itest_response_free(struct itest_response *r);
/* First field with that name (case-insensitive), or NULL. */
const char *itest_header(const struct itest_response *r, const char *name);
/* itest_header, but "(absent)" instead of NULL, so that string assertions and
 * messages never see a NULL. */
const char *itest_header_or_absent(const struct itest_response *r, const char *name);
/* Prints r to stderr under the title `what`: status, every field, and the
 * first max_body bytes of the body (for the context of a failed assertion). */
void itest_show_response(const char *what, const struct itest_response *r, int max_body);
/* Number of fields with that name. */
size_t itest_header_count(const struct itest_response *r, const char *name);
/* True when a comma-separated list field (all fields of that name together)
 * contains `token` (case-insensitive). */
bool itest_header_has_token(const struct itest_response *r, const char *name, const char *token);
/* True when field `name` exists and its value starts with `prefix`
 * (case-insensitive), e.g. ("Content-Type", "application/json"). */
bool itest_header_starts(const struct itest_response *r, const char *name, const char *prefix);
/* True when body is exactly {"error":"<something non-empty>"}, blanks allowed
 * between tokens. */
bool itest_is_json_error(const struct itest_response *r);

/*
 * One-shot: connects, writes raw (the whole request, as is), reads one
 * response (without a body when raw starts with "HEAD "), and closes. When the response carries
 * "Connection: close", also waits for the close and sets r->closed. Returns 0 or -1.
 */
int itest_request(int port, const char *raw, struct itest_response *r);
int itest_request_n(int port, const void *raw, size_t len, unsigned flags,
                    struct itest_response *r);
/* itest_request with `flags` (ITEST_RESP_*) added to its own, e.g.
 * ITEST_RESP_HEAD_ONLY for a stream: returns the response status, or -1. */
int itest_request_status(int port, const char *raw, unsigned flags);

/*
 * POST `target` (NULL: "/message") with body[0..len) on an open keep-alive
 * connection / a fresh one. Returns the HTTP status, or -1 on a transport or
 * protocol error. On 202, *id and *clients (either may be NULL) get the
 * values of the JSON answer; a 202 whose body lacks them gives -1.
 */
int itest_post_message_conn(struct itest_conn *c, const char *target, const void *body, size_t len,
                            uint64_t *id, long *clients);
int itest_post_message(int port, const char *target, const void *body, size_t len, uint64_t *id,
                       long *clients);
/* Looks for "key": <unsigned integer> in a flat JSON object text. */
bool itest_json_u64(const char *json, const char *key, uint64_t *out);

/* ------------------------------------------------------------ subscribers */

enum itest_sub_state {
    ITEST_SUB_CONNECTING, /* non-blocking connect in progress */
    ITEST_SUB_SENDING,    /* writing the request */
    ITEST_SUB_HEAD,       /* waiting for the response head */
    ITEST_SUB_STREAM,     /* head checked (200, text/event-stream): reading events */
    ITEST_SUB_CLOSED,     /* the server ended the stream (or reset it) */
    ITEST_SUB_FAILED,     /* see .error */
};

#define ITEST_SUB_RAW_MAX 4096

struct itest_sub {
    enum itest_sub_state state;
    struct itest_conn conn;      /* non-blocking socket */
    struct itest_response head;  /* valid from ITEST_SUB_STREAM on (or FAILED on status) */
    struct ssep_parser parser;   /* counters: parser.comments, parser.has_retry, ... */
    struct ssep_list events;     /* every event received, in order */
    int64_t *event_ms;           /* itest_now_ms() when each event was completed */
    int64_t opened_ms;           /* when itest_sub_start was called */
    int64_t head_ms;             /* when the head arrived, 0 before */
    int64_t first_byte_ms;       /* when the first body byte arrived, 0 before */
    char raw[ITEST_SUB_RAW_MAX]; /* the first bytes of the body, NUL-terminated */
    size_t raw_len;
    uint64_t body_bytes; /* body bytes received so far */
    char error[160];

    /* Private. */
    char *req;
    size_t req_len, req_off;
    size_t event_ms_cap;
    bool chunked;
    int ch_state;
    uint64_t ch_left;
};

/*
 * Starts a subscriber (non-blocking): connects to 127.0.0.1:port and will
 * send "GET <target> HTTP/1.1" with Host and Accept: text/event-stream plus
 * extra_headers (NULL or "Name: value\r\n..."). Drive it with
 * itest_sub_step / itest_subs_drive. Returns 0, or -1 (state FAILED).
 * Always call itest_sub_close afterwards.
 */
int itest_sub_start(struct itest_sub *s, int port, const char *target, const char *extra_headers);
/* Does all the I/O possible now without blocking; returns the new state. */
enum itest_sub_state itest_sub_step(struct itest_sub *s);
/* Poll events the subscriber waits for (POLLIN / POLLOUT), 0 when done. */
short itest_sub_poll_events(const struct itest_sub *s);
/* itest_sub_start, then waits until the head arrived and was accepted
 * (status 200, Content-Type text/event-stream). Returns 0 or -1. */
int itest_sub_open(struct itest_sub *s, int port, const char *target, int timeout_ms);
/* Waits until the subscriber has at least n events; true if it has. */
bool itest_sub_wait(struct itest_sub *s, size_t n, int timeout_ms);
/* Waits until pred(s, arg) is true (checked after each read). */
bool itest_sub_wait_until(struct itest_sub *s, bool (*pred)(const struct itest_sub *, void *),
                          void *arg, int timeout_ms);
/* Closes (FIN) and frees everything. Safe to call twice. */
void itest_sub_close(struct itest_sub *s);
/* Closes with a RST (SO_LINGER {1,0}) and frees everything. */
void itest_sub_abort(struct itest_sub *s);

/*
 * Drives subs[0..n) with one poll loop until each is in ITEST_SUB_STREAM with
 * at least `want` events, or is closed/failed, or timeout_ms passed. Returns
 * how many subscribers reached the goal. want = 0 just waits for the heads.
 */
size_t itest_subs_drive(struct itest_sub *subs, size_t n, size_t want, int timeout_ms);
/* Starts n subscribers to `target` and waits for all their heads. Returns how
 * many are streaming (n on success). */
size_t itest_subs_open(struct itest_sub *subs, size_t n, int port, const char *target,
                       int timeout_ms);
/* A predicate for itest_sub_wait_until (arg unused): the stream has sent its
 * preamble, a retry field and at least one comment. */
bool itest_sub_has_preamble(const struct itest_sub *s, void *arg);

/* --------------------------------------------------------- test utilities */

/* Parses a whole string as a decimal uint64 (digits only, no sign or blank,
 * no overflow); false when it is not one (or s is NULL). */
bool itest_parse_u64(const char *s, uint64_t *out);
/* The id of an event, which must be a decimal number: otherwise fails the
 * running cmocka test (fail_msg). */
uint64_t itest_event_id(const struct ssep_event *ev);
/* Prints "label: N events" then events [from, from + max) of evs (type, id,
 * start of the data) to stderr. */
void itest_print_events(const char *label, const struct ssep_list *evs, size_t from, size_t max);
/* Prints `label (len bytes): "..."` to stderr with at most max of the bytes,
 * \n, \r and other bytes outside printable ASCII escaped (\xNN); "..."
 * follows when some were left out (max = SIZE_MAX: all of them). */
void itest_print_escaped(const char *label, const void *bytes, size_t len, size_t max);
/* One step of a xorshift64* generator: advances *state (which must not be
 * 0) and returns the next pseudo-random number. */
uint64_t itest_rng_next(uint64_t *state);
/* Writes data[0..len) to path (created or truncated); 0, or -1 (reason
 * printed). */
int itest_write_file(const char *path, const void *data, size_t len);
/* Removes path and, for a directory, everything below it (links are not
 * followed); best effort, errors are ignored. */
void itest_rm_rf(const char *path);

/* ---------------------------------------------------------- cmocka fixture */

/*
 * A setup / teardown pair giving each test a fresh server:
 *
 *     cmocka_unit_test_setup_teardown(test_x, itest_setup_server, itest_teardown_server)
 *     cmocka_unit_test_prestate_setup_teardown(test_y, itest_setup_server,
 *                                              itest_teardown_server, (void *)args)
 *
 * itest_setup_server starts a server with the extra arguments in *state (a
 * NULL-terminated `const char *const *`, e.g. given as the cmocka prestate,
 * or NULL) and replaces *state with the started `struct itest_server *`
 * (malloc'd); it fails when the server does not start. itest_teardown_server
 * stops the server with SIGTERM if it still runs and fails unless its exit
 * status is 0 (also when the test ended it itself, e.g. with
 * itest_server_signal), then frees it.
 */
int itest_setup_server(void **state);
int itest_teardown_server(void **state);
/* The server and its port, in a test run with the fixture above. */
struct itest_server *itest_state_server(void **state);
int itest_state_port(void **state);

#endif
