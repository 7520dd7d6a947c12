/* Counters that roma's threads bump and a test program's main thread awaits, under the one
 * mutex and condition variable that the program's other shared state uses too. Header-only
 * (and all static): each test program is one source file that includes it once. */
#ifndef ROMA_TEST_COUNTER_H
#define ROMA_TEST_COUNTER_H

#include <pthread.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

/* Adds one to `*counter` and wakes every waiter. */
static inline void counter_bump(long *counter) {
  pthread_mutex_lock(&mu);
  (*counter)++;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
}

/* Waits until `*counter` is at least `n`. */
static inline void counter_await(const long *counter, long n) {
  pthread_mutex_lock(&mu);
  while (*counter < n) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

#endif /* ROMA_TEST_COUNTER_H */
