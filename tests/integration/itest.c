/*
 * itest: the integration-test client library. See itest.h.
 */
#include "itest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define ITEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ITEST_SANITIZED 1
#endif
#endif
#ifndef ITEST_SANITIZED
#define ITEST_SANITIZED 0
#endif

static const char listen_prefix[] = "sse-server listening on http://127.0.0.1:";

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "itest: %s\n", line);
}

/* ------------------------------------------------------------------ time */

int64_t itest_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void itest_sleep_ms(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int timeout_scale(void)
{
    static int scale;
    if (scale == 0) {
        const char *e = getenv("ITEST_TIMEOUT_SCALE");
        long v = e ? strtol(e, NULL, 10) : 0;
        scale = v > 0 && v < 1000 ? (int)v : (ITEST_SANITIZED ? 3 : 1);
    }
    return scale;
}

int itest_ms(int base_ms)
{
    return base_ms * timeout_scale();
}

int itest_timeout(void)
{
    return itest_ms(5000);
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - itest_now_ms();
    if (left <= 0)
        return 0;
    return left > 1000000 ? 1000000 : (int)left;
}

/* ------------------------------------------------ server registry, watchdog */

#define MAX_SERVERS 64

/* PIDs of the servers started and not yet reaped (0 = free slot). Read by the
 * watchdog signal handler, hence volatile sig_atomic_t-sized writes only. */
static volatile pid_t live_pids[MAX_SERVERS];
static char live_logs[MAX_SERVERS][64];

static void registry_add(pid_t pid, const char *log_path)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (live_pids[i] == 0) {
            snprintf(live_logs[i], sizeof live_logs[i], "%s", log_path);
            live_pids[i] = pid;
            return;
        }
    }
}

static void registry_remove(pid_t pid)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (live_pids[i] == pid) {
            live_pids[i] = 0;
            live_logs[i][0] = 0;
        }
    }
}

static void on_watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "itest: watchdog expired: killing the servers and exiting\n";
    for (int i = 0; i < MAX_SERVERS; i++)
        if (live_pids[i] > 0)
            kill(live_pids[i], SIGKILL);
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(3);
}

/* ------------------------------------------------------- server wrapper */

#define WRAPPER_MAX_ARGS 48

/* $SSE_SERVER_WRAPPER split on blanks (parsed once), and the status it exits
 * with when it found errors (its --error-exitcode=N), -1 if none. */
static char wrapper_buf[4096];
static const char *wrapper_argv[WRAPPER_MAX_ARGS + 1];
static size_t wrapper_argc;
static int wrapper_error_status = -1;
static int wrapper_failed;

static void wrapper_parse(void)
{
    static bool parsed;
    if (parsed)
        return;
    parsed = true;
    const char *e = getenv("SSE_SERVER_WRAPPER");
    if (!e || !*e)
        return;
    snprintf(wrapper_buf, sizeof wrapper_buf, "%s", e);
    for (char *tok = strtok(wrapper_buf, " \t"); tok; tok = strtok(NULL, " \t")) {
        if (wrapper_argc >= WRAPPER_MAX_ARGS) {
            say("SSE_SERVER_WRAPPER: more than %d words, the rest is ignored", WRAPPER_MAX_ARGS);
            break;
        }
        wrapper_argv[wrapper_argc++] = tok;
        static const char opt[] = "--error-exitcode=";
        if (strncmp(tok, opt, sizeof opt - 1) == 0) {
            char *end;
            long v = strtol(tok + sizeof opt - 1, &end, 10);
            if (*end == 0 && v > 0 && v < 256)
                wrapper_error_status = (int)v;
        }
    }
    wrapper_argv[wrapper_argc] = NULL;
}

/* Called with the status of every reaped server (not for SIGKILL). */
static void wrapper_check_status(pid_t pid, int status)
{
    if (wrapper_argc == 0 || wrapper_error_status < 0 || status != wrapper_error_status)
        return;
    wrapper_failed++;
    say("server %d: the wrapper (%s) reported errors: exit status %d (its report is in the "
        "server stderr)",
        (int)pid, wrapper_argv[0], status);
}

int itest_wrapper_failures(void)
{
    return wrapper_failed;
}

static void kill_leftover_servers(void)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        pid_t pid = live_pids[i];
        if (pid <= 0)
            continue;
        say("server %d still running at exit: killing it", (int)pid);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (live_logs[i][0])
            unlink(live_logs[i]);
        live_pids[i] = 0;
    }
    if (wrapper_failed) {
        /* A test binary whose tests all passed must still fail. */
        say("%d server(s) ended with the error status %d of $SSE_SERVER_WRAPPER: failing",
            wrapper_failed, wrapper_error_status);
        fflush(stdout);
        fflush(stderr);
        _exit(wrapper_error_status > 0 ? wrapper_error_status : 1);
    }
}

void itest_init(unsigned watchdog_seconds)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IONBF, 0);
    atexit(kill_leftover_servers);
    if (watchdog_seconds > 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_watchdog;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, NULL);
        alarm((unsigned)itest_ms((int)watchdog_seconds));
    }
}

/* ---------------------------------------------------------------- server */

static bool args_have(const char *const *args, const char *opt)
{
    for (size_t i = 0; args && args[i]; i++)
        if (strcmp(args[i], opt) == 0)
            return true;
    return false;
}

/* True when args set option opt ("--x"), as "--x VALUE" or "--x=VALUE". */
static bool args_set_option(const char *const *args, const char *opt)
{
    size_t n = strlen(opt);
    for (size_t i = 0; args && args[i]; i++)
        if (strncmp(args[i], opt, n) == 0 && (args[i][n] == '\0' || args[i][n] == '='))
            return true;
    return false;
}

static void server_release(struct itest_server *s, bool show_log);

/* The server also reads its options from SSE_* variables; drop them (in the
 * child) so only the arguments decide its configuration. */
static void scrub_server_env(void)
{
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e; e++) {
            const char *eq = strchr(*e, '=');
            if (strncmp(*e, "SSE_", 4) == 0 && eq && (size_t)(eq - *e) < sizeof name) {
                memcpy(name, *e, (size_t)(eq - *e));
                name[eq - *e] = 0;
                break;
            }
        }
        if (!name[0] || unsetenv(name) != 0)
            return;
    }
}

/* Puts each "NAME=VALUE" of env (NULL-terminated, may be NULL) into the
 * child's environment, after the scrub: these are meant to reach it. */
