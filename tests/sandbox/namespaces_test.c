/* namespaces_enter in a forked "worker": afterwards it cannot reach a TCP
 * listener on the host's 127.0.0.1, cannot create a file outside its scratch
 * dir, can write to the scratch dir up to its tmpfs size and no further; and
 * none of that leaks back into the host's (the parent's) view.
 * Exit 0 pass, 1 fail, 77 when the host grants no namespace (not root). */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp/namespaces.h"
#include "seccomp/privdrop.h"

#define SCRATCH_KB 64

static char scratch[] = "/tmp/pyexec-ns.XXXXXX";

static int expect(int ok, const char *what)
{
    if (!ok)
        fprintf(stderr, "FAIL: %s (errno %s)\n", what, strerror(errno));
    return ok ? 0 : 1;
}

/* As a child does (another uid): /proc shows itself, and no other process,
 * even to stat. */
static int proc_hides_others(void)
{
    pid_t worker = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        uid_t uid;
        gid_t gid;
        if (privdrop_resolve("65534", &uid, &gid) || privdrop_apply(uid, gid))
            _exit(2);
        char path[64];
        struct stat st;
        int failed = 0;
        snprintf(path, sizeof(path), "/proc/%d", (int)worker);
        failed |= expect(stat(path, &st) < 0 && errno == ENOENT, "the worker's /proc entry hidden");
        failed |= expect(stat("/proc/1", &st) < 0 && errno == ENOENT, "pid 1 hidden");
        snprintf(path, sizeof(path), "/proc/%d/status", (int)getpid());
        failed |= expect(stat(path, &st) == 0, "its own /proc entry visible");
        _exit(failed);
    }
    int status = 1;
    waitpid(pid, &status, 0);
    return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

static int worker(const struct sockaddr_in *listener)
{
    int granted = namespaces_enter(scratch, SCRATCH_KB);
    char json[96];
    namespaces_json(granted < 0 ? 0 : (unsigned)granted, json, sizeof(json));
    printf("granted: %s\n", json);
    if (granted < 0)
        return 1;
    if (granted == 0)
        return 77;
    int failed = 0;
    if (granted & NAMESPACES_NET) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int rc = connect(fd, (const struct sockaddr *)listener, sizeof(*listener));
        failed |= expect(rc < 0 && errno == ENETUNREACH, "host loopback unreachable");
        close(fd);
    }
    if (granted & NAMESPACES_PROC_PRIVATE)
        failed |= proc_hides_others();
    if (granted & NAMESPACES_MOUNT_RO) {
        int fd = open("/var/tmp/pyexec-ns-escape", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        failed |= expect(fd < 0 && errno == EROFS, "outside scratch is read-only");
        if (fd >= 0)
            unlink("/var/tmp/pyexec-ns-escape");
    }
    char path[64], block[4096];
    memset(block, 'x', sizeof(block));
    snprintf(path, sizeof(path), "%s/fill", scratch);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    failed |=
        expect(fd >= 0 && write(fd, block, sizeof(block)) == sizeof(block), "scratch is writable");
    if (granted & NAMESPACES_SCRATCH_TMPFS) {
        ssize_t n = 0;
        for (int i = 0; i < 2 * SCRATCH_KB / 4 && n >= 0; i++)
            n = write(fd, block, sizeof(block));
        failed |= expect(n < 0 && errno == ENOSPC, "scratch is capped at its size");
    }
    close(fd);
    return failed;
}

int main(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (!mkdtemp(scratch) || lfd < 0 || bind(lfd, (struct sockaddr *)&addr, len) < 0 ||
        listen(lfd, 1) < 0 || getsockname(lfd, (struct sockaddr *)&addr, &len) < 0)
        return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc = worker(&addr);
        fflush(stdout);
        _exit(rc);
    }
    int status = 0, failed = 0;
    waitpid(pid, &status, 0);
    /* the host view is untouched: scratch is still the host's, still writable */
    struct statfs fs;
    char path[64];
    snprintf(path, sizeof(path), "%s/host", scratch);
    failed |=
        expect(statfs(scratch, &fs) == 0 && fs.f_type != TMPFS_MAGIC, "no tmpfs in the host view");
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    failed |= expect(fd >= 0, "host view still writable");
    if (fd >= 0)
        close(fd);
    unlink(path);
    snprintf(path, sizeof(path), "%s/fill", scratch);
    unlink(path); /* only there when the host granted no mount namespace */
    rmdir(scratch);
    close(lfd);
    if (!WIFEXITED(status))
        return 1;
    return WEXITSTATUS(status) == 77 ? 77 : (WEXITSTATUS(status) | failed) != 0;
}
