/* The child's syscall allowlist, kept as data. Each group below is one
 * concern; a syscall is on one line with a comment where it is not obvious.
 * Paths are not seccomp's business: Landlock (seccomp/landlock.c) decides which
 * files the "files" group may reach. Anything not in an allowed group fails
 * with EPERM, so Python raises an ordinary OSError and keeps running.
 *
 * A call that takes a pid, a clock id or a command is allowed only with the
 * arguments that reach the caller itself: pid 0 or its own pid, the standard
 * clocks and its own CPU clocks, the fcntl commands that neither deliver
 * signals (F_SETOWN, F_SETSIG, O_ASYNC) nor watch other processes' file
 * activity (F_NOTIFY, F_SETLEASE). Integer arguments are compared on all 64
 * bits: a value with stray upper bits is refused, never let through.
 *
 * The "denied" group is documentation with teeth: it lists the syscalls that
 * must stay refused (sockets, exec, fork, other processes, the kernel attack
 * surface SECURITY.md names), harmless-looking ones included; they are NOT
 * added to the filter (the default action already refuses them), and
 * policy_build() fails if one of them ever appears in an allowed group by
 * mistake. */
#include "seccomp/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/wipe.h"

/* Compiled in the worker, whose memory its children inherit: free only
 * through wipe_free (wipe.h). */
#pragma GCC poison free realloc

enum match {
    ANY,                    /* allowed whatever the arguments */
    ARG0_SELF,              /* allowed when arg0 == our pid: signals only to ourselves */
    ARG0_SELF_OR_0,         /* allowed when arg0 is 0 or our pid: limits only of ourselves */
    ARG0_SELF_OR_0_TIDS,    /* the same; a pid above ours (our threads' tids) gets ENOSYS */
    ARG0_EQ,                /* allowed when arg0 == value (one prctl option) */
    ARG0_EQ_ARG1_SELF_OR_0, /* arg0 == value and arg1 is 0 or our pid (getpriority) */
    ARG1_EQ,                /* allowed when arg1 == value (one ioctl request) */
    ARG1_EQ_NO_ASYNC,       /* arg1 == value, O_ASYNC clear in arg2 (fcntl F_SETFL) */
    OWN_CLOCK,              /* arg0 is a standard clock or one of the caller's CPU clocks */
    THREAD_ONLY,            /* clone: only with CLONE_THREAD and no namespace flag */
    FAIL_ENOSYS,            /* refused with ENOSYS instead of EPERM */
};

struct rule {
    const char *syscall;
    enum match match;
    uint64_t value;
};

struct group {
    const char *name;
    const struct rule *rules;
    size_t count;
    int denied; /* 1: documentation only, must not be allowed anywhere */
};

static const struct rule process[] = {
    {"exit", ANY, 0},       /* a thread ends */
    {"exit_group", ANY, 0}, /* the process ends */
    {"getpid", ANY, 0},
    {"gettid", ANY, 0},
    {"getppid", ANY, 0}, /* os.getppid(); the worker is out of reach anyway */
    {"getuid", ANY, 0},
    {"geteuid", ANY, 0},
    {"getgid", ANY, 0},
    {"getegid", ANY, 0},
    {"getresuid", ANY, 0},
    {"getresgid", ANY, 0},
    {"getgroups", ANY, 0},
    {"getpgrp", ANY, 0},
    {"getpgid", ARG0_SELF_OR_0, 0}, /* never another process's */
    {"getsid", ARG0_SELF_OR_0, 0},
    {"uname", ANY, 0}, /* platform module */
    {"getcpu", ANY, 0},
    {"getpriority", ARG0_EQ_ARG1_SELF_OR_0, PRIO_PROCESS},
    {"prctl", ARG0_EQ, PR_GET_NAME},
    {"prctl", ARG0_EQ, PR_SET_NAME}, /* thread names */
    {"prctl", ARG0_EQ, PR_GET_DUMPABLE},
    {"prctl", ARG0_EQ, PR_GET_SECCOMP},
    {"prctl", ARG0_EQ, PR_GET_NO_NEW_PRIVS},
};

