/*
 * test_journal_compact: retention with a keep set. Retired segments are
 * merged by the compaction thread into the oldest one, keeping exactly the
 * records the keep set wants, in id order; the keep set itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "journal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_keep_set(void **state)
{
    (void)state;
    struct journal_keep *k = journal_keep_new(3);
    assert_non_null(k);
    assert_int_equal(journal_keep_add(k, "a", 1, 10), 0);
    assert_int_equal(journal_keep_add(k, "", 0, 5), 0);
    assert_int_equal(journal_keep_add(k, "a", 1, 7), 0); /* the lower id wins */
    assert_int_equal(journal_keep_add(k, "a", 1, 9), 0);
    assert_false(journal_keep_wants(k, "a", 1, 6));
    assert_true(journal_keep_wants(k, "a", 1, 7));
    assert_true(journal_keep_wants(k, "", 0, 5));
    assert_false(journal_keep_wants(k, "", 0, 4));
    assert_false(journal_keep_wants(k, "b", 1, 100)); /* not in the set */
    assert_false(journal_keep_wants(k, "ab", 2, 100));
    assert_false(journal_keep_wants(NULL, "a", 1, 100));
    /* Sized for 3 rooms (at most half full): many more are refused, never
     * silently dropped. */
    char name[16];
    int refused = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "r%d", i);
        refused += journal_keep_add(k, name, strlen(name), 1) != 0;
    }
    assert_true(refused > 0);
    journal_keep_free(k);
}

/* The keep set a test hands the journal: room "quiet" wants everything,
 * room "busy" only ids from busy_from on. */
struct keeper {
    uint64_t busy_from;
    unsigned calls;
};

static struct journal_keep *make_keep(void *arg)
{
    struct keeper *kp = arg;
    kp->calls++;
    struct journal_keep *k = journal_keep_new(2);
    assert_non_null(k);
    assert_int_equal(journal_keep_add(k, "quiet", 5, 0), 0);
    assert_int_equal(journal_keep_add(k, "busy", 4, kp->busy_from), 0);
    return k;
}

struct replayed {
    uint64_t ids[4096];
    char room[4096];
    size_t n;
};

static int capture(void *arg, const struct journal_record *rec)
{
    struct replayed *r = arg;
    assert_true(r->n < 4096);
    r->ids[r->n] = rec->id;
    r->room[r->n] = rec->room_len ? rec->room[0] : '-';
    r->n++;
    return 0;
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void append(struct journal *j, uint64_t id, const char *room)
{
    char data[64];
    int n = snprintf(data, sizeof data, "{\"n\":%llu,\"pad\":\"xxxxxxxxxxxxxxxx\"}",
                     (unsigned long long)id);
    struct journal_record rec = {
        .id = id, .room = room, .room_len = strlen(room), .data = data, .data_len = (size_t)n};
    assert_int_equal(journal_append(j, &rec), 0);
}

static void test_compaction_keeps_wanted(void **state)
{
    (void)state;
    char dir[] = "/tmp/jcompact-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct keeper kp = {.busy_from = 0};
    struct journal_options o = {.dir = dir,
                                .segment_bytes = 1024,
                                .retain_records = 20,
                                .keep = make_keep,
                                .keep_arg = &kp};
    struct journal *j = journal_open(&o, NULL, NULL, NULL, NULL, 0);
    assert_non_null(j);
    /* Ids 1..3 in "quiet", then 4..600 in "busy"; "busy" wants its last 50. */
    enum { QUIET = 3, LAST = 600, BUSY_KEPT = 50 };
    kp.busy_from = LAST - BUSY_KEPT + 1;
    for (uint64_t id = 1; id <= LAST; id++) {
        append(j, id, id <= QUIET ? "quiet" : "busy");
        journal_poll(j);
    }
    journal_close(j); /* waits for a compaction in progress */
    assert_true(kp.calls > 0);
    /* Bounded: the compacted base plus the segments retention keeps. */
    size_t files = count_files(dir);
    assert_true(files >= 2 && files < 20);

    struct replayed r = {.n = 0};
    struct journal_stats st;
    j = journal_open(&o, capture, &r, &st, NULL, 0);
    assert_non_null(j);
    journal_close(j);
    assert_int_equal(st.corrupt, 0);
    /* The quiet room's records survived every retirement, oldest first. */
    assert_true(r.n > QUIET + BUSY_KEPT - 1);
    for (size_t i = 0; i < QUIET; i++) {
        assert_int_equal(r.ids[i], i + 1);
        assert_int_equal(r.room[i], 'q');
    }
    /* Ids increase; every busy record the keep set wanted is there. */
    for (size_t i = 1; i < r.n; i++) {
        assert_true(r.ids[i] > r.ids[i - 1]);
    }
    assert_int_equal(r.ids[r.n - 1], LAST);
    size_t wanted = 0;
    for (size_t i = 0; i < r.n; i++) {
        wanted += r.room[i] == 'b' && r.ids[i] >= kp.busy_from;
    }
    assert_int_equal(wanted, BUSY_KEPT);
    /* What was neither wanted nor recent went: far fewer than all. */
    assert_true(r.n < LAST / 2);

    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_set),
        cmocka_unit_test(test_compaction_keeps_wanted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
