/* Who yields when the machine is short of CPU or memory: the scripts, never
 * the service. The acceptor calls priority_protect_service once at start-up
 * (the template and workers inherit it across exec and fork); each child
 * lowers itself in the first step of seccomp/confine.c's sandbox_confine,
 * while it still may write its own /proc files (before the uid drop and
 * Landlock), through a directory fd of /proc the worker opened before its
 * mount namespace made / read-only; the worker reads
 * priority_oom_kills to tell a script the kernel killed for memory, and
 * priority_asleep to tell the acceptor a script sleeps (ipc.h, IPC_ASLEEP). */
#ifndef PYEXEC_PRIORITY_H
#define PYEXEC_PRIORITY_H

#include <stdint.h>
#include <sys/types.h>

/* The children's nice value: the kernel then gives the acceptor and workers
 * (nice 0) about ten times a script's share of a busy CPU. */
#define PRIORITY_CHILD_NICE 10
/* The children's OOM score adjustment: the highest, so the kernel's OOM killer
 * picks a script before anything else in the container. */
#define PRIORITY_CHILD_OOM_ADJ 1000
/* A script that has used PRIORITY_LONG_CPU_MS of CPU is a long one: the
 * worker drops it to nice 19, so scripts started beside it get the CPUs
 * first (about 7 times its share each). CPU, not wall time: a script that
 * sleeps, or waits for a CPU on a busy machine, is not long. */
#define PRIORITY_LONG_NICE   19
#define PRIORITY_LONG_CPU_MS 1000
/* The service's own, where the kernel allows lowering it (as root). */
#define PRIORITY_SERVICE_OOM_ADJ -900

/* Lower the caller's OOM score to PRIORITY_SERVICE_OOM_ADJ. Without the
 * privilege it stays where it is (0 by default), which is still below every
 * child's. Returns the value in force, or -errno if it cannot be read. */
int priority_protect_service(void);

/* For the calling child: nice PRIORITY_CHILD_NICE (or its own, if higher),
 * SCHED_BATCH (the kernel treats it as CPU-bound: no preemption of others
 * when it wakes) and
 * oom_score_adj PRIORITY_CHILD_OOM_ADJ, written through proc_fd (a directory
 * fd of a writable /proc; 0 or less: /proc as mounted). Returns 0 or -errno. */
int priority_lower_child(int proc_fd);

/* For the worker: drop its child pid to PRIORITY_LONG_NICE (allowed: the
 * worker is root or the child's own uid, and nice only goes up). Returns 0 or
 * -errno. */
int priority_demote(pid_t pid);

/* The CPU time pid has used so far, in ms (user + system, from
 * /proc/PID/stat), or -1 if it cannot be read. */
int64_t priority_cpu_ms(pid_t pid);

/* Whether pid sleeps now: one thread, in state S in /proc/PID/stat
 * (time.sleep, a pipe, a lock): 1; 0 if it runs, waits for a CPU or has more
 * threads (which /proc/PID/stat cannot tell apart); -1 if it cannot be
 * read. */
int priority_asleep(pid_t pid);

/* The kernel's count of processes its OOM killer has killed since boot
 * (oom_kill in /proc/vmstat: global and cgroup OOM alike), or -1 where it is
 * not shown (gVisor, kernels before 4.13). */
int64_t priority_oom_kills(void);

#endif