static const struct rule memory[] = {
    {"brk", ANY, 0},        {"mmap", ANY, 0}, /* RLIMIT_AS/DATA bound it, not seccomp */
    {"munmap", ANY, 0},     {"mremap", ANY, 0},
    {"mprotect", ANY, 0},   {"madvise", ANY, 0}, /* glibc malloc and numpy's huge-page hints */
    {"msync", ANY, 0},      {"mincore", ANY, 0},
    {"membarrier", ANY, 0}, {"get_mempolicy", ANY, 0}, /* read-only NUMA query (OpenBLAS) */
};

/* Threads are allowed (Python's threading, numpy releasing the GIL); their
 * number is bounded by RLIMIT_NPROC where the child's uid is its own (see
 * worker/worker.c), and by the memory limit (each thread's stack) anyway. */
static const struct rule threads[] = {
    {"clone", THREAD_ONLY, 0},   /* threads yes; fork, vfork, posix_spawn no */
    {"clone3", FAIL_ENOSYS, 0},  /* its flags live in memory BPF cannot read:
                                  * ENOSYS makes glibc fall back to clone */
    {"set_robust_list", ANY, 0}, /* every new thread */
    {"rseq", ANY, 0},            /* every new thread (glibc 2.35+) */
    {"set_tid_address", ANY, 0},
    {"futex", ANY, 0},
    {"sched_yield", ANY, 0},
    /* os.sched_getaffinity(0), BLAS thread count. glibc's pthread_getattr_np
     * (ASan's thread start, any library asking a thread's attributes) asks
     * it of a thread by tid, which the filter cannot tell from another
     * process's pid: ENOSYS, which glibc takes for "no such call" and goes
     * on, where EPERM fails the thread. Every pid above ours gets ENOSYS
     * whether it exists or not, so the answer tells nothing. */
    {"sched_getaffinity", ARG0_SELF_OR_0_TIDS, 0},
    {"sched_getparam", ARG0_SELF_OR_0, 0},
    {"sched_getscheduler", ARG0_SELF_OR_0, 0},
    {"nanosleep", ANY, 0},
    {"clock_nanosleep", OWN_CLOCK, 0}, /* time.sleep */
    {"restart_syscall", ANY, 0},       /* a sleep interrupted by a signal resumes */
};

static const struct rule signals[] = {
    {"rt_sigaction", ANY, 0},
    {"rt_sigprocmask", ANY, 0},
    {"rt_sigreturn", ANY, 0},
    {"rt_sigpending", ANY, 0},
    {"rt_sigsuspend", ANY, 0},
    {"rt_sigtimedwait", ANY, 0},
    {"sigaltstack", ANY, 0}, /* faulthandler */
    {"pause", ANY, 0},
    {"alarm", ANY, 0},
    {"setitimer", ANY, 0},
    {"getitimer", ANY, 0},
    {"kill", ARG0_SELF, 0},            /* os.kill(os.getpid(), sig) only */
    {"tgkill", ARG0_SELF, 0},          /* pthread_kill within this process */
    {"tkill", ARG0_SELF, 0},           /* legacy: our main thread only */
    {"rt_sigqueueinfo", ARG0_SELF, 0}, /* signal.sigqueue-style, to ourselves */
    {"rt_tgsigqueueinfo", ARG0_SELF, 0},
};

static const struct rule time_and_limits[] = {
    {"clock_gettime", OWN_CLOCK, 0}, /* usually the vDSO; the syscall when not */
    {"clock_getres", OWN_CLOCK, 0},
    {"gettimeofday", ANY, 0},
    {"time", ANY, 0},
    {"times", ANY, 0},
    {"getrusage", ANY, 0},
    {"getrlimit", ANY, 0},
    {"setrlimit", ANY, 0},            /* our own limits; raising needs a
                                       * capability we no longer have */
    {"prlimit64", ARG0_SELF_OR_0, 0}, /* setrlimit in glibc; never another
                                       * child's limits (they share our uid) */
    {"getrandom", ANY, 0},            /* os.urandom, numpy's seeding */
};

