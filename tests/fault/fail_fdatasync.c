/*
 * fail_fdatasync: an LD_PRELOAD shim that makes one fdatasync(2) of the
 * journal fail with EIO, so the tests can watch what the server does after a
 * failed sync (tests/integration/test_loss.c).
 *
 *     LD_PRELOAD=build/tests/fault/fail_fdatasync.so SSE_FAIL_FDATASYNC=N sse-server ...
 *
 * The Nth call (counting from 1) on a journal segment fails with EIO and
 * syncs nothing; every other call is passed to the kernel. Only calls on
 * segment files (names ending in ".log") are counted, so that a sync of any
 * other file can never shift which one fails. The count is shared by all
 * threads of the process. Without SSE_FAIL_FDATASYNC the shim changes nothing.
 *
 * The shim is built without sanitizers (the Makefile builds it the same way
 * in every build directory). An AddressSanitizer server refuses to start
 * when another library comes before the ASan runtime in the initial library
 * list ("ASan runtime does not come first"), which LD_PRELOAD of the shim
 * alone causes. What works: ASAN_OPTIONS=verify_asan_link_order=0 in the
 * server's environment (the test sets it; a server without ASan ignores
 * it). ASan does not intercept fdatasync, so the shim hides nothing from it.
 * Putting the ASan runtime first instead (LD_PRELOAD="libasan.so.N shim.so")
 * works too, but needs the runtime's exact path.
 *
 * The real call is made with syscall(2), so the shim needs neither dlsym nor
 * -ldl.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int fdatasync(int fd);

static bool is_segment(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path);
    return n > 4 && memcmp(path + n - 4, ".log", 4) == 0;
}

int fdatasync(int fd)
{
    static atomic_ulong calls;
    const char *nth = getenv("SSE_FAIL_FDATASYNC");
    if (nth && is_segment(fd) && atomic_fetch_add(&calls, 1) + 1 == strtoul(nth, NULL, 10)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}
