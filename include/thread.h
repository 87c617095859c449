/*
 * thread: how the server starts a helper thread (journal compaction and
 * syncs, SIGHUP reloads).
 *
 * Signals belong to the event loop, which reads them from a signalfd. A
 * thread inherits the signal mask it is created with, and one that could
 * take SIGTERM before the loop blocks it would die of it, process and all;
 * so every helper thread starts with every signal blocked, whenever it is
 * started.
 */
#ifndef SSE_THREAD_H
#define SSE_THREAD_H

#include <pthread.h>

/* pthread_create with every signal blocked in the new thread; returns 0 or
 * an error number, as pthread_create does. */
int thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

#endif