/* Which files: Landlock's decision (read-only system, read-write temp dir). */
static const struct rule files[] = {
    {"read", ANY, 0},
    {"write", ANY, 0},
    {"readv", ANY, 0},
    {"writev", ANY, 0},
    {"pread64", ANY, 0},
    {"pwrite64", ANY, 0},
    {"preadv", ANY, 0},
    {"pwritev", ANY, 0},
    {"preadv2", ANY, 0},
    {"pwritev2", ANY, 0},
    {"lseek", ANY, 0},
    {"open", ANY, 0},
    {"openat", ANY, 0},
    {"creat", ANY, 0},
    {"close", ANY, 0},
    {"close_range", ANY, 0},
    {"stat", ANY, 0},
    {"fstat", ANY, 0},
    {"lstat", ANY, 0},
    {"newfstatat", ANY, 0},
    {"statx", ANY, 0},
    {"statfs", ANY, 0},
    {"fstatfs", ANY, 0},
    {"access", ANY, 0},
    {"faccessat", ANY, 0},
    {"faccessat2", ANY, 0},
    {"readlink", ANY, 0},
    {"readlinkat", ANY, 0},
    {"getdents", ANY, 0},
    {"getdents64", ANY, 0},
    {"getcwd", ANY, 0},
    {"chdir", ANY, 0},
    {"fchdir", ANY, 0},
    {"fcntl", ARG1_EQ, F_DUPFD},
    {"fcntl", ARG1_EQ, F_DUPFD_CLOEXEC},
    {"fcntl", ARG1_EQ, F_GETFD},
    {"fcntl", ARG1_EQ, F_SETFD},
    {"fcntl", ARG1_EQ, F_GETFL},
    {"fcntl", ARG1_EQ_NO_ASYNC, F_SETFL}, /* O_ASYNC: SIGIO to an owner */
    {"fcntl", ARG1_EQ, F_GETLK},          /* record locks: sqlite3 (see flock) */
    {"fcntl", ARG1_EQ, F_SETLK},
    {"fcntl", ARG1_EQ, F_SETLKW},
    {"fcntl", ARG1_EQ, F_OFD_GETLK},
    {"fcntl", ARG1_EQ, F_OFD_SETLK},
    {"fcntl", ARG1_EQ, F_OFD_SETLKW},
    {"dup", ANY, 0},
    {"dup2", ANY, 0},
    {"dup3", ANY, 0},
    {"pipe", ANY, 0}, /* os.pipe inside the process */
    {"pipe2", ANY, 0},
    {"fsync", ANY, 0},
    {"fdatasync", ANY, 0},
    {"ftruncate", ANY, 0},
    {"truncate", ANY, 0},
    {"fallocate", ANY, 0}, /* bounded by RLIMIT_FSIZE and the temp dir cap */
    {"fadvise64", ANY, 0},
    {"flock", ANY, 0}, /* on shared read-only files too: see SECURITY.md, "Locks" */
    {"rename", ANY, 0},
    {"renameat", ANY, 0},
    {"renameat2", ANY, 0},
    {"unlink", ANY, 0},
    {"unlinkat", ANY, 0},
    {"mkdir", ANY, 0},
    {"mkdirat", ANY, 0},
    {"rmdir", ANY, 0},
    {"link", ANY, 0},
    {"linkat", ANY, 0},
    {"symlink", ANY, 0}, /* inside the temp dir; Landlock checks the target on open */
    {"symlinkat", ANY, 0},
    {"chmod", ANY, 0},
    {"fchmod", ANY, 0},
    {"fchmodat", ANY, 0},
    {"umask", ANY, 0},
    {"utime", ANY, 0},
    {"utimes", ANY, 0},
    {"utimensat", ANY, 0},
    {"getxattr", ANY, 0}, /* shutil.copystat; setting xattrs stays refused */
    {"lgetxattr", ANY, 0},
    {"fgetxattr", ANY, 0},
    {"listxattr", ANY, 0},
    {"llistxattr", ANY, 0},
    {"flistxattr", ANY, 0},
    {"sendfile", ANY, 0},        /* shutil.copyfile */
    {"copy_file_range", ANY, 0}, /* shutil.copyfile */
    {"poll", ANY, 0},
    {"ppoll", ANY, 0},
    {"select", ANY, 0},
    {"pselect6", ANY, 0},
    {"epoll_create", ANY, 0}, /* asyncio and selectors, on pipes only */
    {"epoll_create1", ANY, 0},
    {"epoll_ctl", ANY, 0},
    {"epoll_wait", ANY, 0},
    {"epoll_pwait", ANY, 0},
    {"epoll_pwait2", ANY, 0},
    {"eventfd2", ANY, 0},
    {"ioctl", ARG1_EQ, TCGETS},     /* isatty(), done by every open() */
    {"ioctl", ARG1_EQ, TIOCGWINSZ}, /* shutil.get_terminal_size */
    {"ioctl", ARG1_EQ, FIONREAD},
    {"ioctl", ARG1_EQ, FIONBIO},
    {"ioctl", ARG1_EQ, FIOCLEX},
    {"ioctl", ARG1_EQ, FIONCLEX},
};

