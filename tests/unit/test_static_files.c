/*
 * Unit tests for the in-memory static file table (src/static_files.c).
 *
 * Each test builds a scratch directory tree with mkdtemp, next to a second
 * "outside" tree that symbolic links point into: nothing from outside, no
 * dot-file and no link may ever be found.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "static_files.h"

#define S(lit) (lit), (sizeof(lit) - 1)

#define TYPE_HTML "text/html; charset=utf-8"
#define TYPE_CSS  "text/css; charset=utf-8"
#define TYPE_JS   "text/javascript; charset=utf-8"
#define TYPE_TXT  "text/plain; charset=utf-8"
#define TYPE_BIN  "application/octet-stream"

/* ---------------------------------------------------------------- helpers */

struct tree {
    char root[64];    /* the static directory */
    char outside[64]; /* a directory beside it */
};

static void join(char *out, size_t cap, const char *dir, const char *rel)
{
    int n = snprintf(out, cap, "%s/%s", dir, rel);
    assert_true(n > 0 && (size_t)n < cap);
}

static void put_file(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[PATH_MAX];
    join(path, sizeof path, dir, rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) {
        assert_int_equal(fwrite(data, 1, len, f), len);
    }
    assert_int_equal(fclose(f), 0);
}

static void put_str(const char *dir, const char *rel, const char *s)
{
    put_file(dir, rel, s, strlen(s));
}