static void child_setenv(const char *const *env)
{
    for (size_t i = 0; env && env[i]; i++) {
        char name[128];
        const char *eq = strchr(env[i], '=');
        if (!eq || eq == env[i] || (size_t)(eq - env[i]) >= sizeof name) {
            dprintf(STDERR_FILENO, "itest: bad environment entry \"%s\"\n", env[i]);
            _exit(127);
        }
        memcpy(name, env[i], (size_t)(eq - env[i]));
        name[eq - env[i]] = 0;
        if (setenv(name, eq + 1, 1) != 0)
            _exit(127);
    }
}

/* Starts the server (see itest_server_start) with RLIMIT_NOFILE soft = hard =
 * nofile and a soft RLIMIT_FSIZE of fsize bytes, each unless 0, set in the
 * child before exec, the variables of env added to its environment, and its
 * stderr opened from stderr_path unless NULL. */
static struct itest_server server_start(const char *const *extra_args, unsigned long nofile,
                                        unsigned long fsize, const char *const *env,
                                        const char *stderr_path)
{
    struct itest_server s;
    memset(&s, 0, sizeof s);
    s.stdout_fd = -1;
    s.exit_status = ITEST_EXIT_ERROR;

    /* Copies: the child scrubs SSE_* from its environment before exec. */
    static char bin[4096], static_dir[4096], threads[32];
    const char *e = getenv("SSE_SERVER");
    if (!e || !*e) {
        say("SSE_SERVER is not set (path of the sse-server binary)");
        return s;
    }
    snprintf(bin, sizeof bin, "%s", e);
    e = getenv("SSE_STATIC");
    snprintf(static_dir, sizeof static_dir, "%s", e ? e : "");
    /* $ITEST_THREADS runs every server at that many event loops (the suite
     * runs once per value), except where a test chose --threads itself. */
    e = getenv("ITEST_THREADS");
    snprintf(threads, sizeof threads, "%s",
             e && !args_set_option(extra_args, "--threads") ? e : "");
    const char *show = getenv("ITEST_SERVER_LOG");
    bool pass_stderr = (show && strcmp(show, "1") == 0) || stderr_path;

    wrapper_parse();
    const char *argv[64 + WRAPPER_MAX_ARGS];
    size_t argc = 0;
    for (size_t i = 0; i < wrapper_argc; i++)
        argv[argc++] = wrapper_argv[i];
    argv[argc++] = bin;
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    if (static_dir[0] && !args_have(extra_args, "--static")) {
        argv[argc++] = "--static";
        argv[argc++] = static_dir;
    }
    for (size_t i = 0; extra_args && extra_args[i]; i++) {
        if (argc >= sizeof argv / sizeof argv[0] - 1) {
            say("too many server arguments");
            return s;
        }
        argv[argc++] = extra_args[i];
    }
    if (threads[0]) {
        if (argc >= sizeof argv / sizeof argv[0] - 2) {
            say("too many server arguments");
            return s;
        }
        argv[argc++] = "--threads";
        argv[argc++] = threads;
    }
    argv[argc] = NULL;

    int log_fd = -1;
    if (!pass_stderr) {
        snprintf(s.log_path, sizeof s.log_path, "/tmp/itest-server-XXXXXX");
        log_fd = mkstemp(s.log_path);
        if (log_fd < 0) {
            say("mkstemp: %s", strerror(errno));
            s.log_path[0] = 0;
        }
    }

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        say("pipe: %s", strerror(errno));
        if (log_fd >= 0) {
            close(log_fd);
            unlink(s.log_path);
        }
        return s;
    }

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        say("fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        if (log_fd >= 0) {
            close(log_fd);
            unlink(s.log_path);
        }
        return s;
    }
    if (pid == 0) {
        /* Child: stdout to the pipe, stderr to the log, stdin from nowhere. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, STDIN_FILENO);
            close(devnull);
        }
        dup2(pfd[1], STDOUT_FILENO);
        if (log_fd >= 0)
            dup2(log_fd, STDERR_FILENO);
        if (stderr_path) {
            int fd = open(stderr_path, O_WRONLY);
            if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                _exit(127);
            close(fd);
        }
        signal(SIGPIPE, SIG_DFL);
        alarm(0);
        if (!getenv("ITEST_KEEP_ENV"))
            scrub_server_env();
        child_setenv(env);
        if (nofile > 0) {
            struct rlimit rl = {.rlim_cur = nofile, .rlim_max = nofile};
            if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
                dprintf(STDERR_FILENO, "itest: setrlimit(RLIMIT_NOFILE, %lu): %s\n", nofile,
                        strerror(errno));
                _exit(127);
            }
        }
        if (fsize > 0) {
            struct rlimit rl;
            getrlimit(RLIMIT_FSIZE, &rl);
            rl.rlim_cur = fsize;
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
                dprintf(STDERR_FILENO, "itest: setrlimit(RLIMIT_FSIZE, %lu): %s\n", fsize,
                        strerror(errno));
                _exit(127);
            }
        }
        if (wrapper_argc > 0)
            execvp(argv[0], (char *const *)argv);
        else
            execv(bin, (char *const *)argv);
        dprintf(STDERR_FILENO, "itest: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    if (log_fd >= 0)
        close(log_fd);
    s.pid = pid;
    s.stdout_fd = pfd[0];
    registry_add(pid, s.log_path);

    /* Read the first line. */
    char line[sizeof s.first_line];
    size_t len = 0;
    int64_t deadline = itest_now_ms() + itest_ms(10000);
    const char *why = NULL;
    for (;;) {
        char *nl = memchr(line, '\n', len);
        if (nl) {
            *nl = 0;
            break;
        }
        if (len >= sizeof line - 1) {
            why = "first stdout line too long";
            break;
        }
        struct pollfd p = {.fd = s.stdout_fd, .events = POLLIN};
        int rc = poll(&p, 1, remaining_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0) {
            why = "no \"listening\" line on stdout in time";
            break;
        }
        /* Read byte by byte: nothing after the first line may be consumed. */
        ssize_t n = read(s.stdout_fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            why = "stdout closed before the \"listening\" line";
            break;
        }
        len += (size_t)n;
    }
    line[len < sizeof line ? len : sizeof line - 1] = 0;
    snprintf(s.first_line, sizeof s.first_line, "%s", line);

    if (!why) {
        size_t pl = sizeof listen_prefix - 1;
        char *end = NULL;
        long port = 0;
        if (strncmp(line, listen_prefix, pl) == 0) {
            errno = 0;
            port = strtol(line + pl, &end, 10);
        }
        if (!end || end == line + pl || *end != 0 || port <= 0 || port > 65535)
            why = "unexpected first stdout line";
        else
            s.port = (int)port;
    }
    if (why) {
        say("server start failed: %s (got \"%s\")", why, s.first_line);
        kill(s.pid, SIGKILL);
        while (waitpid(s.pid, NULL, 0) < 0 && errno == EINTR)
            ;
        registry_remove(s.pid);
        itest_server_dump_log(&s, 16384);
        server_release(&s, false);
        memset(&s, 0, sizeof s);
        s.stdout_fd = -1;
        s.exit_status = ITEST_EXIT_ERROR;
    }
    return s;
}