/* Refused by the default action. Listed so a reviewer sees them and so a
 * later edit cannot allow one by accident (policy_build checks). */
static const struct rule denied[] = {
    {"socket", ANY, 0}, /* every family: the child's channels are pipes */
    {"socketpair", ANY, 0},
    {"execve", ANY, 0},
    {"execveat", ANY, 0},
    {"fork", ANY, 0},
    {"vfork", ANY, 0},
    {"ptrace", ANY, 0},
    {"process_vm_readv", ANY, 0},
    {"process_vm_writev", ANY, 0},
    {"pidfd_open", ANY, 0},
    {"pidfd_getfd", ANY, 0},
    {"pidfd_send_signal", ANY, 0},
    {"io_uring_setup", ANY, 0},
    {"io_uring_enter", ANY, 0},
    {"io_uring_register", ANY, 0},
    {"bpf", ANY, 0},
    {"perf_event_open", ANY, 0},
    {"userfaultfd", ANY, 0},
    {"keyctl", ANY, 0},
    {"add_key", ANY, 0},
    {"request_key", ANY, 0},
    {"mount", ANY, 0},
    {"umount2", ANY, 0},
    {"pivot_root", ANY, 0},
    {"chroot", ANY, 0},
    {"unshare", ANY, 0},
    {"setns", ANY, 0},
    {"init_module", ANY, 0},
    {"finit_module", ANY, 0},
    {"delete_module", ANY, 0},
    {"reboot", ANY, 0},
    {"swapon", ANY, 0},
    {"swapoff", ANY, 0},
    {"clock_settime", ANY, 0},
    {"settimeofday", ANY, 0},
    {"adjtimex", ANY, 0},
    {"clock_adjtime", ANY, 0},
    {"personality", ANY, 0},
    {"shmget", ANY, 0},
    {"shmat", ANY, 0},
    {"shmctl", ANY, 0},
    {"shmdt", ANY, 0},
    {"msgget", ANY, 0},
    {"msgsnd", ANY, 0},
    {"msgrcv", ANY, 0},
    {"msgctl", ANY, 0},
    {"semget", ANY, 0},
    {"semop", ANY, 0},
    {"semtimedop", ANY, 0},
    {"semctl", ANY, 0},
    {"memfd_create", ANY, 0}, /* an executable anonymous file */
    {"setuid", ANY, 0},
    {"setgid", ANY, 0},
    {"setresuid", ANY, 0},
    {"setresgid", ANY, 0},
    {"setgroups", ANY, 0},
    {"capset", ANY, 0},
    {"chown", ANY, 0},
    {"fchown", ANY, 0},
    {"fchownat", ANY, 0},
    {"lchown", ANY, 0},
    {"mknod", ANY, 0},
    {"mknodat", ANY, 0},
    {"setxattr", ANY, 0},
    {"fsetxattr", ANY, 0},
    {"lsetxattr", ANY, 0},
    {"sched_setaffinity", ANY, 0},
    {"sched_setscheduler", ANY, 0},
    {"sched_setattr", ANY, 0},
    {"setpriority", ANY, 0},
    {"kexec_load", ANY, 0},
    {"acct", ANY, 0},
    {"quotactl", ANY, 0},
    {"lookup_dcookie", ANY, 0},
    {"open_by_handle_at", ANY, 0}, /* the classic container escape */
    {"name_to_handle_at", ANY, 0},
    {"fanotify_init", ANY, 0},
    {"inotify_init1", ANY, 0},
    {"wait4", ANY, 0}, /* no children to wait for */
    {"waitid", ANY, 0},
    {"syslog", ANY, 0},
    {"vhangup", ANY, 0},
    {"iopl", ANY, 0},
    {"ioperm", ANY, 0},
    {"modify_ldt", ANY, 0},
    {"arch_prctl", ANY, 0}, /* TLS is set up by clone's CLONE_SETTLS */
    {"set_mempolicy", ANY, 0},
    {"mbind", ANY, 0},
    {"move_pages", ANY, 0},
    {"migrate_pages", ANY, 0},
    {"kcmp", ANY, 0},
    {"seccomp", ANY, 0}, /* prctl(PR_SET_SECCOMP) is not allowed either */
    {"landlock_create_ruleset", ANY, 0},
    {"fsopen", ANY, 0},
    {"fsmount", ANY, 0},
    {"open_tree", ANY, 0},
    {"move_mount", ANY, 0},
    {"mount_setattr", ANY, 0},
    {"process_madvise", ANY, 0},
    {"vmsplice", ANY, 0},
    {"splice", ANY, 0},
    {"tee", ANY, 0},
    {"capget", ANY, 0}, /* its pid is in memory BPF cannot read: any process's sets */
    {"mq_open", ANY, 0},
    {"inotify_init", ANY, 0},
    {"timerfd_create", ANY, 0},
    {"signalfd4", ANY, 0},
    {"timer_create", ANY, 0},
    {"mlock", ANY, 0},
    {"mlockall", ANY, 0},
    {"landlock_add_rule", ANY, 0},
    {"landlock_restrict_self", ANY, 0},
    {"sched_rr_get_interval", ANY, 0}, /* takes any pid */
    {"get_robust_list", ANY, 0},       /* takes any pid */
    {"ioprio_get", ANY, 0},            /* takes any pid */
};

