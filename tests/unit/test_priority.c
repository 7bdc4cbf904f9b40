/* common/priority.c: what a child's first confinement step does to it, how the
 * worker reads a child's CPU time and demotes it, and the kernel's OOM kill
 * count. Each check runs in a forked child, so this test process keeps its
 * own priority. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/priority.h"

static int read_oom_adj(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
    FILE *f = fopen(path, "r");
    int v = -1;
    if (f && fscanf(f, "%d", &v) != 1)
        v = -1;
    if (f)
        fclose(f);
    return v;
}

/* Exit status 0 if the child's step left it at nice 10, SCHED_BATCH, OOM 1000
 * and it can lower none of them again (after giving up root, as the child
 * does). */
static void test_lower_child(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (priority_lower_child(0))
            _exit(1);
        errno = 0;
        if (getpriority(PRIO_PROCESS, 0) != PRIORITY_CHILD_NICE || errno)
            _exit(2);
        if (sched_getscheduler(0) != SCHED_BATCH)
            _exit(3);
        if (read_oom_adj(getpid()) != PRIORITY_CHILD_OOM_ADJ)
            _exit(4);
        if (geteuid() == 0 && setresuid(65534, 65534, 65534))
            _exit(5);
        if (setpriority(PRIO_PROCESS, 0, 0) == 0)
            _exit(6); /* back up: only with privilege */
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A service started nicer than a child's nice (nice -n 15), by a user who
 * may not lower it again: its children keep their nice and still run. */
static void test_lower_child_already_nicer(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && setresuid(65534, 65534, 65534))
            _exit(1);
        if (setpriority(PRIO_PROCESS, 0, PRIORITY_CHILD_NICE + 5))
            _exit(2);
        if (priority_lower_child(0))
            _exit(3);
        errno = 0;
        if (getpriority(PRIO_PROCESS, 0) != PRIORITY_CHILD_NICE + 5 || errno)
            _exit(4);
        if (sched_getscheduler(0) != SCHED_BATCH)
            _exit(5);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A child that burns CPU: its time is seen, and demoting it sets nice 19. */
static void test_cpu_time_and_demote(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (;;)
            ;
    }
    int64_t used = 0;
    for (int i = 0; i < 2000 && used < 100; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        used = priority_cpu_ms(pid);
        assert_true(used >= 0);
    }
    assert_true(used >= 100);
    assert_int_equal(priority_demote(pid), 0);
    errno = 0;
    assert_int_equal(getpriority(PRIO_PROCESS, pid), PRIORITY_LONG_NICE);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(priority_cpu_ms(pid), -1); /* gone */
}

static void test_oom_kills_readable(void **state)
{
    (void)state;
    assert_true(priority_oom_kills() >= 0); /* Linux >= 4.13 shows it */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lower_child),
        cmocka_unit_test(test_lower_child_already_nicer),
        cmocka_unit_test(test_cpu_time_and_demote),
        cmocka_unit_test(test_oom_kills_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