struct itest_server itest_server_start(const char *const *extra_args)
{
    return server_start(extra_args, 0, 0, NULL, NULL);
}

struct itest_server itest_server_start_stderr(const char *const *extra_args, const char *path)
{
    return server_start(extra_args, 0, 0, NULL, path);
}

struct itest_server itest_server_start_nofile(const char *const *extra_args, unsigned long nofile)
{
    return server_start(extra_args, nofile, 0, NULL, NULL);
}

struct itest_server itest_server_start_fsize(const char *const *extra_args, unsigned long fsize)
{
    return server_start(extra_args, 0, fsize, NULL, NULL);
}

struct itest_server itest_server_start_env(const char *const *extra_args, const char *const *env)
{
    return server_start(extra_args, 0, 0, env, NULL);
}

static void server_release(struct itest_server *s, bool show_log)
{
    if (s->stdout_fd >= 0) {
        s->stdout_tail_len = itest_server_stdout_extra(s, s->stdout_tail, sizeof s->stdout_tail);
        if (s->stdout_tail_len)
            say("server printed more on stdout: \"%s\"", s->stdout_tail);
        close(s->stdout_fd);
        s->stdout_fd = -1;
    }
    const char *show = getenv("ITEST_SERVER_LOG");
    if (show && strcmp(show, "2") == 0)
        show_log = true;
    if (s->log_path[0]) {
        if (show_log)
            itest_server_dump_log(s, 16384);
        unlink(s->log_path);
        s->log_path[0] = 0;
    }
}

static int decode_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return ITEST_EXIT_ERROR;
}

int itest_server_signal(struct itest_server *s, int sig, int timeout_ms)
{
    if (s->pid <= 0)
        return ITEST_EXIT_ERROR;
    pid_t pid = s->pid;
    int wstatus = 0;
    int result;
    kill(pid, sig);
    int64_t deadline = itest_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, &wstatus, WNOHANG);
        if (r == pid) {
            result = decode_status(wstatus);
            break;
        }
        if (r < 0 && errno != EINTR) {
            say("waitpid(%d): %s", (int)pid, strerror(errno));
            result = ITEST_EXIT_ERROR;
            break;
        }
        if (itest_now_ms() >= deadline) {
            say("server %d did not exit within %d ms of signal %d: SIGKILL", (int)pid, timeout_ms,
                sig);
            kill(pid, SIGKILL);
            while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
                ;
            result = ITEST_EXIT_TIMEOUT;
            break;
        }
        itest_sleep_ms(5);
    }
    registry_remove(pid);
    s->pid = 0;
    s->exit_status = result;
    if (result != 0 && sig != SIGKILL)
        say("server %d ended with status %d after signal %d", (int)pid, result, sig);
    if (sig != SIGKILL)
        wrapper_check_status(pid, result);
    server_release(s, result != 0 && sig != SIGKILL);
    return result;
}

int itest_server_stop(struct itest_server *s)
{
    return itest_server_signal(s, SIGTERM, itest_ms(10000));
}

bool itest_server_running(struct itest_server *s)
{
    if (s->pid <= 0)
        return false;
    int wstatus;
    pid_t r = waitpid(s->pid, &wstatus, WNOHANG);
    if (r == 0)
        return true;
    if (r == s->pid) {
        s->exit_status = decode_status(wstatus);
        say("server %d exited on its own with status %d", (int)s->pid, s->exit_status);
        wrapper_check_status(s->pid, s->exit_status);
        registry_remove(s->pid);
        s->pid = 0;
        server_release(s, true);
    }
    return false;
}

size_t itest_server_stdout_extra(struct itest_server *s, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return 0;
    buf[0] = 0;
    if (s->stdout_fd < 0)
        return 0;
    for (;;) {
        struct pollfd p = {.fd = s->stdout_fd, .events = POLLIN};
        if (poll(&p, 1, 0) <= 0)
            break;
        char tmp[512];
        ssize_t n = read(s->stdout_fd, tmp, sizeof tmp);
        if (n <= 0)
            break;
        size_t take = (size_t)n;
        if (take > cap - 1 - len)
            take = cap - 1 - len;
        memcpy(buf + len, tmp, take);
        len += take;
    }
    buf[len] = 0;
    return len;
}

void itest_server_dump_log(const struct itest_server *s, size_t max_bytes)
{
    if (!s->log_path[0])
        return;
    int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    off_t start = 0;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size > max_bytes)
        start = st.st_size - (off_t)max_bytes;
    if (lseek(fd, start, SEEK_SET) < 0)
        start = 0;
    fprintf(stderr, "itest: ---- server stderr (%s%s) ----\n", s->log_path,
            start > 0 ? ", tail" : "");
    char tmp[4096];
    ssize_t n;
    while ((n = read(fd, tmp, sizeof tmp)) > 0)
        fwrite(tmp, 1, (size_t)n, stderr);
    fprintf(stderr, "itest: ---- end of server stderr ----\n");
    close(fd);
}

int itest_server_fd_count(const struct itest_server *s)
{
    if (s->pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)s->pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            count++;
    closedir(d);
    return count;
}

int itest_server_fd_settle(const struct itest_server *s, int target, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    int count;
    for (;;) {
        count = itest_server_fd_count(s);
        if (count <= target || itest_now_ms() >= deadline)
            return count;
        itest_sleep_ms(20);
    }
}