#define GROUP(name, rules, denied)                                                                 \
    {                                                                                              \
        name, rules, sizeof(rules) / sizeof(rules[0]), denied                                      \
    }

static const struct group policy[] = {
    GROUP("process", process, 0),
    GROUP("memory", memory, 0),
    GROUP("threads", threads, 0),
    GROUP("signals (to itself only)", signals, 0),
    GROUP("time, limits and randomness", time_and_limits, 0),
    GROUP("files and fds (Landlock decides which paths)", files, 0),
    GROUP("denied (default action; listed so it stays so)", denied, 1),
};

#define POLICY_GROUPS (sizeof(policy) / sizeof(policy[0]))

/* Namespace flags a "thread" may not carry: clone() with any of them is a
 * new container, not a thread. */
#define CLONE_NS_FLAGS                                                                             \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |     \
     CLONE_NEWCGROUP)

static int is_allowed_anywhere(const char *syscall)
{
    for (size_t g = 0; g < POLICY_GROUPS; g++) {
        if (policy[g].denied)
            continue;
        for (size_t i = 0; i < policy[g].count; i++)
            if (strcmp(policy[g].rules[i].syscall, syscall) == 0)
                return 1;
    }
    return 0;
}

/* The clock ids OWN_CLOCK allows: the standard clocks, and the CPU clocks
 * that encode pid 0, i.e. the caller: (~0 << 3) | type for its process and
 * | 4 for its calling thread (type 0 PROF, 1 VIRT, 2 SCHED). A CPU clock that
 * encodes a pid, even our own, is refused: time.pthread_getcpuclockid's
 * clocks do not work, CLOCK_PROCESS/THREAD_CPUTIME_ID do. Compared on the
 * low 32 bits (clockid_t is an int; the vDSO's fallback zero-extends it). */
static const int32_t own_clocks[] = {
    CLOCK_REALTIME,
    CLOCK_MONOTONIC,
    CLOCK_PROCESS_CPUTIME_ID,
    CLOCK_THREAD_CPUTIME_ID,
    CLOCK_MONOTONIC_RAW,
    CLOCK_REALTIME_COARSE,
    CLOCK_MONOTONIC_COARSE,
    CLOCK_BOOTTIME,
    CLOCK_REALTIME_ALARM,
    CLOCK_BOOTTIME_ALARM,
    CLOCK_TAI,
    -8,
    -7,
    -6,
    -4,
    -3,
    -2,
};

