/*
 * config_capture: runs config_parse with stdout and stderr captured, for
 * the config tests (test_config.c, test_config_threads.c).
 */
#ifndef SSE_TEST_CONFIG_CAPTURE_H
#define SSE_TEST_CONFIG_CAPTURE_H

#include "config.h"

#include <stdio.h>
#include <unistd.h>

static size_t capture_read_all(FILE *f, char *out, size_t cap)
{
    rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    return n;
}

/* config_parse(cfg, argc, argv); what it printed, stdout then stderr, is
 * left NUL-terminated in output[0..cap). */
static enum config_result config_parse_captured(struct config *cfg, int argc, char **argv,
                                                char *output, size_t cap)
{
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
    size_t n = capture_read_all(out, output, cap);
    capture_read_all(err, output + n, cap - n);
    fclose(out);
    fclose(err);
    return r;
}

#endif