long itest_server_rss_kb(const struct itest_server *s)
{
    if (s->pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* ----------------------------------------------------------- connections */

static int make_socket(int port, bool nonblocking, bool *in_progress)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        say("socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!nonblocking) {
        int ms = itest_timeout();
        struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (in_progress)
        *in_progress = false;
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (errno == EINTR)
            continue;
        if (nonblocking && errno == EINPROGRESS && in_progress) {
            *in_progress = true;
            break;
        }
        say("connect to 127.0.0.1:%d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int itest_connect(int port)
{
    return make_socket(port, false, NULL);
}

int itest_connect_nb(int port)
{
    bool in_progress;
    return make_socket(port, true, &in_progress);
}

void itest_close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

bool itest_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* Non-blocking socket, or SO_SNDTIMEO expired: wait a bit. */
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                if (poll(&pf, 1, itest_timeout()) > 0)
                    continue;
                say("send: timed out with %zu bytes left", len);
                return false;
            }
            say("send: %s (%zu bytes left)", strerror(errno), len);
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

bool itest_send_str(int fd, const char *s)
{
    return itest_send_all(fd, s, strlen(s));
}

bool itest_send_slowly(int fd, const void *buf, size_t len, size_t chunk, int pause_ms)
{
    const char *p = buf;
    if (chunk == 0)
        chunk = 1;
    while (len > 0) {
        size_t n = len < chunk ? len : chunk;
        if (!itest_send_all(fd, p, n))
            return false;
        p += n;
        len -= n;
        if (len > 0)
            itest_sleep_ms(pause_ms);
    }
    return true;
}

/* Reads up to cap bytes, waiting until the deadline. Returns the count, 0 at
 * end of stream or on a reset (then *reset is set, when reset is not NULL),
 * -1 on timeout (errno ETIMEDOUT) or error. */
static ssize_t recv_until(int fd, void *buf, size_t cap, int64_t deadline, bool *reset)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, remaining_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno == ECONNRESET) {
            if (reset)
                *reset = true;
            return 0;
        }
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (itest_now_ms() >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

ssize_t itest_recv_deadline(int fd, void *buf, size_t cap, int timeout_ms)
{
    return recv_until(fd, buf, cap, itest_now_ms() + timeout_ms, NULL);
}

int itest_conn_open(struct itest_conn *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = itest_connect(port);
    return c->fd >= 0 ? 0 : -1;
}

void itest_conn_close(struct itest_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

bool itest_conn_send(struct itest_conn *c, const char *s)
{
    return itest_send_all(c->fd, s, strlen(s));
}

bool itest_conn_sendn(struct itest_conn *c, const void *buf, size_t len)
{
    return itest_send_all(c->fd, buf, len);
}

static bool conn_reserve(struct itest_conn *c, size_t extra)
{
    if (c->len + extra + 1 <= c->cap)
        return true;
    size_t cap = c->cap ? c->cap : 4096;
    while (cap < c->len + extra + 1)
        cap *= 2;
    char *nb = realloc(c->buf, cap);
    if (!nb) {
        say("out of memory");
        return false;
    }
    c->buf = nb;
    c->cap = cap;
    return true;
}

/* Reads once (waiting until the deadline). > 0 bytes, 0 end, -1 timeout/error. */
static ssize_t conn_fill_deadline(struct itest_conn *c, int64_t deadline)
{
    if (c->eof)
        return 0;
    if (!conn_reserve(c, 16384))
        return -1;
    bool reset = false;
    ssize_t n = recv_until(c->fd, c->buf + c->len, c->cap - c->len - 1, deadline, &reset);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = 0;
    } else if (n == 0) {
        c->eof = true;
        if (reset)
            c->reset = true;
    }
    return n;
}

ssize_t itest_conn_fill(struct itest_conn *c, int timeout_ms)
{
    return conn_fill_deadline(c, itest_now_ms() + timeout_ms);
}

bool itest_conn_read_until(struct itest_conn *c, const char *needle, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    size_t nl = strlen(needle);
    for (;;) {
        if (c->len >= nl && memmem(c->buf, c->len, needle, nl))
            return true;
        if (conn_fill_deadline(c, deadline) <= 0)
            return false;
    }
}

bool itest_conn_wait_close(struct itest_conn *c, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    for (;;) {
        if (c->eof)
            return true;
        ssize_t n = conn_fill_deadline(c, deadline);
        if (n == 0)
            return true;
        if (n < 0)
            return false;
        if (c->len > ITEST_MAX_BODY) {
            say("wait_close: over %u bytes received without a close", ITEST_MAX_BODY);
            return false;
        }
    }
}

void itest_conn_consume(struct itest_conn *c, size_t n)
{
    if (n >= c->len) {
        c->len = 0;
    } else {
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
    }
    if (c->buf)
        c->buf[c->len] = 0;
}

/* -------------------------------------------------------------- responses */

static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static char *trim_blanks(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Parses the head in buf[0..len) (ending with CRLFCRLF) into r. */
static int parse_head(const char *buf, size_t len, struct itest_response *r)
{
    memset(r, 0, sizeof *r);
    r->head = malloc(len + 1);
    if (!r->head) {
        say("out of memory");
        return -1;
    }
    memcpy(r->head, buf, len);
    r->head[len] = 0;
    r->head_len = len;
    if (memchr(buf, 0, len)) {
        say("response head contains a NUL byte");
        goto bad;
    }

    char *line = r->head;
    char *eol = strstr(line, "\r\n");
    if (!eol)
        goto bad;
    *eol = 0;
    /* HTTP/1.x SSS[ reason] */
    if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
        !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
        !isdigit((unsigned char)line[11]) || (line[12] != ' ' && line[12] != 0)) {
        say("malformed status line \"%s\"", line);
        goto bad;
    }
    r->minor_version = line[7] - '0';
    r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    r->reason = line[12] ? line + 13 : line + 12;
    for (const char *p = r->reason; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            say("bare CR/LF in status line");
            goto bad;
        }
    }

    for (line = eol + 2; *line; line = eol + 2) {
        eol = strstr(line, "\r\n");
        if (!eol)
            goto bad;
        *eol = 0;
        if (*line == 0)
            break; /* the empty line ending the head */
        char *colon = strchr(line, ':');
        if (!colon || colon == line) {
            say("malformed header line \"%s\"", line);
            goto bad;
        }
        *colon = 0;
        for (char *p = line; *p; p++) {
            if (!is_tchar((unsigned char)*p)) {
                say("invalid header name \"%s\"", line);
                goto bad;
            }
        }
        char *value = trim_blanks(colon + 1);
        for (char *p = value; *p; p++) {
            if (*p == '\r' || *p == '\n') {
                say("bare CR/LF in header \"%s\"", line);
                goto bad;
            }
        }
        if (r->num_headers >= ITEST_MAX_HEADERS) {
            say("more than %d header fields", ITEST_MAX_HEADERS);
            goto bad;
        }
        r->headers[r->num_headers].name = line;
        r->headers[r->num_headers].value = value;
        r->num_headers++;
    }
    return 0;
bad:
    if (r->head)
        say("in response head: \"%.300s\"", buf);
    free(r->head);
    memset(r, 0, sizeof *r);
    return -1;
}

const char *itest_header(const struct itest_response *r, const char *name)
{
    for (size_t i = 0; i < r->num_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

const char *itest_header_or_absent(const struct itest_response *r, const char *name)
{
    const char *v = itest_header(r, name);
    return v ? v : "(absent)";
}

void itest_show_response(const char *what, const struct itest_response *r, int max_body)
{
    fprintf(stderr, "---- %s: status %d\n", what, r->status);
    for (size_t i = 0; i < r->num_headers; i++)
        fprintf(stderr, "  %s: %s\n", r->headers[i].name, r->headers[i].value);
    fprintf(stderr, "  body (%zu bytes): %.*s\n", r->body_len, max_body, r->body ? r->body : "");
}

size_t itest_header_count(const struct itest_response *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->num_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            n++;
    return n;
}

bool itest_header_has_token(const struct itest_response *r, const char *name, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i < r->num_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        const char *p = r->headers[i].value;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',')
                p++;
            const char *start = p;
            while (*p && *p != ',')
                p++;
            const char *end = p;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            if ((size_t)(end - start) == tl && strncasecmp(start, token, tl) == 0)
                return true;
        }
    }
    return false;
}

bool itest_header_starts(const struct itest_response *r, const char *name, const char *prefix)
{
    const char *v = itest_header(r, name);
    return v && strncasecmp(v, prefix, strlen(prefix)) == 0;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

bool itest_is_json_error(const struct itest_response *r)
{
    if (!r->body)
        return false;
    const char *p = r->body, *end = r->body + r->body_len;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '{')
        return false;
    p = skip_ws(p, end);
    if ((size_t)(end - p) < 7 || memcmp(p, "\"error\"", 7) != 0)
        return false;
    p = skip_ws(p + 7, end);
    if (p >= end || *p++ != ':')
        return false;
    p = skip_ws(p, end);
    if (p >= end || *p++ != '"')
        return false;
    const char *msg = p;
    while (p < end && *p != '"') {
        if ((unsigned char)*p < 0x20)
            return false;
        if (*p == '\\')
            p++;
        p++;
    }
    if (p >= end || p == msg)
        return false;
    p = skip_ws(p + 1, end);
    if (p >= end || *p++ != '}')
        return false;
    return skip_ws(p, end) == end;
}

void itest_response_free(struct itest_response *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Makes sure c->buf holds at least n bytes. */
static bool conn_need(struct itest_conn *c, size_t n, int64_t deadline)
{
    while (c->len < n) {
        ssize_t got = conn_fill_deadline(c, deadline);
        if (got <= 0)
            return false;
    }
    return true;
}

/* Reads one CRLF-terminated line from c into a new string (CRLF removed). */
static char *conn_line(struct itest_conn *c, int64_t deadline, size_t max)
{
    for (;;) {
        char *eol = c->len ? memmem(c->buf, c->len, "\r\n", 2) : NULL;
        if (eol) {
            size_t n = (size_t)(eol - c->buf);
            char *line = strndup(c->buf, n);
            itest_conn_consume(c, n + 2);
            return line;
        }
        if (c->len > max)
            return NULL;
        if (conn_fill_deadline(c, deadline) <= 0)
            return NULL;
    }
}

static bool body_append(struct itest_response *r, size_t *cap, const char *p, size_t n)
{
    if (r->body_len + n > ITEST_MAX_BODY) {
        say("response body over %u bytes", ITEST_MAX_BODY);
        return false;
    }
    if (r->body_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < r->body_len + n + 1)
            nc *= 2;
        char *nb = realloc(r->body, nc);
        if (!nb)
            return false;
        r->body = nb;
        *cap = nc;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = 0;
    return true;
}

static int read_chunked(struct itest_conn *c, struct itest_response *r, int64_t deadline)
{
    size_t cap = 0;
    for (;;) {
        char *line = conn_line(c, deadline, 4096);
        if (!line) {
            say("chunked body: no chunk-size line");
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long long size = strtoull(line, &end, 16);
        bool ok = end != line && errno == 0 && (*end == 0 || *end == ';' || *end == ' ');
        free(line);
        if (!ok || size > ITEST_MAX_BODY) {
            say("chunked body: bad chunk-size line");
            return -1;
        }
        if (size == 0)
            break;
        if (!conn_need(c, (size_t)size + 2, deadline)) {
            say("chunked body: truncated chunk");
            return -1;
        }
        if (memcmp(c->buf + size, "\r\n", 2) != 0) {
            say("chunked body: chunk not followed by CRLF");
            return -1;
        }
        if (!body_append(r, &cap, c->buf, (size_t)size))
            return -1;
        itest_conn_consume(c, (size_t)size + 2);
    }
    for (;;) { /* trailer section */
        char *line = conn_line(c, deadline, 8192);
        if (!line) {
            say("chunked body: unterminated trailer section");
            return -1;
        }
        bool last = *line == 0;
        free(line);
        if (last)
            break;
    }
    if (!r->body)
        r->body = calloc(1, 1);
    return r->body ? 0 : -1;
}

int itest_read_response(struct itest_conn *c, struct itest_response *r, unsigned flags,
                        int timeout_ms)
{
    memset(r, 0, sizeof *r);
    int64_t deadline = itest_now_ms() + timeout_ms;
    char *end;
    for (;;) {
        end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end)
            break;
        if (c->len > ITEST_MAX_HEAD) {
            say("response head over %d bytes", ITEST_MAX_HEAD);
            return -1;
        }
        ssize_t n = conn_fill_deadline(c, deadline);
        if (n <= 0) {
            if (n == 0)
                say("connection %s before a complete response head (%zu bytes: \"%.200s\")",
                    c->reset ? "reset" : "closed", c->len, c->len ? c->buf : "");
            else
                say("no complete response head within %d ms (%zu bytes: \"%.200s\")", timeout_ms,
                    c->len, c->len ? c->buf : "");
            return -1;
        }
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    if (parse_head(c->buf, head_len, r) != 0)
        return -1;
    itest_conn_consume(c, head_len);
    if (flags & ITEST_RESP_HEAD_ONLY)
        return 0;

    const char *te = itest_header(r, "Transfer-Encoding");
    const char *cl = itest_header(r, "Content-Length");
    if ((flags & ITEST_RESP_NO_BODY) || (r->status >= 100 && r->status < 200) || r->status == 204 ||
        r->status == 304) {
        r->body = calloc(1, 1);
    } else if (te) {
        if (strcasecmp(te, "chunked") != 0) {
            say("unsupported Transfer-Encoding \"%s\"", te);
            goto fail;
        }
        if (read_chunked(c, r, deadline) != 0)
            goto fail;
    } else if (cl) {
        char *e;
        errno = 0;
        unsigned long long n = strtoull(cl, &e, 10);
        if (!isdigit((unsigned char)*cl) || *e || errno || n > ITEST_MAX_BODY) {
            say("bad Content-Length \"%s\"", cl);
            goto fail;
        }
        if (!conn_need(c, (size_t)n, deadline)) {
            say("body: got %zu of %llu bytes (%s)", c->len, n,
                c->eof ? "connection closed" : "timeout");
            goto fail;
        }
        r->body = malloc((size_t)n + 1);
        if (!r->body)
            goto fail;
        memcpy(r->body, c->buf, (size_t)n);
        r->body[n] = 0;
        r->body_len = (size_t)n;
        itest_conn_consume(c, (size_t)n);
    } else {
        /* Delimited by the end of the connection. */
        if (!itest_conn_wait_close(c, remaining_ms(deadline))) {
            say("body without length: connection not closed in time");
            goto fail;
        }
        r->body = malloc(c->len + 1);
        if (!r->body)
            goto fail;
        if (c->len)
            memcpy(r->body, c->buf, c->len);
        r->body[c->len] = 0;
        r->body_len = c->len;
        r->closed = true;
        itest_conn_consume(c, c->len);
    }
    if (!r->body)
        goto fail;
    return 0;
fail:
    itest_response_free(r);
    return -1;
}

int itest_request_n(int port, const void *raw, size_t len, unsigned flags, struct itest_response *r)
{
    memset(r, 0, sizeof *r);
    struct itest_conn c;
    if (itest_conn_open(&c, port) != 0)
        return -1;
    int rc = -1;
    if (itest_conn_sendn(&c, raw, len) && itest_read_response(&c, r, flags, itest_timeout()) == 0) {
        rc = 0;
        if (!r->closed && itest_header_has_token(r, "Connection", "close"))
            r->closed = itest_conn_wait_close(&c, itest_timeout());
    }
    itest_conn_close(&c);
    return rc;
}

/* The flags itest_request adds for raw: no body in the answer to a HEAD. */
static unsigned request_flags(const char *raw)
{
    return strncmp(raw, "HEAD ", 5) == 0 ? ITEST_RESP_NO_BODY : 0;
}

int itest_request(int port, const char *raw, struct itest_response *r)
{
    return itest_request_n(port, raw, strlen(raw), request_flags(raw), r);
}

int itest_request_status(int port, const char *raw, unsigned flags)
{
    struct itest_response r;
    if (itest_request_n(port, raw, strlen(raw), flags | request_flags(raw), &r) != 0)
        return -1;
    int status = r.status;
    itest_response_free(&r);
    return status;
}

bool itest_json_u64(const char *json, const char *key, uint64_t *out)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = json;
    while ((p = strstr(p, pat)) != NULL) {
        const char *q = p + strlen(pat);
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (*q != ':') {
            p++;
            continue;
        }
        q++;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (!isdigit((unsigned char)*q))
            return false;
        char *e;
        errno = 0;
        unsigned long long v = strtoull(q, &e, 10);
        if (errno)
            return false;
        *out = v;
        return true;
    }
    return false;
}

int itest_post_message_conn(struct itest_conn *c, const char *target, const void *body, size_t len,
                            uint64_t *id, long *clients)
{
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      target ? target : "/message", len);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return -1;
    if (!itest_conn_sendn(c, head, (size_t)hl) || (len && !itest_conn_sendn(c, body, len)))
        return -1;
    struct itest_response r;
    if (itest_read_response(c, &r, 0, itest_timeout()) != 0)
        return -1;
    int status = r.status;
    if (status == 202) {
        uint64_t v_id, v_clients;
        if (!itest_json_u64(r.body, "id", &v_id) ||
            !itest_json_u64(r.body, "clients", &v_clients)) {
            say("202 without id/clients: \"%.200s\"", r.body);
            status = -1;
        } else {
            if (id)
                *id = v_id;
            if (clients)
                *clients = (long)v_clients;
        }
    }
    itest_response_free(&r);
    return status;
}

int itest_post_message(int port, const char *target, const void *body, size_t len, uint64_t *id,
                       long *clients)
{
    struct itest_conn c;
    if (itest_conn_open(&c, port) != 0)
        return -1;
    int status = itest_post_message_conn(&c, target, body, len, id, clients);
    itest_conn_close(&c);
    return status;
}

/* ------------------------------------------------------------ subscribers */

static void sub_on_event(void *ctx, const struct ssep_event *ev)
{
    struct itest_sub *s = ctx;
    ssep_list_add(&s->events, ev);
    if (s->events.count > s->event_ms_cap) {
        size_t cap = s->event_ms_cap ? s->event_ms_cap * 2 : 16;
        while (cap < s->events.count)
            cap *= 2;
        int64_t *nt = realloc(s->event_ms, cap * sizeof *nt);
        if (!nt)
            return;
        s->event_ms = nt;
        s->event_ms_cap = cap;
    }
    if (s->events.count > 0)
        s->event_ms[s->events.count - 1] = itest_now_ms();
}

static void sub_fail(struct itest_sub *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sub_fail(struct itest_sub *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof s->error, fmt, ap);
    va_end(ap);
    s->state = ITEST_SUB_FAILED;
}

int itest_sub_start(struct itest_sub *s, int port, const char *target, const char *extra_headers)
{
    memset(s, 0, sizeof *s);
    s->conn.fd = -1;
    s->opened_ms = itest_now_ms();
    ssep_init(&s->parser, sub_on_event, s);
    ssep_list_init(&s->events);

    const char *extra = extra_headers ? extra_headers : "";
    size_t cap = strlen(target) + strlen(extra) + 200;
    s->req = malloc(cap);
    if (!s->req) {
        sub_fail(s, "out of memory");
        return -1;
    }
    int n = snprintf(s->req, cap,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n"
                     "Cache-Control: no-cache\r\n%s\r\n",
                     target, port, extra);
    s->req_len = n > 0 ? (size_t)n : 0;

    bool in_progress = false;
    s->conn.fd = make_socket(port, true, &in_progress);
    if (s->conn.fd < 0) {
        sub_fail(s, "connect failed");
        return -1;
    }
    s->state = in_progress ? ITEST_SUB_CONNECTING : ITEST_SUB_SENDING;
    return 0;
}

short itest_sub_poll_events(const struct itest_sub *s)
{
    switch (s->state) {
    case ITEST_SUB_CONNECTING:
    case ITEST_SUB_SENDING:
        return POLLOUT;
    case ITEST_SUB_HEAD:
    case ITEST_SUB_STREAM:
        return POLLIN;
    default:
        return 0;
    }
}

static void sub_feed(struct itest_sub *s, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (s->first_byte_ms == 0)
        s->first_byte_ms = itest_now_ms();
    if (s->raw_len < sizeof s->raw - 1) {
        size_t take = n < sizeof s->raw - 1 - s->raw_len ? n : sizeof s->raw - 1 - s->raw_len;
        memcpy(s->raw + s->raw_len, p, take);
        s->raw_len += take;
        s->raw[s->raw_len] = 0;
    }
    s->body_bytes += n;
    if (ssep_feed(&s->parser, p, n) != 0)
        sub_fail(s, "sse parser: out of memory");
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_END };

/* Decodes chunked transfer coding of a stream body, feeding the parser. */
static void sub_body(struct itest_sub *s, const char *p, size_t n)
{
    if (!s->chunked) {
        sub_feed(s, p, n);
        return;
    }
    size_t i = 0;
    while (i < n && s->state == ITEST_SUB_STREAM) {
        char ch = p[i];
        switch (s->ch_state) {
        case CH_SIZE:
            if (isxdigit((unsigned char)ch)) {
                int d =
                    isdigit((unsigned char)ch) ? ch - '0' : (tolower((unsigned char)ch) - 'a' + 10);
                if (s->ch_left > (UINT64_MAX >> 4)) {
                    sub_fail(s, "chunk size overflow");
                    return;
                }
                s->ch_left = s->ch_left * 16 + (uint64_t)d;
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                s->ch_state = CH_EXT;
            } else if (ch == '\r') {
                s->ch_state = CH_SIZE_LF;
            } else {
                sub_fail(s, "bad chunk-size byte 0x%02x", (unsigned char)ch);
                return;
            }
            i++;
            break;
        case CH_EXT:
            if (ch == '\r')
                s->ch_state = CH_SIZE_LF;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                sub_fail(s, "chunk-size line not ended by CRLF");
                return;
            }
            i++;
            s->ch_state = s->ch_left ? CH_DATA : CH_END;
            break;
        case CH_DATA: {
            size_t take = n - i;
            if (take > s->ch_left)
                take = (size_t)s->ch_left;
            sub_feed(s, p + i, take);
            i += take;
            s->ch_left -= take;
            if (s->ch_left == 0)
                s->ch_state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
        case CH_DATA_LF:
            if (ch != (s->ch_state == CH_DATA_CR ? '\r' : '\n')) {
                sub_fail(s, "chunk data not followed by CRLF");
                return;
            }
            i++;
            s->ch_state = s->ch_state == CH_DATA_CR ? CH_DATA_LF : CH_SIZE;
            break;
        default: /* last chunk seen: the stream is over */
            i = n;
            break;
        }
    }
}

static void sub_check_head(struct itest_sub *s)
{
    char *end = memmem(s->conn.buf, s->conn.len, "\r\n\r\n", 4);
    if (!end) {
        if (s->conn.len > ITEST_MAX_HEAD)
            sub_fail(s, "response head too long");
        return;
    }
    size_t hl = (size_t)(end - s->conn.buf) + 4;
    if (parse_head(s->conn.buf, hl, &s->head) != 0) {
        sub_fail(s, "malformed response head");
        return;
    }
    s->head_ms = itest_now_ms();
    itest_conn_consume(&s->conn, hl);
    if (s->head.status != 200) {
        sub_fail(s, "status %d, not 200", s->head.status);
        return;
    }
    if (!itest_header_starts(&s->head, "Content-Type", "text/event-stream")) {
        const char *ct = itest_header(&s->head, "Content-Type");
        sub_fail(s, "Content-Type \"%s\", not text/event-stream", ct ? ct : "(none)");
        return;
    }
    const char *te = itest_header(&s->head, "Transfer-Encoding");
    if (te) {
        if (strcasecmp(te, "chunked") != 0) {
            sub_fail(s, "unsupported Transfer-Encoding \"%s\"", te);
            return;
        }
        s->chunked = true;
    }
    s->state = ITEST_SUB_STREAM;
    size_t rest = s->conn.len;
    if (rest) {
        sub_body(s, s->conn.buf, rest);
        itest_conn_consume(&s->conn, rest);
    }
}

enum itest_sub_state itest_sub_step(struct itest_sub *s)
{
    for (;;) {
        switch (s->state) {
        case ITEST_SUB_CONNECTING: {
            struct pollfd p = {.fd = s->conn.fd, .events = POLLOUT};
            if (poll(&p, 1, 0) <= 0)
                return s->state;
            int err = 0;
            socklen_t el = sizeof err;
            if (getsockopt(s->conn.fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                err = errno;
            if (err != 0) {
                sub_fail(s, "connect: %s", strerror(err));
                return s->state;
            }
            s->state = ITEST_SUB_SENDING;
            break;
        }
        case ITEST_SUB_SENDING: {
            ssize_t n = send(s->conn.fd, s->req + s->req_off, s->req_len - s->req_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return s->state;
                sub_fail(s, "send: %s", strerror(errno));
                return s->state;
            }
            s->req_off += (size_t)n;
            if (s->req_off == s->req_len)
                s->state = ITEST_SUB_HEAD;
            break;
        }
        case ITEST_SUB_HEAD:
        case ITEST_SUB_STREAM: {
            char tmp[16384];
            ssize_t n = recv(s->conn.fd, tmp, sizeof tmp, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                    return s->state;
                if (errno == ECONNRESET) {
                    s->conn.eof = s->conn.reset = true;
                    if (s->state == ITEST_SUB_HEAD)
                        sub_fail(s, "connection reset before the response head");
                    else
                        s->state = ITEST_SUB_CLOSED;
                    return s->state;
                }
                sub_fail(s, "recv: %s", strerror(errno));
                return s->state;
            }
            if (n == 0) {
                s->conn.eof = true;
                if (s->state == ITEST_SUB_HEAD)
                    sub_fail(s, "connection closed before the response head (%zu bytes)",
                             s->conn.len);
                else
                    s->state = ITEST_SUB_CLOSED;
                return s->state;
            }
            if (s->state == ITEST_SUB_STREAM) {
                sub_body(s, tmp, (size_t)n);
            } else {
                if (!conn_reserve(&s->conn, (size_t)n)) {
                    sub_fail(s, "out of memory");
                    return s->state;
                }
                memcpy(s->conn.buf + s->conn.len, tmp, (size_t)n);
                s->conn.len += (size_t)n;
                s->conn.buf[s->conn.len] = 0;
                sub_check_head(s);
            }
            break;
        }
        default:
            return s->state;
        }
    }
}

struct want_events {
    size_t want;
};

static bool pred_events(const struct itest_sub *s, void *arg)
{
    const struct want_events *w = arg;
    return s->state == ITEST_SUB_STREAM && s->events.count >= w->want;
}

static size_t drive(struct itest_sub *subs, size_t n,
                    bool (*pred)(const struct itest_sub *, void *), void *arg, int timeout_ms)
{
    int64_t deadline = itest_now_ms() + timeout_ms;
    struct pollfd *pfd = calloc(n ? n : 1, sizeof *pfd);
    size_t *idx = calloc(n ? n : 1, sizeof *idx);
    size_t done = 0;
    if (!pfd || !idx) {
        say("out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) /* use what is already there */
        if (itest_sub_poll_events(&subs[i]))
            itest_sub_step(&subs[i]);
    for (;;) {
        size_t active = 0;
        done = 0;
        for (size_t i = 0; i < n; i++) {
            struct itest_sub *s = &subs[i];
            if (pred(s, arg)) {
                done++;
                continue;
            }
            short ev = itest_sub_poll_events(s);
            if (!ev)
                continue;
            pfd[active].fd = s->conn.fd;
            pfd[active].events = ev;
            pfd[active].revents = 0;
            idx[active++] = i;
        }
        if (active == 0)
            break;
        int left = remaining_ms(deadline);
        if (left == 0)
            break;
        int rc = poll(pfd, active, left);
        if (rc < 0 && errno != EINTR) {
            say("poll: %s", strerror(errno));
            break;
        }
        for (size_t k = 0; rc > 0 && k < active; k++)
            if (pfd[k].revents)
                itest_sub_step(&subs[idx[k]]);
    }
    done = 0;
    for (size_t i = 0; i < n; i++)
        if (pred(&subs[i], arg))
            done++;
out:
    free(pfd);
    free(idx);
    return done;
}

size_t itest_subs_drive(struct itest_sub *subs, size_t n, size_t want, int timeout_ms)
{
    struct want_events w = {want};
    return drive(subs, n, pred_events, &w, timeout_ms);
}

bool itest_sub_wait_until(struct itest_sub *s, bool (*pred)(const struct itest_sub *, void *),
                          void *arg, int timeout_ms)
{
    return drive(s, 1, pred, arg, timeout_ms) == 1;
}

bool itest_sub_wait(struct itest_sub *s, size_t n, int timeout_ms)
{
    return itest_subs_drive(s, 1, n, timeout_ms) == 1;
}

int itest_sub_open(struct itest_sub *s, int port, const char *target, int timeout_ms)
{
    if (itest_sub_start(s, port, target, NULL) != 0) {
        say("subscriber %s: %s", target, s->error);
        return -1;
    }
    if (itest_subs_drive(s, 1, 0, timeout_ms) != 1) {
        say("subscriber %s: %s", target,
            s->state == ITEST_SUB_FAILED ? s->error : "no response head in time");
        return -1;
    }
    return 0;
}

size_t itest_subs_open(struct itest_sub *subs, size_t n, int port, const char *target,
                       int timeout_ms)
{
    for (size_t i = 0; i < n; i++)
        itest_sub_start(&subs[i], port, target, NULL);
    size_t ok = itest_subs_drive(subs, n, 0, timeout_ms);
    if (ok != n) {
        size_t shown = 0;
        for (size_t i = 0; i < n && shown < 5; i++) {
            if (subs[i].state != ITEST_SUB_STREAM) {
                say("subscriber %zu: state %d: %s", i, (int)subs[i].state,
                    subs[i].error[0] ? subs[i].error : "timeout");
                shown++;
            }
        }
    }
    return ok;
}

static void sub_free(struct itest_sub *s)
{
    itest_conn_close(&s->conn);
    itest_response_free(&s->head);
    ssep_free(&s->parser);
    ssep_list_free(&s->events);
    free(s->event_ms);
    s->event_ms = NULL;
    s->event_ms_cap = 0;
    free(s->req);
    s->req = NULL;
    s->state = ITEST_SUB_CLOSED;
}

void itest_sub_close(struct itest_sub *s)
{
    sub_free(s);
}

void itest_sub_abort(struct itest_sub *s)
{
    itest_close_rst(s->conn.fd);
    s->conn.fd = -1;
    sub_free(s);
}

bool itest_sub_has_preamble(const struct itest_sub *s, void *arg)
{
    (void)arg;
    return s->parser.has_retry && s->parser.comments >= 1;
}

/* ------------------------------------------------------- test utilities */

bool itest_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

uint64_t itest_event_id(const struct ssep_event *ev)
{
    uint64_t id = 0;
    if (!itest_parse_u64(ev->id, &id))
        fail_msg("event id \"%s\" is not a decimal number (type %s, data \"%.80s\")", ev->id,
                 ev->type, ev->data);
    return id;
}

void itest_print_events(const char *label, const struct ssep_list *evs, size_t from, size_t max)
{
    fprintf(stderr, "%s: %zu events\n", label, evs->count);
    for (size_t i = from; i < evs->count && i - from < max; i++)
        fprintf(stderr, "  [%zu] type=%s id=%s data=\"%.60s\"%s\n", i, evs->ev[i].type,
                evs->ev[i].id, evs->ev[i].data, evs->ev[i].data_len > 60 ? "..." : "");
}

void itest_print_escaped(const char *label, const void *bytes, size_t len, size_t max)
{
    const unsigned char *p = bytes;
    fprintf(stderr, "%s (%zu bytes): \"", label, len);
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char ch = p[i];
        if (ch == '\n')
            fputs("\\n", stderr);
        else if (ch == '\r')
            fputs("\\r", stderr);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(stderr, "\\x%02x", ch);
        else
            fputc(ch, stderr);
    }
    fprintf(stderr, "%s\"\n", len > max ? "..." : "");
}

uint64_t itest_rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int itest_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "we");
    if (!f) {
        say("fopen %s: %s", path, strerror(errno));
        return -1;
    }
    size_t w = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || w != len) {
        say("write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void itest_rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* --------------------------------------------------------- cmocka fixture */

int itest_setup_server(void **state)
{
    const char *const *args = *state;
    struct itest_server *s = malloc(sizeof *s);
    if (!s)
        return -1;
    *s = itest_server_start(args);
    if (s->pid <= 0) {
        free(s);
        return -1;
    }
    *state = s;
    return 0;
}

int itest_teardown_server(void **state)
{
    struct itest_server *s = *state;
    int status = s->pid > 0 ? itest_server_stop(s) : s->exit_status;
    if (status != 0)
        say("teardown: server exit status %d", status);
    free(s);
    *state = NULL;
    return status == 0 ? 0 : -1;
}

struct itest_server *itest_state_server(void **state)
{
    return *state;
}

int itest_state_port(void **state)
{
    return itest_state_server(state)->port;
}