static int add_rule(scmp_filter_ctx ctx, const struct rule *r, int nr, uint64_t self)
{
    switch (r->match) {
    case ANY:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    case ARG0_SELF:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, self));
    case ARG0_SELF_OR_0:
    case ARG0_SELF_OR_0_TIDS: {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, self));
        if (!rc)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, 0));
        if (!rc && r->match == ARG0_SELF_OR_0_TIDS)
            rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 1, SCMP_A0(SCMP_CMP_GT, self));
        return rc;
    }
    case ARG0_EQ:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_EQ, r->value));
    case ARG0_EQ_ARG1_SELF_OR_0: {
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2, SCMP_A0(SCMP_CMP_EQ, r->value),
                                  SCMP_A1(SCMP_CMP_EQ, self));
        return rc ? rc
                  : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2, SCMP_A0(SCMP_CMP_EQ, r->value),
                                     SCMP_A1(SCMP_CMP_EQ, 0));
    }
    case ARG1_EQ:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A1(SCMP_CMP_EQ, r->value));
    case ARG1_EQ_NO_ASYNC:
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2, SCMP_A1(SCMP_CMP_EQ, r->value),
                                SCMP_A2(SCMP_CMP_MASKED_EQ, O_ASYNC, 0));
    case OWN_CLOCK:
        for (size_t i = 0; i < sizeof(own_clocks) / sizeof(own_clocks[0]); i++) {
            int rc =
                seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
                                 SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, (uint32_t)own_clocks[i]));
            if (rc)
                return rc;
        }
        return 0;
    case THREAD_ONLY:
        return seccomp_rule_add(
            ctx, SCMP_ACT_ALLOW, nr, 1,
            SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_NS_FLAGS, CLONE_THREAD));
    case FAIL_ENOSYS:
        return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    }
    return -EINVAL;
}

/* Asked of the kernel itself (SECCOMP_GET_ACTION_AVAIL), not of libseccomp:
 * gVisor refuses KILL_PROCESS, and a filter carrying it would fail to load. */
int policy_kill_process_available(void)
{
    uint32_t action = SECCOMP_RET_KILL_PROCESS;
    return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

/* Non-native architectures (int 0x80 i386 entry, x32) must die, not get
 * EPERM: their syscall numbers mean other things. KILL_PROCESS where the
 * kernel has it, else KILL_THREAD, which still kills the caller (never a
 * weaker action such as an errno). */
static int set_badarch_action(scmp_filter_ctx ctx)
{
    return seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
                            policy_kill_process_available() ? SCMP_ACT_KILL_PROCESS
                                                            : SCMP_ACT_KILL_THREAD);
}

/* The one function that turns the table into a filter. Fails (never skips)
 * on a name libseccomp does not know, a rule it refuses, or a denied syscall
 * that an allowed group also lists. */
static int policy_build(scmp_filter_ctx *out, uint64_t self)
{
    int rc = -ENOMEM;
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        goto fail;
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1); /* raw -errno from load */
    if (rc < 0)
        goto fail;
    rc = set_badarch_action(ctx);
    if (rc < 0)
        goto fail;
    /* A binary search over syscall numbers instead of a linear chain: each
     * child's load is 2.5x cheaper (the kernel runs the filter once per
     * syscall number to build its cache of always-allowed calls), and so is
     * every filtered syscall. */
    rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc < 0)
        goto fail;
    for (size_t g = 0; g < POLICY_GROUPS; g++) {
        for (size_t i = 0; i < policy[g].count; i++) {
            const struct rule *r = &policy[g].rules[i];
            int nr = seccomp_syscall_resolve_name(r->syscall);
            rc = -EINVAL;
            if (nr == __NR_SCMP_ERROR)
                goto fail;
            if (policy[g].denied) {
                if (is_allowed_anywhere(r->syscall))
                    goto fail;
                continue;
            }
            rc = add_rule(ctx, r, nr, self);
            if (rc < 0)
                goto fail;
        }
    }
    *out = ctx;
    return 0;
fail:
    if (ctx)
        seccomp_release(ctx);
    return rc;
}

/* Stands for "the loading process's pid" in the compiled program: above any
 * pid (pid_max is at most 2^22) and unlike any syscall number, flag, ioctl or
 * prctl constant in the table, so the patch cannot hit anything else. */
#define SELF_PLACEHOLDER 0x7e55c0deu

/* "== own pid" compiles to JEQ, "above own pid" to JGT on the low word. */
static int is_self_site(const struct sock_filter *f)
{
    return (f->code == (BPF_JMP | BPF_JEQ | BPF_K) || f->code == (BPF_JMP | BPF_JGT | BPF_K)) &&
           f->k == SELF_PLACEHOLDER;
}

