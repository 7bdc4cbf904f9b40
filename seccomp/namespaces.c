/* Worker namespaces. Each one is a separate unshare() so a host that refuses
 * one (Docker's default seccomp profile refuses them all; gVisor some) still
 * grants the others. The mount view is made private first so nothing done
 * here propagates back to the host. */
#include "seccomp/namespaces.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static int enter_net(void)
{
    return unshare(CLONE_NEWNET) == 0;
}

static int enter_ipc(void)
{
    return unshare(CLONE_NEWIPC) == 0;
}

static int make_readonly(const char *path, unsigned flags, int readonly)
{
    struct mount_attr attr = {0};
    if (readonly)
        attr.attr_set = MOUNT_ATTR_RDONLY;
    else
        attr.attr_clr = MOUNT_ATTR_RDONLY;
    return mount_setattr(-1, path, flags, &attr, sizeof(attr)) == 0;
}

/* A /proc of our own in which every process the caller could not ptrace is
 * invisible (hidepid): a child, running as its own uid, sees itself and
 * nothing else, not even by stat("/proc/N"). Made before the view turns
 * read-only, so it is read-only too. The kernel refuses a fresh proc mount
 * where the current one has parts masked (container runtimes do that):
 * then the host's /proc stays, and uids and Landlock are what keep other
 * processes' entries closed. */
static int private_proc(void)
{
    const unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    return mount("proc", "/proc", "proc", flags, "hidepid=invisible") == 0 ||
           mount("proc", "/proc", "proc", flags, "hidepid=2") == 0; /* before Linux 5.8 */
}

/* The scratch dir becomes a mount of its own (a sized tmpfs, or a bind of
 * itself) so it can stay writable when everything else turns read-only. */
static int enter_mount(const char *scratch_dir, size_t scratch_kb)
{
    int granted = 0;
    char opts[64];
    if (unshare(CLONE_NEWNS) < 0)
        return 0;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return 0;
    if (private_proc())
        granted |= NAMESPACES_PROC_PRIVATE;
    snprintf(opts, sizeof(opts), "size=%zuk,mode=0711", scratch_kb);
    if (scratch_kb > 0 &&
        mount("pyexec-scratch", scratch_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) == 0)
        granted |= NAMESPACES_SCRATCH_TMPFS;
    else if (mount(scratch_dir, scratch_dir, NULL, MS_BIND | MS_REC, NULL) < 0)
        return granted;
    if (!make_readonly("/", AT_RECURSIVE, 1))
        return granted;
    if (!make_readonly(scratch_dir, 0, 0))
        return -EROFS; /* read-only everywhere, scratch included: unusable */
    return granted | NAMESPACES_MOUNT_RO;
}

int namespaces_enter(const char *scratch_dir, size_t scratch_kb)
{
    int granted = 0;
    if (enter_net())
        granted |= NAMESPACES_NET;
    if (enter_ipc())
        granted |= NAMESPACES_IPC;
    int mount_granted = enter_mount(scratch_dir, scratch_kb);
    return mount_granted < 0 ? mount_granted : granted | mount_granted;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int r = n == (ssize_t)strlen(text) ? 0 : n < 0 ? -errno : -EIO;
    close(fd);
    return r;
}

int namespaces_user_possible(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) /* all of it, maps included: some hosts allow only the unshare */
        _exit(namespaces_enter_user() == 1 ? 0 : 1);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int namespaces_enter_user(void)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    char map[64];
    if (unshare(CLONE_NEWUSER) < 0)
        return 0;
    /* A non-dumpable process's /proc/self files belong to root: our own maps
     * can be written only while we are dumpable again, for these few calls. */
    int r = prctl(PR_SET_DUMPABLE, 1) ? -errno : 0;
    if (!r)
        r = write_file("/proc/self/setgroups", "deny");
    if (!r) {
        snprintf(map, sizeof(map), "%u %u 1", (unsigned)uid, (unsigned)uid);
        r = write_file("/proc/self/uid_map", map);
    }
    if (!r) {
        snprintf(map, sizeof(map), "%u %u 1", (unsigned)gid, (unsigned)gid);
        r = write_file("/proc/self/gid_map", map);
    }
    if (prctl(PR_SET_DUMPABLE, 0) && !r)
        r = -errno;
    return r ? r : 1;
}

int namespaces_json(unsigned granted, char *buf, size_t len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {NAMESPACES_NET, "net"},
        {NAMESPACES_IPC, "ipc"},
        {NAMESPACES_MOUNT_RO, "mount-ro"},
        {NAMESPACES_SCRATCH_TMPFS, "scratch-tmpfs"},
        {NAMESPACES_PROC_PRIVATE, "proc-hidepid"},
        {NAMESPACES_USER, "user"},
    };
    const char *sep = "";
    size_t used = 0;
    int n = snprintf(buf, len, "[");
    for (size_t i = 0; i <= sizeof(names) / sizeof(names[0]); i++) {
        if (n < 0 || (size_t)n >= len - used)
            return -ENOSPC;
        used += (size_t)n;
        if (i == sizeof(names) / sizeof(names[0]))
            n = snprintf(buf + used, len - used, "]");
        else if (granted & names[i].bit)
            n = snprintf(buf + used, len - used, "%s\"%s\"", sep, names[i].name), sep = ",";
        else
            n = 0;
    }
    if (n < 0 || (size_t)n >= len - used)
        return -ENOSPC;
    return (int)(used + (size_t)n);
}
