/* sandbox_probe [--no-sandbox] OP: fork a child that confines itself with the
 * service child's own call (sandbox_confine: rlimits, privilege drop when
 * root, no_new_privs, Landlock on a fresh temp dir, seccomp last), attempt
 * ONE operation, and report.
 * Exit 0: the expectation of OP holds (a deny_ op was refused with EPERM or
 * EACCES, or killed by SIGSYS where that is the rule; an allow_ op worked).
 * Exit 1: it does not hold. 77: skipped (no Landlock, not root, not x86-64).
 * --no-sandbox skips the confinement (test only): every deny_ op must then
 * exit 1, which ctest checks with WILL_FAIL, so no deny test passes by itself. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/kcmp.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <mqueue.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "seccomp/confine.h"
#include "seccomp/landlock.h"
#include "seccomp/policy.h"
#include "seccomp/privdrop.h"

#define EXIT_SKIP    77
#define SANDBOX_USER "65534"

static char tmpdir[] = "/tmp/pyexec-probe.XXXXXX";
static char outside[] = "/tmp/pyexec-probe-outside.XXXXXX";
static int prepared_fd = -1;
static volatile sig_atomic_t got_signal;
static const char secret[] = "parent memory"; /* process_vm_readv target */

/* Each op returns 0 when the operation succeeded, else the errno it got. */
static int op_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_socket_unix(void)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_socket_netlink(void)
{
    int fd = socket(AF_NETLINK, SOCK_RAW, 0);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_socketpair(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return errno;
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static int op_execve(void)
{
    char *argv[] = {"/bin/false", NULL}; /* if it runs, it exits 1: "not refused" */
    execve(argv[0], argv, NULL);
    return errno;
}

static int reap(pid_t pid)
{
    if (pid < 0)
        return errno;
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return 0;
}

static int op_fork(void)
{
    return reap(fork());
}

static int op_vfork(void)
{
    return reap(vfork());
}

static int op_clone_process(void)
{
    return reap((pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
}

static int op_ptrace(void)
{
    /* the probe's parent; a tracer that exits detaches automatically */
    return ptrace(PTRACE_SEIZE, getppid(), 0, 0) < 0 ? errno : 0;
}

static int op_process_vm_readv(void)
{
    char buf[sizeof(secret)];
    struct iovec local = {buf, sizeof(buf)};
    struct iovec remote = {(void *)secret, sizeof(secret)}; /* same address after fork */
    if (process_vm_readv(getppid(), &local, 1, &remote, 1, 0) < 0)
        return errno;
    return memcmp(buf, secret, sizeof(buf)) == 0 ? 0 : EIO;
}

static int op_kill_parent(void)
{
    return kill(getppid(), 0) < 0 ? errno : 0;
}

static int op_tgkill_parent(void)
{
    return syscall(SYS_tgkill, getppid(), getppid(), 0) < 0 ? errno : 0;
}

static int op_prlimit_parent(void)
{
    struct rlimit old;
    return prlimit(getppid(), RLIMIT_NOFILE, NULL, &old) < 0 ? errno : 0;
}

static int op_io_uring_setup(void)
{
    struct io_uring_params params = {0};
    int fd = (int)syscall(SYS_io_uring_setup, 1, &params);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_bpf(void)
{
    union bpf_attr attr = {
        .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1};
    int fd = (int)syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_perf_event_open(void)
{
    struct perf_event_attr attr = {.type = PERF_TYPE_SOFTWARE,
                                   .size = sizeof(attr),
                                   .config = PERF_COUNT_SW_TASK_CLOCK,
                                   .disabled = 1};
    int fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_userfaultfd(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_keyctl(void)
{
    return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1) < 0 ? errno : 0;
}

static int op_mount(void)
{
    /* a tmpfs over our own temp dir, removed again if it worked */
    if (mount("probe", tmpdir, "tmpfs", 0, "size=16k") < 0)
        return errno;
    umount2(tmpdir, MNT_DETACH);
    return 0;
}

static int op_unshare(void)
{
    return unshare(CLONE_NEWUTS) < 0 ? errno : 0;
}

static void prepare_setns(void)
{
    prepared_fd = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
}

static int op_setns(void)
{
    return setns(prepared_fd, CLONE_NEWUTS) < 0 ? errno : 0;
}

static int op_chroot(void)
{
    return chroot(".") < 0 ? errno : 0;
}

static int op_personality(void)
{
    return personality(PER_LINUX) < 0 ? errno : 0;
}

static int op_shmget(void)
{
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    return id < 0 ? errno : (shmctl(id, IPC_RMID, NULL), 0);
}

static int op_memfd_create(void)
{
    int fd = (int)syscall(SYS_memfd_create, "probe", 0);
    return fd < 0 ? errno : (close(fd), 0);
}

/* The other ABIs of an x86-64 kernel (x32, i386), and arch_prctl: x86-64
 * only, skipped elsewhere (needs X86_64). */
#if defined(__x86_64__)
#define ON_X86_64 1
/* getpid through the x32 ABI: nr | __X32_SYSCALL_BIT. Without x32 in the
 * kernel the unconfined call fails with ENOSYS, which is not the SIGSYS
 * kill this op expects, so the no-sandbox twin still fails as it must. */
static int op_x32(void)
{
    return syscall(0x40000000 | SYS_getpid) < 0 ? errno : 0;
}

/* getpid (20 in the i386 table) through the i386 entry point. */
static int op_int80(void)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    return ret < 0 ? (int)-ret : 0;
}

static int op_arch_prctl(void)
{
    unsigned long fs;
    return syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fs) < 0 ? errno : 0;
}
#else
#define ON_X86_64 0
static int op_x32(void)
{
    return ENOSYS;
}

static int op_int80(void)
{
    return ENOSYS;
}

static int op_arch_prctl(void)
{
    return ENOSYS;
}
#endif

static int create_in(const char *dir)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/escape", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return fd < 0 ? errno : (close(fd), unlink(path), 0);
}

static int op_write_outside_tmp(void)
{
    return create_in(outside); /* mode 0777: only Landlock stands in the way */
}

static int op_write_tmp_root(void)
{
    return create_in("/tmp"); /* 1777 */
}

static int op_read_etc_passwd(void)
{
    int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC); /* mode 0644 */
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_read_proc_parent_environ(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)getppid());
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_setuid_root(void)
{
    return setuid(0) < 0 ? errno : 0;
}

/* "Succeeds" when the process still holds a capability, could regain one
 * through a file (bounding or ambient set), or runs as root. */
static int op_capabilities(void)
{
    static const char *const sets[] = {"CapEff:", "CapPrm:", "CapInh:", "CapBnd:", "CapAmb:"};
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    int held = geteuid() == 0;
    if (!f)
        return errno;
    while (fgets(line, sizeof(line), f))
        for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
            if (strncmp(line, sets[i], 7) == 0)
                held |= strtoull(line + 7, NULL, 16) != 0;
    fclose(f);
    return held ? 0 : EPERM;
}

/* As the worker does at start: the child then inherits an empty bounding set
 * and only reads it (privdrop.h). */
static void prepare_worker_bounding(void)
{
    int rc = privdrop_bounding_set();
    if (rc)
        fprintf(stderr, "sandbox_probe: privdrop_bounding_set: %s\n", strerror(-rc));
}

static void *thread_main(void *arg)
{
    return arg;
}

static int op_thread(void)
{
    pthread_t t;
    void *ret = NULL;
    int rc = pthread_create(&t, NULL, thread_main, (void *)secret);
    if (rc)
        return rc;
    pthread_join(t, &ret);
    return ret == secret ? 0 : EIO;
}

/* clone3 must answer ENOSYS (so glibc falls back to clone) and threads must
 * still start. Unconfined, clone3 with no arguments answers EINVAL instead. */
static int op_clone3_enosys_fallback(void)
{
    if (syscall(SYS_clone3, NULL, 0) == 0 || errno != ENOSYS)
        return errno ? errno : EIO;
    return op_thread();
}

/* A thread may ask for its own attributes (glibc's pthread_getattr_np, which
 * ASan calls as every thread starts, asks sched_getaffinity of the thread's
 * tid): a pid above ours answers ENOSYS, which glibc takes for "no such call"
 * and goes on, where EPERM would fail the call. */
static void *getattr_main(void *arg)
{
    (void)arg;
    pthread_attr_t attr;
    int rc = pthread_getattr_np(pthread_self(), &attr);
    if (!rc)
        pthread_attr_destroy(&attr);
    return (void *)(intptr_t)rc;
}

static int op_thread_getattr(void)
{
    pthread_t t;
    void *ret = NULL;
    int rc = pthread_create(&t, NULL, getattr_main, NULL);
    if (rc)
        return rc;
    pthread_join(t, &ret);
    return (int)(intptr_t)ret;
}

static int op_mmap(void)
{
    size_t len = 64 << 20;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return errno;
    memset(p, 1, len);
    int rc = mprotect(p, len, PROT_READ) < 0 ? errno : 0;
    munmap(p, len);
    return rc;
}

static int op_write_tmp(void)
{
    int fd = open("data", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    int rc = write(fd, "x", 1) == 1 ? 0 : errno;
    close(fd);
    if (rc == 0 && (mkdir("sub", 0700) < 0 || rename("data", "sub/data") < 0 ||
                    unlink("sub/data") < 0 || rmdir("sub") < 0))
        rc = errno;
    return rc;
}

static int op_read_usr(void)
{
    char buf[64];
    int fd = open("/usr/lib/python3.11/os.py", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = read(fd, buf, sizeof(buf)) > 0 ? 0 : EIO;
    close(fd);
    return rc;
}

static int op_read_proc_self_status(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    int seccomp = -1;
    if (!f)
        return errno;
    while (fgets(line, sizeof(line), f))
        sscanf(line, "Seccomp: %d", &seccomp);
    fclose(f);
    return seccomp >= 0 ? 0 : EIO;
}

static void on_signal(int sig)
{
    got_signal = sig;
}

static int op_kill_self(void)
{
    signal(SIGUSR1, on_signal);
    if (kill(getpid(), SIGUSR1) < 0)
        return errno;
    return got_signal == SIGUSR1 ? 0 : EIO; /* delivered before kill returns */
}

static int op_getrandom(void)
{
    char buf[32];
    return getrandom(buf, sizeof(buf), 0) == sizeof(buf) ? 0 : errno;
}

static int op_lower_rlimit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return errno;
    rl.rlim_cur = rl.rlim_max = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return errno;
    rl.rlim_cur = rl.rlim_max = 32;
    return prlimit(0, RLIMIT_NOFILE, &rl, NULL) < 0 ? errno : 0;
}

static int op_dev_null(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = write(fd, "x", 1) == 1 ? 0 : errno;
    close(fd);
    return rc;
}

/* --- reaching other processes through arguments ----------------------- */

/* A pipe of our own, for the fcntl ops. */
static int own_fd(void)
{
    int p[2];
    return pipe2(p, O_CLOEXEC) < 0 ? -1 : p[0];
}

static int fcntl_result(int rc)
{
    return rc < 0 ? errno : 0;
}

static int op_fcntl_setown(void)
{
    return fcntl_result(fcntl(own_fd(), F_SETOWN, getppid()));
}

static int op_fcntl_setown_ex(void)
{
    struct f_owner_ex owner = {.type = F_OWNER_PID, .pid = getppid()};
    return fcntl_result(fcntl(own_fd(), F_SETOWN_EX, &owner));
}

static int op_fcntl_setsig(void)
{
    return fcntl_result(fcntl(own_fd(), F_SETSIG, SIGUSR1));
}

static int op_fcntl_async(void)
{
    return fcntl_result(fcntl(own_fd(), F_SETFL, O_ASYNC | O_NONBLOCK));
}

/* dnotify on a shared system directory: a signal for each file any other
 * process opens there. */
static int op_fcntl_notify(void)
{
    int fd = open("/usr/lib", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    return fcntl_result(fcntl(fd, F_NOTIFY, DN_ACCESS | DN_MULTISHOT));
}

static void prepare_lease_file(void)
{
    int fd = open("lease", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

static int op_fcntl_setlease(void)
{
    int fd = open("lease", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    return fcntl_result(fcntl(fd, F_SETLEASE, F_RDLCK));
}

/* The CPU clock of another process: ((~pid) << 3) | CPUCLOCK_SCHED. */
static clockid_t parent_cpu_clock(void)
{
    return (clockid_t)((~(unsigned)getppid() << 3) | 2);
}

static int op_clock_gettime_other(void)
{
    struct timespec ts;
    return syscall(SYS_clock_gettime, parent_cpu_clock(), &ts) < 0 ? errno : 0;
}

static int op_clock_getres_other(void)
{
    struct timespec ts;
    return syscall(SYS_clock_getres, parent_cpu_clock(), &ts) < 0 ? errno : 0;
}

static int op_clock_nanosleep_other(void)
{
    struct timespec ts = {0, 0}; /* long past: returns at once (the parent is idle) */
    return syscall(SYS_clock_nanosleep, parent_cpu_clock(), TIMER_ABSTIME, &ts, NULL) < 0 ? errno
                                                                                          : 0;
}

/* The upper 32 bits of a clock id are ignored by the kernel: a standard
 * clock with stray upper bits must not pass as one. */
static int op_clock_gettime_high_bits(void)
{
    struct timespec ts;
    long id = (long)((1ul << 32) | (uint32_t)parent_cpu_clock());
    return syscall(SYS_clock_gettime, id, &ts) < 0 ? errno : 0;
}

static int op_getsid_other(void)
{
    return getsid(getppid()) < 0 ? errno : 0;
}

static int op_getpgid_other(void)
{
    return getpgid(getppid()) < 0 ? errno : 0;
}

static int op_sched_getaffinity_other(void)
{
    cpu_set_t set;
    return sched_getaffinity(getppid(), sizeof(set), &set) < 0 ? errno : 0;
}

static int op_sched_getparam_other(void)
{
    struct sched_param sp;
    return sched_getparam(getppid(), &sp) < 0 ? errno : 0;
}

static int op_sched_getscheduler_other(void)
{
    return sched_getscheduler(getppid()) < 0 ? errno : 0;
}

static int op_getpriority_other(void)
{
    errno = 0;
    return getpriority(PRIO_PROCESS, getppid()) == -1 && errno ? errno : 0;
}

static int op_getpriority_user(void)
{
    errno = 0;
    return getpriority(PRIO_USER, 0) == -1 && errno ? errno : 0;
}

static int op_capget_other(void)
{
    struct {
        uint32_t version;
        int pid;
    } hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, getppid()};
    uint32_t data[6];
    return syscall(SYS_capget, &hdr, data) < 0 ? errno : 0;
}

static int op_pidfd_open(void)
{
    int fd = (int)syscall(SYS_pidfd_open, getppid(), 0);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_kcmp(void)
{
    return syscall(SYS_kcmp, getpid(), getppid(), KCMP_VM, 0, 0) < 0 ? errno : 0;
}

static int op_msgget(void)
{
    int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    return id < 0 ? errno : (msgctl(id, IPC_RMID, NULL), 0);
}

static int op_semget(void)
{
    int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    return id < 0 ? errno : (semctl(id, 0, IPC_RMID), 0);
}

static int op_mq_open(void)
{
    mqd_t q = mq_open("/pyexec-probe", O_RDWR | O_CREAT | O_CLOEXEC, 0600, NULL);
    return q == (mqd_t)-1 ? errno : (mq_close(q), mq_unlink("/pyexec-probe"), 0);
}

static int op_inotify(void)
{
    int fd = inotify_init1(IN_CLOEXEC);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_fanotify(void)
{
    int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC, O_RDONLY);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_timerfd(void)
{
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_signalfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    return fd < 0 ? errno : (close(fd), 0);
}

static int op_timer_create(void)
{
    timer_t t;
    struct sigevent ev = {.sigev_notify = SIGEV_NONE};
    return syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &t) < 0 ? errno : 0;
}

/* Two pipes, one byte waiting in the first. */
static int pipes_with_data(int a[2], int b[2])
{
    if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0 || write(a[1], "x", 1) != 1)
        return -1;
    return 0;
}

static int op_splice(void)
{
    int a[2], b[2];
    if (pipes_with_data(a, b))
        return EIO;
    return splice(a[0], NULL, b[1], NULL, 1, 0) < 0 ? errno : 0;
}

static int op_tee(void)
{
    int a[2], b[2];
    if (pipes_with_data(a, b))
        return EIO;
    return tee(a[0], b[1], 1, 0) < 0 ? errno : 0;
}

static int op_vmsplice(void)
{
    int a[2];
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    if (pipe2(a, O_CLOEXEC) < 0)
        return EIO;
    return vmsplice(a[1], &iov, 1, 0) < 0 ? errno : 0;
}

static int op_mlock(void)
{
    static char page[4096] __attribute__((aligned(4096)));
    /* The raw call: ASan's mlock interceptor returns 0 without asking the kernel. */
    return syscall(SYS_mlock, page, sizeof(page)) < 0
               ? errno
               : (syscall(SYS_munlock, page, sizeof(page)), 0);
}

static int op_sched_setaffinity(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return EIO;
    return sched_setaffinity(0, sizeof(set), &set) < 0 ? errno : 0;
}

static int op_seccomp(void)
{
    uint32_t action = 0x7fff0000U; /* SECCOMP_RET_ALLOW */
    return syscall(SYS_seccomp, 2 /* SECCOMP_GET_ACTION_AVAIL */, 0, &action) < 0 ? errno : 0;
}

static int op_landlock(void)
{
    /* LANDLOCK_CREATE_RULESET_VERSION: the ABI version, or EOPNOTSUPP */
    return syscall(SYS_landlock_create_ruleset, NULL, 0, 1) < 0 ? errno : 0;
}

static int op_mknod(void)
{
    return mknod("fifo", S_IFIFO | 0600, 0) < 0 ? errno : (unlink("fifo"), 0);
}

/* Outside prctl's list; this one would make the child dumpable again. */
static int op_prctl_set_dumpable(void)
{
    return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0 ? errno : 0;
}

static int op_tiocsti(void)
{
    char c = 'x';
    return ioctl(0, TIOCSTI, &c) < 0 ? errno : 0;
}

static int op_write_proc_self(void)
{
    int fd = open("/proc/self/comm", O_WRONLY | O_CLOEXEC);
    return fd < 0 ? errno : (close(fd), 0);
}

/* --- what a script may still do with those calls ------------------------ */

static int op_fcntl_own(void)
{
    int fd = own_fd();
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return errno;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    return dup < 0 ? errno : 0;
}

static int op_clock_own(void)
{
    struct timespec ts;
    const clockid_t ids[] = {CLOCK_REALTIME,          CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID,
                             CLOCK_THREAD_CPUTIME_ID, CLOCK_BOOTTIME,  -6 /* pid 0: itself */};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (syscall(SYS_clock_gettime, ids[i], &ts) < 0 ||
            syscall(SYS_clock_getres, ids[i], &ts) < 0)
            return errno;
    /* as the vDSO's fallback passes it: zero-extended */
    if (syscall(SYS_clock_gettime, (long)(uint32_t)CLOCK_PROCESS_CPUTIME_ID, &ts) < 0 ||
        syscall(SYS_clock_gettime, (long)(uint32_t)-6, &ts) < 0)
        return errno;
    struct timespec nap = {0, 1000};
    return clock_nanosleep(CLOCK_MONOTONIC, 0, &nap, NULL);
}

static int op_pid_calls_self(void)
{
    cpu_set_t set;
    struct sched_param sp;
    pid_t self = getpid();
    pid_t pids[] = {0, self};
    for (size_t i = 0; i < 2; i++) {
        errno = 0;
        if (getsid(pids[i]) < 0 || getpgid(pids[i]) < 0 ||
            sched_getaffinity(pids[i], sizeof(set), &set) < 0 || sched_getparam(pids[i], &sp) < 0 ||
            sched_getscheduler(pids[i]) < 0 ||
            (getpriority(PRIO_PROCESS, (id_t)pids[i]) == -1 && errno))
            return errno ? errno : EIO;
    }
    return 0;
}

/* Locks stay allowed (sqlite3 needs them): see SECURITY.md, "Locks". */
static int op_locks_tmp(void)
{
    int fd = open("locked", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1};
    if (flock(fd, LOCK_EX) < 0 || flock(fd, LOCK_UN) < 0 || fcntl(fd, F_SETLK, &fl) < 0 ||
        fcntl(fd, F_GETLK, &fl) < 0 || fcntl(fd, F_OFD_SETLK, &fl) < 0)
        return errno;
    return 0;
}

enum expect { DENY, DENY_KILLED, ALLOW };
enum needs { NOTHING = 0, LANDLOCK = 1, ROOT = 2, ROOT_UNCONFINED = 4, X86_64 = 8 };

struct op {
    const char *name;
    int (*run)(void);
    enum expect expect;
    unsigned needs;        /* LANDLOCK: only Landlock denies it; ROOT: privdrop test;
                            * ROOT_UNCONFINED: only root can do it unconfined
                            * (capabilities, ptrace rules, perf_event_paranoid);
                            * X86_64: an x86-64 kernel's other ABIs, arch_prctl */
    void (*prepare)(void); /* runs before the confinement */
};

static const struct op ops[] = {
    {"socket", op_socket, DENY, 0, NULL},
    {"socket_unix", op_socket_unix, DENY, 0, NULL},
    {"socket_netlink", op_socket_netlink, DENY, 0, NULL},
    {"socketpair", op_socketpair, DENY, 0, NULL},
    {"execve", op_execve, DENY, 0, NULL},
    {"fork", op_fork, DENY, 0, NULL},
    {"vfork", op_vfork, DENY, 0, NULL},
    {"clone_process", op_clone_process, DENY, 0, NULL},
    {"ptrace", op_ptrace, DENY, ROOT_UNCONFINED, NULL},
    {"process_vm_readv", op_process_vm_readv, DENY, ROOT_UNCONFINED, NULL},
    {"kill_parent", op_kill_parent, DENY, ROOT_UNCONFINED, NULL},
    {"tgkill_parent", op_tgkill_parent, DENY, ROOT_UNCONFINED, NULL},
    {"prlimit_parent", op_prlimit_parent, DENY, ROOT_UNCONFINED, NULL},
    {"io_uring_setup", op_io_uring_setup, DENY, 0, NULL},
    {"bpf", op_bpf, DENY, ROOT_UNCONFINED, NULL},
    {"perf_event_open", op_perf_event_open, DENY, ROOT_UNCONFINED, NULL},
    {"userfaultfd", op_userfaultfd, DENY, ROOT_UNCONFINED, NULL},
    {"keyctl", op_keyctl, DENY, 0, NULL},
    {"mount", op_mount, DENY, ROOT_UNCONFINED, NULL},
    {"unshare", op_unshare, DENY, ROOT_UNCONFINED, NULL},
    {"setns", op_setns, DENY, ROOT_UNCONFINED, prepare_setns},
    {"chroot", op_chroot, DENY, ROOT_UNCONFINED, NULL},
    {"personality", op_personality, DENY, 0, NULL},
    {"shmget", op_shmget, DENY, 0, NULL},
    {"memfd_create", op_memfd_create, DENY, 0, NULL},
    {"x32", op_x32, DENY_KILLED, X86_64, NULL},
    {"int80", op_int80, DENY_KILLED, X86_64, NULL},
    {"write_outside_tmp", op_write_outside_tmp, DENY, LANDLOCK, NULL},
    {"write_tmp_root", op_write_tmp_root, DENY, LANDLOCK, NULL},
    {"read_etc_passwd", op_read_etc_passwd, DENY, LANDLOCK, NULL},
    {"read_proc_parent_environ", op_read_proc_parent_environ, DENY, ROOT_UNCONFINED, NULL},
    {"setuid_root", op_setuid_root, DENY, ROOT, NULL},
    {"capabilities", op_capabilities, DENY, ROOT, NULL},
    {"capabilities_worker_dropped", op_capabilities, DENY, ROOT, prepare_worker_bounding},
    {"fcntl_setown", op_fcntl_setown, DENY, 0, NULL},
    {"fcntl_setown_ex", op_fcntl_setown_ex, DENY, 0, NULL},
    {"fcntl_setsig", op_fcntl_setsig, DENY, 0, NULL},
    {"fcntl_async", op_fcntl_async, DENY, 0, NULL},
    {"fcntl_notify", op_fcntl_notify, DENY, 0, NULL},
    {"fcntl_setlease", op_fcntl_setlease, DENY, 0, prepare_lease_file},
    {"clock_gettime_other", op_clock_gettime_other, DENY, 0, NULL},
    {"clock_getres_other", op_clock_getres_other, DENY, 0, NULL},
    {"clock_nanosleep_other", op_clock_nanosleep_other, DENY, 0, NULL},
    {"clock_gettime_high_bits", op_clock_gettime_high_bits, DENY, 0, NULL},
    {"getsid_other", op_getsid_other, DENY, 0, NULL},
    {"getpgid_other", op_getpgid_other, DENY, 0, NULL},
    {"sched_getaffinity_other", op_sched_getaffinity_other, DENY, 0, NULL},
    {"sched_getparam_other", op_sched_getparam_other, DENY, 0, NULL},
    {"sched_getscheduler_other", op_sched_getscheduler_other, DENY, 0, NULL},
    {"getpriority_other", op_getpriority_other, DENY, 0, NULL},
    {"getpriority_user", op_getpriority_user, DENY, 0, NULL},
    {"capget_other", op_capget_other, DENY, 0, NULL},
    {"pidfd_open", op_pidfd_open, DENY, 0, NULL},
    {"kcmp", op_kcmp, DENY, ROOT_UNCONFINED, NULL},
    {"msgget", op_msgget, DENY, 0, NULL},
    {"semget", op_semget, DENY, 0, NULL},
    {"mq_open", op_mq_open, DENY, 0, NULL},
    {"inotify", op_inotify, DENY, 0, NULL},
    {"fanotify", op_fanotify, DENY, ROOT_UNCONFINED, NULL},
    {"timerfd", op_timerfd, DENY, 0, NULL},
    {"signalfd", op_signalfd, DENY, 0, NULL},
    {"timer_create", op_timer_create, DENY, 0, NULL},
    {"splice", op_splice, DENY, 0, NULL},
    {"tee", op_tee, DENY, 0, NULL},
    {"vmsplice", op_vmsplice, DENY, 0, NULL},
    {"mlock", op_mlock, DENY, 0, NULL},
    {"sched_setaffinity", op_sched_setaffinity, DENY, 0, NULL},
    {"arch_prctl", op_arch_prctl, DENY, X86_64, NULL},
    {"seccomp", op_seccomp, DENY, 0, NULL},
    {"landlock", op_landlock, DENY, 0, NULL},
    {"mknod", op_mknod, DENY, 0, NULL},
    {"prctl_set_dumpable", op_prctl_set_dumpable, DENY, 0, NULL},
    {"tiocsti", op_tiocsti, DENY, 0, NULL},
    {"write_proc_self", op_write_proc_self, DENY, LANDLOCK, NULL},
    {"thread", op_thread, ALLOW, 0, NULL},
    {"fcntl_own", op_fcntl_own, ALLOW, 0, NULL},
    {"clock_own", op_clock_own, ALLOW, 0, NULL},
    {"pid_calls_self", op_pid_calls_self, ALLOW, 0, NULL},
    {"thread_getattr", op_thread_getattr, ALLOW, 0, NULL},
    {"locks_tmp", op_locks_tmp, ALLOW, 0, NULL},
    {"clone3_enosys_fallback", op_clone3_enosys_fallback, ALLOW, 0, NULL},
    {"mmap", op_mmap, ALLOW, 0, NULL},
    {"write_tmp", op_write_tmp, ALLOW, 0, NULL},
    {"read_usr", op_read_usr, ALLOW, 0, NULL},
    {"read_proc_self_status", op_read_proc_self_status, ALLOW, 0, NULL},
    {"kill_self", op_kill_self, ALLOW, 0, NULL},
    {"getrandom", op_getrandom, ALLOW, 0, NULL},
    {"lower_rlimit", op_lower_rlimit, ALLOW, 0, NULL},
    {"dev_null", op_dev_null, ALLOW, 0, NULL},
};

/* The service's limits (its default configuration) and policy, compiled
 * before the fork as a worker compiles it. */
static struct rlimits_spec limits;
static struct policy_prog policy;

/* The service child's own confinement call (seccomp/confine.c). */
static int confine(uid_t uid, gid_t gid)
{
    struct confine_spec spec = {
        .limits = &limits, .uid = uid, .gid = gid, .tmpdir = tmpdir, .policy = &policy};
    struct rlimits_base base;
    const char *step = "confinement";
    int rc = sandbox_confine(&spec, &base, &step);
    if (rc < 0)
        fprintf(stderr, "sandbox_probe: %s: %s\n", step, strerror(-rc));
    return rc;
}

static int run_child(const struct op *op, int sandbox, uid_t uid, gid_t gid)
{
    if (chdir(tmpdir) < 0)
        return 3;
    if (op->prepare)
        op->prepare();
    if (sandbox) {
        int rc = confine(uid, gid);
        if (rc < 0) {
            fprintf(stderr, "sandbox_probe: confinement failed: %s\n", strerror(-rc));
            return 3;
        }
    }
    int err = op->run();
    printf("%s: %s%s%s\n", op->name, err ? "refused, " : "succeeded", err ? strerror(err) : "",
           sandbox ? "" : " (no sandbox)");
    fflush(stdout);
    if (op->expect == ALLOW)
        return err == 0 ? 0 : 1;
    if (op->expect == DENY_KILLED)
        return 1; /* still alive: not killed */
    return err == EPERM || err == EACCES ? 0 : 1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    int sandbox = 1;
    if (argc == 3 && strcmp(argv[1], "--no-sandbox") == 0) {
        sandbox = 0;
        argv++, argc--;
    }
    const struct op *op = NULL;
    for (size_t i = 0; argc == 2 && i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].name, argv[1]) == 0)
            op = &ops[i];
    if (!op) {
        fprintf(stderr, "usage: sandbox_probe [--no-sandbox] OP\n");
        return 2;
    }
    if ((op->needs & ROOT) && geteuid() != 0)
        return EXIT_SKIP;
    if ((op->needs & ROOT_UNCONFINED) && !sandbox && geteuid() != 0)
        return EXIT_SKIP;
    if ((op->needs & LANDLOCK) && sandbox && landlock_abi() == 0)
        return EXIT_SKIP;
    if ((op->needs & X86_64) && !ON_X86_64) {
        printf("sandbox_probe: skipped: %s exists only on x86-64\n", op->name);
        return EXIT_SKIP;
    }

    uid_t uid;
    gid_t gid;
    struct config cfg;
    char *defaults[] = {"sandbox_probe", NULL};
    if (config_load(&cfg, 1, defaults, stdout, stderr) || policy_compile(&policy))
        return 3;
    sandbox_limits(&cfg, &limits);
    if (privdrop_resolve(SANDBOX_USER, &uid, &gid) < 0 || !mkdtemp(tmpdir))
        return 3;
    if (!mkdtemp(outside) || chmod(outside, 0777) < 0 ||
        (geteuid() == 0 && chown(tmpdir, uid, gid) < 0))
        goto fail;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(run_child(op, sandbox, uid, gid));
    int status, result = 1;
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        goto fail;
    if (WIFEXITED(status)) {
        result = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        printf("%s: killed by signal %d (%s)\n", op->name, WTERMSIG(status),
               strsignal(WTERMSIG(status)));
        result = op->expect == DENY_KILLED && WTERMSIG(status) == SIGSYS ? 0 : 1;
    }
    nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    nftw(outside, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return result;
fail:
    perror("sandbox_probe");
    rmdir(tmpdir);
    rmdir(outside);
    return 3;
}