int policy_compile(struct policy_prog *prog)
{
    scmp_filter_ctx ctx;
    int rc = policy_build(&ctx, SELF_PLACEHOLDER);
    if (rc < 0)
        return rc;
    int fd = memfd_create("pyexec-policy", MFD_CLOEXEC);
    off_t size = -1;
    rc = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (!rc)
        size = lseek(fd, 0, SEEK_END);
    if (rc || size <= 0 || size % sizeof(struct sock_filter) ||
        size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        rc = rc ? rc : -EINVAL;
        goto out;
    }
    prog->insns = malloc(size);
    if (!prog->insns || pread(fd, prog->insns, size, 0) != size) {
        wipe_free(prog->insns);
        prog->insns = NULL;
        rc = -EIO;
        goto out;
    }
    prog->len = size / sizeof(struct sock_filter);
    prog->self_sites = 0;
    for (unsigned i = 0; i < prog->len; i++)
        prog->self_sites += is_self_site(&prog->insns[i]);
    /* Every "own pid" rule compares its low word against the placeholder. */
    if (prog->self_sites == 0)
        rc = -EINVAL;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int policy_load(const struct policy_prog *prog)
{
    struct sock_filter insns[BPF_MAXINSNS];
    unsigned sites = 0;
    if (!prog->insns || prog->len > BPF_MAXINSNS)
        return -EINVAL;
    memcpy(insns, prog->insns, prog->len * sizeof(*insns));
    for (unsigned i = 0; i < prog->len; i++) {
        if (is_self_site(&insns[i])) {
            insns[i].k = (uint32_t)getpid();
            sites++;
        }
    }
    if (sites != prog->self_sites)
        return -EINVAL;
    struct sock_fprog fprog = {.len = prog->len, .filter = insns};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog))
        return -errno;
    return 0;
}

int policy_apply(void)
{
    struct policy_prog prog = {0};
    int rc = policy_compile(&prog);
    if (rc < 0)
        return rc;
    rc = policy_load(&prog);
    wipe_free(prog.insns);
    return rc;
}

static const char *match_text(const struct rule *r)
{
    switch (r->match) {
    case ANY:
        return "";
    case ARG0_SELF:
        return "  (arg0 == own pid)";
    case ARG0_SELF_OR_0:
        return "  (arg0 == 0 or own pid)";
    case ARG0_SELF_OR_0_TIDS:
        return "  (arg0 == 0 or own pid; above own pid: ENOSYS)";
    case ARG0_EQ:
        return "  (arg0 ==";
    case ARG0_EQ_ARG1_SELF_OR_0:
        return "  (arg1 == 0 or own pid, arg0 ==";
    case ARG1_EQ:
        return "  (arg1 ==";
    case ARG1_EQ_NO_ASYNC:
        return "  (O_ASYNC clear in arg2, arg1 ==";
    case OWN_CLOCK:
        return "  (arg0: a standard clock or the caller's own CPU clock)";
    case THREAD_ONLY:
        return "  (CLONE_THREAD set, no CLONE_NEW* flag)";
    case FAIL_ENOSYS:
        return "  -> ENOSYS";
    }
    return "";
}

int policy_print(FILE *out)
{
    scmp_filter_ctx ctx;
    int rc = policy_build(&ctx, SELF_PLACEHOLDER);
    if (rc < 0)
        return rc;
    fprintf(out, "# pyexec child seccomp policy: default EPERM, bad arch %s\n",
            policy_kill_process_available() ? "KILL_PROCESS" : "KILL_THREAD");
    fprintf(out, "# (0x%x in the compiled filter stands for the child's own pid)\n",
            SELF_PLACEHOLDER);
    for (size_t g = 0; g < POLICY_GROUPS; g++) {
        fprintf(out, "# [%s]\n", policy[g].name);
        for (size_t i = 0; i < policy[g].count; i++) {
            const struct rule *r = &policy[g].rules[i];
            if (r->match == ARG0_EQ || r->match == ARG1_EQ_NO_ASYNC || r->match == ARG1_EQ ||
                r->match == ARG0_EQ_ARG1_SELF_OR_0)
                fprintf(out, "#   %s%s 0x%llx)\n", r->syscall, match_text(r),
                        (unsigned long long)r->value);
            else
                fprintf(out, "#   %s%s\n", r->syscall, match_text(r));
        }
    }
    fflush(out);
    rc = seccomp_export_pfc(ctx, fileno(out));
    seccomp_release(ctx);
    return rc < 0 ? rc : 0;
}
