/*
 * itest: starting and stopping the server under test: its arguments and
 * environment ($ITEST_THREADS, $SSE_SERVER_WRAPPER, the SSE_* scrub), the
 * registry and watchdog that make sure none outlives the test, what /proc
 * says of it, and the cmocka fixture. See itest.h.
 */
#include "itest_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char listen_prefix[] = "sse-server listening on http://127.0.0.1:";

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
            itest_say("SSE_SERVER_WRAPPER: more than %d words, the rest is ignored",
                      WRAPPER_MAX_ARGS);
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
    itest_say("server %d: the wrapper (%s) reported errors: exit status %d (its report is in the "
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
        itest_say("server %d still running at exit: killing it", (int)pid);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (live_logs[i][0])
            unlink(live_logs[i]);
        live_pids[i] = 0;
    }
    if (wrapper_failed) {
        /* A test binary whose tests all passed must still fail. */
        itest_say("%d server(s) ended with the error status %d of $SSE_SERVER_WRAPPER: failing",
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

/* What one server start is given. */
struct start_opts {
    const char *const *extra_args;
    unsigned long nofile, fsize; /* limits set in the child, each unless 0 */
    const char *const *env;      /* variables added to the child's environment */
    const char *stderr_path;     /* the child's stderr, unless NULL */
};

/* The command line: the wrapper's words, the binary ($SSE_SERVER), the
 * harness's options, the test's, then --threads $ITEST_THREADS unless the
 * test chose. The strings live in static buffers (one start at a time).
 * The argument count, or 0 after saying why. */
static size_t build_argv(const char **argv, size_t cap, const char *const *extra_args)
{
    /* Copies: the child scrubs SSE_* from its environment before exec. */
    static char bin[4096], static_dir[4096], threads[32];
    const char *e = getenv("SSE_SERVER");
    if (!e || !*e) {
        itest_say("SSE_SERVER is not set (path of the sse-server binary)");
        return 0;
    }
    snprintf(bin, sizeof bin, "%s", e);
    e = getenv("SSE_STATIC");
    snprintf(static_dir, sizeof static_dir, "%s", e ? e : "");
    /* $ITEST_THREADS runs every server at that many event loops (the suite
     * runs once per value), except where a test chose --threads itself. */
    e = getenv("ITEST_THREADS");
    snprintf(threads, sizeof threads, "%s",
             e && !args_set_option(extra_args, "--threads") ? e : "");

    wrapper_parse();
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
    size_t extra = 0;
    while (extra_args && extra_args[extra])
        extra++;
    if (argc + extra + 3 > cap) {
        itest_say("too many server arguments");
        return 0;
    }
    for (size_t i = 0; i < extra; i++)
        argv[argc++] = extra_args[i];
    if (threads[0]) {
        argv[argc++] = "--threads";
        argv[argc++] = threads;
    }
    argv[argc] = NULL;
    return argc;
}

static void child_limit(int resource, const char *name, unsigned long value, bool hard)
{
    struct rlimit rl;
    getrlimit(resource, &rl);
    rl.rlim_cur = value;
    if (hard)
        rl.rlim_max = value;
    if (setrlimit(resource, &rl) != 0) {
        dprintf(STDERR_FILENO, "itest: setrlimit(%s, %lu): %s\n", name, value, strerror(errno));
        _exit(127);
    }
}

/* In the child: stdout to the pipe, stderr to the log (or stderr_path),
 * stdin from nowhere, the environment and limits set, then exec. */
static void child_exec(const char **argv, const struct start_opts *o, int out_fd, int log_fd,
                       pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        close(devnull);
    }
    dup2(out_fd, STDOUT_FILENO);
    if (log_fd >= 0)
        dup2(log_fd, STDERR_FILENO);
    if (o->stderr_path) {
        int fd = open(o->stderr_path, O_WRONLY);
        if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(127);
        close(fd);
    }
    signal(SIGPIPE, SIG_DFL);
    alarm(0);
    if (!getenv("ITEST_KEEP_ENV"))
        scrub_server_env();
    child_setenv(o->env);
    if (o->nofile > 0)
        child_limit(RLIMIT_NOFILE, "RLIMIT_NOFILE", o->nofile, true);
    if (o->fsize > 0)
        child_limit(RLIMIT_FSIZE, "RLIMIT_FSIZE", o->fsize, false);
    if (wrapper_argc > 0)
        execvp(argv[0], (char *const *)argv);
    else
        execv(argv[0], (char *const *)argv);
    dprintf(STDERR_FILENO, "itest: exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Reads the server's first stdout line into s->first_line, byte by byte
 * (nothing after it may be consumed), and takes its port. NULL, or why
 * not. */
static const char *read_listening_line(struct itest_server *s)
{
    char line[sizeof s->first_line];
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
        struct pollfd p = {.fd = s->stdout_fd, .events = POLLIN};
        int rc = poll(&p, 1, itest_remaining_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0) {
            why = "no \"listening\" line on stdout in time";
            break;
        }
        ssize_t n = read(s->stdout_fd, line + len, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            why = "stdout closed before the \"listening\" line";
            break;
        }
        len += (size_t)n;
    }
    line[len < sizeof line ? len : sizeof line - 1] = 0;
    snprintf(s->first_line, sizeof s->first_line, "%s", line);
    if (why)
        return why;
    size_t pl = sizeof listen_prefix - 1;
    char *end = NULL;
    long port = 0;
    if (strncmp(line, listen_prefix, pl) == 0) {
        errno = 0;
        port = strtol(line + pl, &end, 10);
    }
    if (!end || end == line + pl || *end != 0 || port <= 0 || port > 65535)
        return "unexpected first stdout line";
    s->port = (int)port;
    return NULL;
}

/* Starts the server (see itest_server_start) as `o` says. */
static struct itest_server server_start_opts(const struct start_opts *o)
{
    struct itest_server s;
    memset(&s, 0, sizeof s);
    s.stdout_fd = -1;
    s.exit_status = ITEST_EXIT_ERROR;

    const char *argv[64 + WRAPPER_MAX_ARGS];
    if (build_argv(argv, sizeof argv / sizeof argv[0], o->extra_args) == 0)
        return s;
    const char *show = getenv("ITEST_SERVER_LOG");
    bool pass_stderr = (show && strcmp(show, "1") == 0) || o->stderr_path;

    int log_fd = -1;
    if (!pass_stderr) {
        snprintf(s.log_path, sizeof s.log_path, "/tmp/itest-server-XXXXXX");
        log_fd = mkstemp(s.log_path);
        if (log_fd < 0) {
            itest_say("mkstemp: %s", strerror(errno));
            s.log_path[0] = 0;
        }
    }
    int pfd[2] = {-1, -1};
    pid_t parent = getpid();
    pid_t pid = -1;
    if (pipe2(pfd, O_CLOEXEC) != 0)
        itest_say("pipe: %s", strerror(errno));
    else if ((pid = fork()) < 0)
        itest_say("fork: %s", strerror(errno));
    else if (pid == 0)
        child_exec(argv, o, pfd[1], log_fd, parent);
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (log_fd >= 0)
        close(log_fd);
    if (pid < 0) {
        if (pfd[0] >= 0)
            close(pfd[0]);
        if (log_fd >= 0)
            unlink(s.log_path);
        return s;
    }
    s.pid = pid;
    s.stdout_fd = pfd[0];
    registry_add(pid, s.log_path);

    const char *why = read_listening_line(&s);
    if (why) {
        itest_say("server start failed: %s (got \"%s\")", why, s.first_line);
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

static struct itest_server server_start(const char *const *extra_args, unsigned long nofile,
                                        unsigned long fsize, const char *const *env,
                                        const char *stderr_path)
{
    struct start_opts o = {extra_args, nofile, fsize, env, stderr_path};
    return server_start_opts(&o);
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
            itest_say("server printed more on stdout: \"%s\"", s->stdout_tail);
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
            itest_say("waitpid(%d): %s", (int)pid, strerror(errno));
            result = ITEST_EXIT_ERROR;
            break;
        }
        if (itest_now_ms() >= deadline) {
            itest_say("server %d did not exit within %d ms of signal %d: SIGKILL", (int)pid,
                      timeout_ms, sig);
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
        itest_say("server %d ended with status %d after signal %d", (int)pid, result, sig);
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
        itest_say("server %d exited on its own with status %d", (int)s->pid, s->exit_status);
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
        itest_say("teardown: server exit status %d", status);
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
