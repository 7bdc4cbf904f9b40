/* singlefork forks a single-threaded process and refuses, without forking,
 * once a second thread runs. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "worker/singlefork.h"

static void test_forks_when_single_threaded(void **state)
{
    (void)state;
    assert_int_equal(singlefork_threads(), 1);
    pid_t pid = singlefork();
    if (pid == 0)
        _exit(7);
    assert_true(pid > 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 7);
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *hold(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock); /* waits until the test lets go */
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void test_refuses_with_a_second_thread(void **state)
{
    (void)state;
    pthread_t t;
    pthread_mutex_lock(&lock);
    assert_int_equal(pthread_create(&t, NULL, hold, NULL), 0);
    assert_int_equal(singlefork_threads(), 2);
    errno = 0;
    assert_int_equal(singlefork(), -1); /* a child here would never return */
    assert_int_equal(errno, EDEADLK);
    pthread_mutex_unlock(&lock);
    /* Joined, the thread still counts for a moment: the kernel lets its
     * joiner go before it drops it from /proc/self/task. Nothing checks the
     * count after this test (it runs last). */
    pthread_join(t, NULL);
}

/* What the check costs, next to the fork it guards (printed, not asserted). */
static void test_cost(void **state)
{
    (void)state;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(singlefork_threads(), 1);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("singlefork_threads: %.1f us a call\n",
           ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1000 / 1e3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forks_when_single_threaded),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_refuses_with_a_second_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
