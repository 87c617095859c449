/*
 * Unit tests for --threads (src/config.c): parsing the flag and SSE_THREADS,
 * the values refused, and config_threads, the count the server runs: the
 * number given, else the CPUs of the process's affinity mask, capped.
 *
 * The affinity test narrows the mask in a forked child, so the test process
 * itself (and every test after it) keeps the CPUs it had, and the answer does
 * not depend on how many CPUs the machine has or how busy they are.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

static char output[16384]; /* what the last parse printed, stdout then stderr */

static size_t read_all(FILE *f, char *out, size_t cap)
{
    rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    return n;
}

/* config_parse on "sse-server" followed by up to two arguments (NULL ends
 * them early), with stdout and stderr captured into `output`. */
static enum config_result parse2(struct config *cfg, const char *a, const char *b)
{
    char *argv[] = {(char *)"sse-server", (char *)a, (char *)b, NULL};
    int argc = !a ? 1 : !b ? 2 : 3;
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(STDOUT_FILENO), saved_err = dup(STDERR_FILENO);
    assert_true(saved_out >= 0 && saved_err >= 0);
    dup2(fileno(out), STDOUT_FILENO);
    dup2(fileno(err), STDERR_FILENO);

    enum config_result r = config_parse(cfg, argc, argv);

    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    size_t n = read_all(out, output, sizeof output);
    read_all(err, output + n, sizeof output - n);
    fclose(out);
    fclose(err);
    return r;
}

static unsigned threads_of(const char *a, const char *b)
{
    struct config cfg;
    enum config_result r = parse2(&cfg, a, b);
    if (r != CONFIG_RUN) {
        fail_msg("config_parse(%s %s) = %d: %s", a ? a : "", b ? b : "", (int)r, output);
    }
    return cfg.threads;
}

/* A refused value: an error naming where it came from and what is allowed. */
static void expect_refused(const char *a, const char *b, const char *source)
{
    struct config cfg;
    if (parse2(&cfg, a, b) != CONFIG_EXIT_ERROR) {
        fail_msg("config_parse(%s %s) accepted it", a ? a : "", b ? b : "");
    }
    if (!strstr(output, "sse-server: invalid value") || !strstr(output, source) ||
        !strstr(output, "(expected auto or 1..64)")) {
        fail_msg("unclear message for %s %s: %s", a ? a : "", b ? b : "", output);
    }
}

extern char **environ;

/* Removes every SSE_* variable: one from the shell running the tests must
 * not decide a parse here. */
static int setup(void **state)
{
    (void)state;
    for (char **e = environ; *e;) {
        size_t n = strcspn(*e, "=");
        if (strncmp(*e, "SSE_", 4) == 0 && n < 256) {
            char name[256];
            memcpy(name, *e, n);
            name[n] = '\0';
            unsetenv(name); /* environ changes: look again from the start */
            e = environ;
        } else {
            e++;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- parsing */

static void test_parse(void **state)
{
    (void)state;
    assert_int_equal(threads_of(NULL, NULL), 0); /* the default is auto */
    assert_int_equal(threads_of("--threads", "auto"), 0);
    assert_int_equal(threads_of("--threads=auto", NULL), 0);
    assert_int_equal(threads_of("--threads", "1"), 1);
    assert_int_equal(threads_of("--threads=4", NULL), 4);
    assert_int_equal(threads_of("--threads", "64"), 64);

    static const char *const bad[] = {"0",
                                      "65",
                                      "1000",
                                      "-1",
                                      "",
                                      "x",
                                      "4x",
                                      "1k",
                                      "Auto",
                                      "auto4",
                                      " 4",
                                      "4 ",
                                      "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_refused("--threads", bad[i], "--threads");
    }
    struct config cfg;
    assert_int_equal(parse2(&cfg, "--threads", NULL), CONFIG_EXIT_ERROR);
    assert_non_null(strstr(output, "needs a value"));
}

static void test_env(void **state)
{
    (void)state;
    setenv("SSE_THREADS", "8", 1);
    assert_int_equal(threads_of(NULL, NULL), 8);
    /* The flag wins over the variable, auto included. */
    assert_int_equal(threads_of("--threads", "2"), 2);
    assert_int_equal(threads_of("--threads", "auto"), 0);
    setenv("SSE_THREADS", "auto", 1);
    assert_int_equal(threads_of(NULL, NULL), 0);
    setenv("SSE_THREADS", "0", 1);
    expect_refused(NULL, NULL, "SSE_THREADS");
    setenv("SSE_THREADS", "many", 1);
    expect_refused(NULL, NULL, "SSE_THREADS");
    unsetenv("SSE_THREADS");
}

static void test_help(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(parse2(&cfg, "--help", NULL), CONFIG_EXIT_OK);
    const char *line = strstr(output, "\n  --threads N|auto ");
    assert_non_null(line);
    const char *eol = strchr(line + 1, '\n');
    const char *dflt = strstr(line, "(default auto) [SSE_THREADS]");
    assert_true(dflt && eol && dflt < eol);
}

/* ---------------------------------------------------------------- the count */

/* What auto must give, read here the same way the kernel reports it. */
static unsigned mask_count(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    int n = CPU_COUNT(&set);
    assert_true(n >= 1);
    return n > CONFIG_THREADS_MAX ? CONFIG_THREADS_MAX : (unsigned)n;
}

static void test_count(void **state)
{
    (void)state;
    struct config cfg;
    assert_int_equal(parse2(&cfg, NULL, NULL), CONFIG_RUN);
    unsigned n = config_threads(&cfg);
    assert_int_equal(n, mask_count());
    assert_true(n >= 1 && n <= CONFIG_THREADS_MAX);

    /* A number given is used as it is, more than the CPUs included. */
    for (unsigned k = 1; k <= CONFIG_THREADS_MAX; k++) {
        cfg.threads = k;
        assert_int_equal(config_threads(&cfg), k);
    }
}

/*
 * In a child: pins itself to one CPU of its mask (the lowest) and exits 0
 * when config_threads answers 1 for auto and still 4 for --threads 4, else
 * with a code saying which check failed. Exit status only: cmocka's checks
 * belong to the parent.
 */
static void child_one_cpu(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        _exit(10);
    }
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &set)) {
        cpu++;
    }
    if (cpu == CPU_SETSIZE) {
        _exit(11);
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        _exit(12);
    }
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    if (config_threads(&cfg) != 1) {
        _exit(13);
    }
    cfg.threads = 4;
    _exit(config_threads(&cfg) == 4 ? 0 : 14);
}

static void test_count_follows_affinity(void **state)
{
    (void)state;
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_one_cpu();
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_msg("child pinned to one CPU: status %#x (10-12: affinity calls, 13: auto is not "
                 "1, 14: --threads 4 is not 4)",
                 (unsigned)status);
    }
    /* The parent's mask is untouched. */
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(config_threads(&cfg), mask_count());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parse, setup, setup),
        cmocka_unit_test_setup_teardown(test_env, setup, setup),
        cmocka_unit_test_setup_teardown(test_help, setup, setup),
        cmocka_unit_test_setup_teardown(test_count, setup, setup),
        cmocka_unit_test_setup_teardown(test_count_follows_affinity, setup, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