static void put_dir(const char *dir, const char *rel)
{
    char path[PATH_MAX];
    join(path, sizeof path, dir, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void put_link(const char *dir, const char *rel, const char *target)
{
    char path[PATH_MAX];
    join(path, sizeof path, dir, rel);
    assert_int_equal(symlink(target, path), 0);
}

static void make_tmpdir(char *out, size_t cap)
{
    int n = snprintf(out, cap, "/tmp/sse-static-test-XXXXXX");
    assert_true(n > 0 && (size_t)n < cap);
    assert_non_null(mkdtemp(out));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    if (dir[0]) {
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* The standard tree of these tests. */
static void make_tree(struct tree *t)
{
    make_tmpdir(t->root, sizeof t->root);
    make_tmpdir(t->outside, sizeof t->outside);

    put_str(t->outside, "secret.txt", "outside secret");
    put_dir(t->outside, "d");
    put_str(t->outside, "d/x.txt", "outside x");
    put_str(t->outside, "d/index.html", "outside index");

    put_str(t->root, "index.html", "<h1>root</h1>");
    put_str(t->root, "a.css", "body{}");
    put_dir(t->root, "sub");
    put_str(t->root, "sub/b.js", "let b = 1;");
    put_str(t->root, "sub/index.html", "<h1>sub</h1>");
    put_str(t->root, "with space.txt", "space");
    put_str(t->root, "100%.txt", "percent");
    put_str(t->root, "a+b.txt", "plus");
    put_file(t->root, "empty.txt", "", 0);
    put_str(t->root, "IMG.PNG", "\x89PNG");
    put_file(t->root, "data.bin", "\0\1\2\0", 4);
    put_dir(t->root, "deep");
    put_dir(t->root, "deep/a");
    put_dir(t->root, "deep/a/b");
    put_dir(t->root, "deep/a/b/c");
    put_str(t->root, "deep/a/b/c/leaf.json", "{}");
    put_dir(t->root, "emptydir");

    /* Never served: */
    put_str(t->root, ".secret", "dot-file");
    put_str(t->root, "sub/.hidden.js", "dot-file in a subdirectory");
    put_dir(t->root, ".git");
    put_str(t->root, ".git/config", "dot-directory");
    char target[PATH_MAX];
    join(target, sizeof target, t->outside, "secret.txt");
    put_link(t->root, "link.txt", target);
    join(target, sizeof target, t->outside, "d");
    put_link(t->root, "linkdir", target);
    put_link(t->root, "inside-link.html", "index.html");
    put_link(t->root, "dangling.txt", "/nonexistent/sse-static-test");
}

#define TREE_FILES 11 /* regular files make_tree puts where they may be served */

static void free_tree(struct tree *t)
{
    rm_tree(t->root);
    rm_tree(t->outside);
}

static struct static_files *load_ok(const char *dir)
{
    char err[256] = "";
    struct static_files *files = static_files_load(dir, err, sizeof err);
    if (!files) {
        fail_msg("static_files_load(%s): %s", dir, err);
    }
    return files;
}

static const struct static_file *find(const struct static_files *f, const char *path)
{
    return static_files_find(f, path, strlen(path));
}

static void assert_found(const struct static_files *files, const char *req, const char *path,
                         const char *content, const char *type)
{
    const struct static_file *f = find(files, req);
    if (!f) {
        fail_msg("%s: not found", req);
    }
    assert_string_equal(f->path, path);
    assert_int_equal(f->len, strlen(content));
    if (f->len) {
        assert_memory_equal(f->data, content, f->len);
    }
    if (type) {
        assert_string_equal(f->type, type);
    }
}

static void assert_not_found(const struct static_files *files, const char *req, size_t len)
{
    const struct static_file *f = static_files_find(files, req, len);
    if (f) {
        fail_msg("'%.*s' found %s", (int)len, req, f->path);
    }
}

/* ---------------------------------------------------------------- tests */

static void test_load_and_find(void **state)
{
    (void)state;
    struct tree t;
    make_tree(&t);
    struct static_files *files = load_ok(t.root);
    assert_int_equal(static_files_count(files), TREE_FILES);

    assert_found(files, "/", "/index.html", "<h1>root</h1>", TYPE_HTML);
    assert_found(files, "/index.html", "/index.html", "<h1>root</h1>", TYPE_HTML);
    assert_found(files, "/a.css", "/a.css", "body{}", TYPE_CSS);
    assert_found(files, "/sub/", "/sub/index.html", "<h1>sub</h1>", TYPE_HTML);
    assert_found(files, "/sub/index.html", "/sub/index.html", "<h1>sub</h1>", TYPE_HTML);
    assert_found(files, "/sub/b.js", "/sub/b.js", "let b = 1;", TYPE_JS);
    assert_found(files, "/deep/a/b/c/leaf.json", "/deep/a/b/c/leaf.json", "{}", "application/json");
    assert_found(files, "/empty.txt", "/empty.txt", "", TYPE_TXT);
    assert_found(files, "/IMG.PNG", "/IMG.PNG", "\x89PNG", "image/png");

    const struct static_file *bin = find(files, "/data.bin");
    assert_non_null(bin);
    assert_int_equal(bin->len, 4);
    assert_memory_equal(bin->data, "\0\1\2\0", 4);
    assert_string_equal(bin->type, TYPE_BIN);

    /* The path is matched after percent-decoding. */
    assert_found(files, "/sub%2fb.js", "/sub/b.js", "let b = 1;", TYPE_JS);
    assert_found(files, "/sub%2Fb.js", "/sub/b.js", "let b = 1;", TYPE_JS);
    assert_found(files, "/%73ub/b.js", "/sub/b.js", "let b = 1;", TYPE_JS);
    assert_found(files, "/sub%2F", "/sub/index.html", "<h1>sub</h1>", TYPE_HTML);
    assert_found(files, "/with%20space.txt", "/with space.txt", "space", TYPE_TXT);
    assert_found(files, "/100%25.txt", "/100%.txt", "percent", TYPE_TXT);
    assert_found(files, "/a+b.txt", "/a+b.txt", "plus", TYPE_TXT); /* '+' is not a space */
    assert_not_found(files, S("/a%20b.txt"));

    /* Only len bytes of the path count. */
    const struct static_file *css = static_files_find(files, "/a.cssXYZ", 6);
    assert_non_null(css);
    assert_string_equal(css->path, "/a.css");
    assert_not_found(files, "/a.css", 5);

    static_files_unref(files);
    free_tree(&t);
}

static void test_find_rejects(void **state)
{
    (void)state;
    struct tree t;
    make_tree(&t);
    struct static_files *files = load_ok(t.root);

    static const char *const bad[] = {
        /* dot-files and dot-directories */
        "/.secret", "/%2esecret", "/%2Esecret", "/sub/.hidden.js", "/.git/config",
        /* symbolic links: to a file outside, a directory outside, a file
         * inside, and to nothing */
        "/link.txt", "/linkdir/x.txt", "/linkdir/", "/linkdir", "/inside-link.html",
        "/dangling.txt",
        /* traversal, plain and encoded */
        "/../x", "/%2e%2e/x", "/%2E%2E/x", "/..%2fx", "/sub/../index.html",
        "/sub/%2e%2e/index.html", "/./index.html", "/%2e/index.html", "/sub/./b.js",
        "/../../../../etc/passwd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        /* NUL bytes */
        "/x%00", "/index.html%00", "/index.html%00.css", "/%00",
        /* malformed */
        "noslash", "index.html", "sub/b.js", "%2findex.html", "/%", "/%z1", "/%2", "/index.html%",
        /* not files */
        "/sub", "/deep/a", "/emptydir/", "/emptydir", "/deep/", "//index.html", "/sub//b.js",
        "/missing.html", "/INDEX.HTML", "/index.html/", "/a.css?x=1", "/index.html#top",
        /* only the outside tree has these */
        "/secret.txt", "/d/x.txt", "/x.txt"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_not_found(files, bad[i], strlen(bad[i]));
    }
    assert_not_found(files, "", 0);
    assert_not_found(files, "/index.html\0", 12); /* raw NUL */
    assert_not_found(files, "\0/index.html", 12);

    /* Overlong paths. */
    char *longp = malloc(4096);
    assert_non_null(longp);
    longp[0] = '/';
    memset(longp + 1, 'a', 4094);
    longp[4095] = '\0';
    assert_not_found(files, longp, 4095);
    assert_not_found(files, longp, 1023);
    assert_not_found(files, longp, 1024);
    memcpy(longp, "/index.html", 11);
    memset(longp + 11, '\0', 1);
    assert_not_found(files, longp, 2000);
    free(longp);

    /* A long run of escapes that decodes to something short still works. */
    char enc[1000];
    size_t n = 0;
    enc[n++] = '/';
    const char *name = "index.html";
    for (const char *p = name; *p; p++) {
        n += (size_t)snprintf(enc + n, sizeof enc - n, "%%%02X", (unsigned char)*p);
    }
    const struct static_file *f = static_files_find(files, enc, n);
    assert_non_null(f);
    assert_string_equal(f->path, "/index.html");

    static_files_unref(files);
    free_tree(&t);
}

static void test_nothing_outside_loaded(void **state)
{
    (void)state;
    /* Whatever is asked, no loaded file holds the outside tree's bytes. */
    struct tree t;
    make_tree(&t);
    struct static_files *files = load_ok(t.root);
    static const char *const all[] = {
        "/index.html",          "/a.css",   "/sub/b.js",  "/sub/index.html", "/with space.txt",
        "/100%25.txt",          "/a+b.txt", "/empty.txt", "/IMG.PNG",        "/data.bin",
        "/deep/a/b/c/leaf.json"};
    size_t found = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const struct static_file *f = find(files, all[i]);
        assert_non_null(f);
        found++;
        assert_null(memmem(f->data, f->len, S("outside")));
        assert_null(memmem(f->data, f->len, S("dot-")));
        assert_int_equal(f->path[0], '/');
        assert_null(strstr(f->path, "/."));
    }
    assert_int_equal(found, static_files_count(files));
    static_files_unref(files);
    free_tree(&t);
}

static void test_content_types(void **state)
{
    (void)state;
    static const struct {
        const char *name, *type;
    } v[] = {
        {"index.html", TYPE_HTML},
        {"old.htm", TYPE_HTML},
        {"a.css", TYPE_CSS},
        {"app.js", TYPE_JS},
        {"mod.mjs", TYPE_JS},
        {"data.json", "application/json"},
        {"app.js.map", "application/json"},
        {"notes.txt", TYPE_TXT},
        {"logo.svg", "image/svg+xml"},
        {"a.png", "image/png"},
        {"a.jpg", "image/jpeg"},
        {"a.jpeg", "image/jpeg"},
        {"a.gif", "image/gif"},
        {"a.webp", "image/webp"},
        {"favicon.ico", "image/x-icon"},
        {"f.woff2", "font/woff2"},
        {"f.woff", "font/woff"},
        {"m.wasm", "application/wasm"},
        {"site.webmanifest", "application/manifest+json"},
        /* case-insensitive extensions */
        {"INDEX.HTML", TYPE_HTML},
        {"Photo.JpG", "image/jpeg"},
        /* the last extension counts */
        {"archive.tar.gz", TYPE_BIN},
        {"page.html.bak", TYPE_BIN},
        {"style.min.css", TYPE_CSS},
        /* paths: only the final component's extension */
        {"/sub/b.js", TYPE_JS},
        {"/dir.html/file", TYPE_BIN},
        {"/v1.2/readme", TYPE_BIN},
        /* no or empty extension */
        {"Makefile", TYPE_BIN},
        {"file.", TYPE_BIN},
        {"", TYPE_BIN},
        {".", TYPE_BIN},
        {"html", TYPE_BIN},
        {"a.xhtml", TYPE_BIN},
        {"a.htmlx", TYPE_BIN},
        {"a.js2", TYPE_BIN},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const char *got = static_content_type(v[i].name);
        assert_non_null(got);
        if (strcmp(got, v[i].type) != 0) {
            fail_msg("static_content_type(\"%s\") = \"%s\", want \"%s\"", v[i].name, got,
                     v[i].type);
        }
    }
}

static void assert_etag_format(const char *etag)
{
    size_t n = strlen(etag);
    assert_true(n >= 3 && n < 20);
    assert_int_equal(etag[0], '"');
    assert_int_equal(etag[n - 1], '"');
    for (size_t i = 1; i + 1 < n; i++) {
        /* etagc: no quotes, spaces or controls inside */
        assert_true(etag[i] > 0x20 && etag[i] != '"' && etag[i] != 0x7f);
    }
}

static void test_etag(void **state)
{
    (void)state;
    char root[64];
    make_tmpdir(root, sizeof root);
    put_str(root, "a.txt", "same content");
    put_str(root, "b.txt", "same content");
    put_str(root, "c.txt", "other content");
    put_file(root, "d.txt", "", 0);
    put_str(root, "e.txt", "same contenT");
    struct static_files *files = load_ok(root);
    const struct static_file *a = find(files, "/a.txt"), *b = find(files, "/b.txt"),
                             *c = find(files, "/c.txt"), *d = find(files, "/d.txt"),
                             *e = find(files, "/e.txt");
    assert_true(a && b && c && d && e);
    assert_etag_format(a->etag);
    assert_etag_format(c->etag);
    assert_etag_format(d->etag);
    assert_string_equal(a->etag, b->etag); /* a hash of the content */
    assert_string_not_equal(a->etag, c->etag);
    assert_string_not_equal(a->etag, d->etag);
    assert_string_not_equal(a->etag, e->etag);
    char old[20];
    snprintf(old, sizeof old, "%s", a->etag);

    /* Changing the file changes the ETag of the reloaded table; the old
     * table is untouched until released. */
    put_str(root, "a.txt", "new content");
    struct static_files *files2 = load_ok(root);
    const struct static_file *a2 = find(files2, "/a.txt");
    assert_non_null(a2);
    assert_memory_equal(a2->data, "new content", a2->len);
    assert_string_not_equal(a2->etag, old);
    assert_etag_format(a2->etag);
    assert_string_equal(a->etag, old);
    assert_memory_equal(a->data, "same content", a->len);
    /* Same bytes again: same ETag as before. */
    put_str(root, "a.txt", "same content");
    struct static_files *files3 = load_ok(root);
    assert_string_equal(find(files3, "/a.txt")->etag, old);

    static_files_unref(files);
    static_files_unref(files2);
    static_files_unref(files3);
    rm_tree(root);
}

static void test_missing_dir(void **state)
{
    (void)state;
    char err[256] = "";
    struct static_files *files =
        static_files_load("/nonexistent/sse-static-test/static", err, sizeof err);
    assert_non_null(files);
    assert_int_equal(static_files_count(files), 0);
    assert_null(find(files, "/"));
    assert_null(find(files, "/index.html"));
    static_files_unref(files);

    /* An empty directory: an empty table too. */
    char root[64];
    make_tmpdir(root, sizeof root);
    files = load_ok(root);
    assert_int_equal(static_files_count(files), 0);
    assert_null(find(files, "/"));
    static_files_unref(files);
    rm_tree(root);
}

static void test_not_a_directory(void **state)
{
    (void)state;
    char root[64], path[PATH_MAX];
    make_tmpdir(root, sizeof root);
    put_str(root, "file", "x");
    join(path, sizeof path, root, "file");
    char err[256] = "";
    assert_null(static_files_load(path, err, sizeof err));
    assert_true(strlen(err) > 0);
    rm_tree(root);
}

static void test_refcount(void **state)
{
    (void)state;
    struct tree t;
    make_tree(&t);
    struct static_files *files = load_ok(t.root);
    const struct static_file *f = find(files, "/a.css");
    assert_non_null(f);
    assert_ptr_equal(static_files_ref(files), files);
    assert_ptr_equal(static_files_ref(files), files);
    static_files_unref(files);
    static_files_unref(files);
    /* Still alive with the last reference (ASan would flag a use after free). */
    assert_memory_equal(f->data, "body{}", 6);
    assert_int_equal(static_files_count(files), TREE_FILES);
    static_files_unref(files);
    static_files_unref(NULL);
    free_tree(&t);
}

static void test_many_files(void **state)
{
    (void)state;
    /* Enough files (with names in no particular order) to exercise the
     * sorted lookup; every one is found with its own bytes. */
    char root[64];
    make_tmpdir(root, sizeof root);
    put_dir(root, "m");
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char name[64], body[64];
        snprintf(name, sizeof name, "%s/f%d.txt", (i % 3) ? "m" : ".", (i * 7919) % 1000);
        snprintf(body, sizeof body, "body of %d", (i * 7919) % 1000);
        put_str(root, name, body);
    }
    struct static_files *files = load_ok(root);
    assert_int_equal(static_files_count(files), N);
    for (int i = 0; i < N; i++) {
        char req[64], body[64];
        snprintf(req, sizeof req, "/%sf%d.txt", (i % 3) ? "m/" : "", (i * 7919) % 1000);
        snprintf(body, sizeof body, "body of %d", (i * 7919) % 1000);
        const struct static_file *f = find(files, req);
        if (!f) {
            fail_msg("%s not found", req);
        }
        assert_int_equal(f->len, strlen(body));
        assert_memory_equal(f->data, body, f->len);
        /* Neighbours of existing names are not found. */
        char miss[72];
        snprintf(miss, sizeof miss, "%sx", req);
        assert_null(find(files, miss));
    }
    static_files_unref(files);
    rm_tree(root);
}

static void test_large_file(void **state)
{
    (void)state;
    char root[64];
    make_tmpdir(root, sizeof root);
    size_t len = 3u << 20;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++) {
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    }
    put_file(root, "big.bin", data, len);
    struct static_files *files = load_ok(root);
    const struct static_file *f = find(files, "/big.bin");
    assert_non_null(f);
    assert_int_equal(f->len, len);
    assert_memory_equal(f->data, data, len);
    static_files_unref(files);
    free(data);
    rm_tree(root);
}

static void test_too_large(void **state)
{
    (void)state;
    /* Past STATIC_MAX_BYTES in all the load fails with a message rather
     * than serving a partial directory. (Sparse files: nothing is read.) */
    char root[64], path[PATH_MAX];
    make_tmpdir(root, sizeof root);
    put_str(root, "small.txt", "small");
    join(path, sizeof path, root, "huge.bin");
    put_file(root, "huge.bin", "", 0);
    assert_int_equal(truncate(path, (off_t)STATIC_MAX_BYTES), 0);
    char err[256] = "";
    struct static_files *files = static_files_load(root, err, sizeof err);
    assert_null(files);
    assert_non_null(strstr(err, "too large"));

    /* Exactly at the limit alone is fine. */
    join(path, sizeof path, root, "small.txt");
    assert_int_equal(unlink(path), 0);
    join(path, sizeof path, root, "huge.bin");
    files = load_ok(root);
    assert_int_equal(static_files_count(files), 1);
    const struct static_file *f = find(files, "/huge.bin");
    assert_non_null(f);
    assert_int_equal(f->len, STATIC_MAX_BYTES);
    static_files_unref(files);
    rm_tree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_and_find),
        cmocka_unit_test(test_find_rejects),
        cmocka_unit_test(test_nothing_outside_loaded),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_etag),
        cmocka_unit_test(test_missing_dir),
        cmocka_unit_test(test_not_a_directory),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_many_files),
        cmocka_unit_test(test_large_file),
        cmocka_unit_test(test_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
