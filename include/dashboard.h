/*
 * dashboard: the operator's live page (GET /dashboard), built into the
 * binary. Its sources are in src/dashboard/; the build turns them into a table
 * (tools/embed, build/gen/dashboard_files.c) so the page is served whatever
 * --static points at, and it fetches nothing from anywhere else: its
 * figures come from the server's own event stream, GET /stats?stream=1.
 */
#ifndef SSE_DASHBOARD_H
#define SSE_DASHBOARD_H

#include <stddef.h>

/* One embedded file; everything is static, nothing is owned. */
struct embedded_file {
    const char *path; /* URL path, e.g. "/dashboard" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

/* Defined by the generated file. */
extern const struct embedded_file dashboard_files[];
extern const size_t dashboard_files_count;

/* The embedded file served at path[0..len), or NULL. */
const struct embedded_file *dashboard_find(const char *path, size_t len);

/* The Content-Security-Policy of the page: its own scripts, styles and
 * stream only, so a page that tried to load anything from elsewhere would
 * be stopped by the browser. */
#define DASHBOARD_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#endif
