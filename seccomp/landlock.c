/* Landlock rules of the child. The installed <linux/landlock.h> may be older
 * than the running kernel, so the later access bits and the full ruleset
 * attribute are spelled out here; each is only used when landlock_abi() says
 * the kernel knows it (a kernel refuses bits it does not know). */
#include "seccomp/landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FS_TRUNCATE                (1ULL << 14) /* ABI 3 */
#define FS_IOCTL_DEV               (1ULL << 15) /* ABI 5 */
#define NET_BIND_TCP               (1ULL << 0)  /* ABI 4 */
#define NET_CONNECT_TCP            (1ULL << 1)  /* ABI 4 */
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)  /* ABI 6 */
#define SCOPE_SIGNAL               (1ULL << 1)  /* ABI 6 */

/* struct landlock_ruleset_attr as of ABI 6; the kernel takes a prefix of it
 * (and checks that fields it does not know are zero). */
struct ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

#define FS_READ       (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_WRITE_FILE (LANDLOCK_ACCESS_FS_WRITE_FILE | FS_TRUNCATE)
#define FS_MAKE_REMOVE                                                                             \
    (LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |                              \
     LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SYM |     \
     LANDLOCK_ACCESS_FS_REFER)
/* Rights that only make sense on a directory: the kernel refuses them on a
 * rule for a single file. */
#define FS_DIR_ONLY (LANDLOCK_ACCESS_FS_READ_DIR | FS_MAKE_REMOVE)

struct path_rule {
    const char *path;
    uint64_t access;
};

/* What the interpreter may still open once numpy and pandas are imported
 * (the modules a script imports later live under /usr too). Missing paths
 * are skipped. /etc as a whole is NOT here: /etc/passwd, the service's
 * configuration and the like stay out of reach. */
static const struct path_rule system_paths[] = {
    {"/usr", FS_READ},   /* Python stdlib, dist-packages, zoneinfo, shared libraries */
    {"/lib", FS_READ},   /* on merged-/usr systems a symlink to /usr/lib */
    {"/lib64", FS_READ}, /* the dynamic loader, for ctypes/dlopen */
    {"/etc/ld.so.cache", FS_READ},
    {"/etc/localtime", FS_READ},          /* time.localtime; resolves into /usr/share/zoneinfo */
    {"/etc/matplotlibrc", FS_READ},       /* Debian's matplotlib reads its defaults here */
    {"/sys/devices/system/cpu", FS_READ}, /* os.cpu_count() */
    {"/dev/null", FS_READ | FS_WRITE_FILE},
    {"/dev/urandom", FS_READ},
};

int landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi > 0 ? (int)abi : 0;
}

/* Every filesystem right this ABI can control: all of them are handled, so
 * anything not granted below is refused. */
static uint64_t handled_fs(int abi)
{
    uint64_t fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
    if (abi >= 2)
        fs |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        fs |= FS_TRUNCATE;
    if (abi >= 5)
        fs |= FS_IOCTL_DEV;
    return fs;
}

/* Grant access beneath path (its file or directory). The rule is made on an
 * O_PATH descriptor, so /etc/localtime's symlink is followed to its target. */
static int allow_path(int ruleset, const char *path, uint64_t access, uint64_t handled)
{
    struct stat st;
    int fd = open(path, O_PATH | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (fstat(fd, &st) < 0)
        goto fail;
    if (!S_ISDIR(st.st_mode))
        access &= ~FS_DIR_ONLY;
    struct landlock_path_beneath_attr beneath = {
        .allowed_access = access & handled,
        .parent_fd = fd,
    };
    if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) < 0)
        goto fail;
    close(fd);
    return 0;
fail:;
    int rc = -errno;
    close(fd);
    return rc;
}

int landlock_apply(const char *tmpdir)
{
    int abi = landlock_abi();
    if (abi == 0)
        return 0;

    struct ruleset_attr attr = {.handled_access_fs = handled_fs(abi)};
    size_t attr_size = sizeof(attr.handled_access_fs);
    if (abi >= 4) { /* no TCP bind or connect: a second wall behind seccomp */
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP;
        attr_size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) { /* no signal leaves the domain; no abstract unix sockets */
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL;
        attr_size = sizeof(attr);
    }

    int rc;
    char self[64];
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (ruleset < 0)
        return -errno;
    for (size_t i = 0; i < sizeof(system_paths) / sizeof(system_paths[0]); i++) {
        rc = allow_path(ruleset, system_paths[i].path, system_paths[i].access,
                        attr.handled_access_fs);
        if (rc < 0)
            goto fail;
    }
    /* /proc/self is a symlink that each process resolves to itself; the rule
     * is made on our own /proc/<pid>, so other processes' entries stay shut. */
    snprintf(self, sizeof(self), "/proc/%d", (int)getpid());
    rc = allow_path(ruleset, self, FS_READ, attr.handled_access_fs);
    if (rc < 0)
        goto fail;
    rc = -ENOENT; /* a temp dir that does not exist is the caller's bug */
    if (access(tmpdir, F_OK) < 0)
        goto fail;
    rc = allow_path(ruleset, tmpdir, FS_READ | FS_WRITE_FILE | FS_MAKE_REMOVE,
                    attr.handled_access_fs);
    if (rc < 0)
        goto fail;
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
        rc = -errno;
        goto fail;
    }
    close(ruleset);
    return abi;
fail:
    close(ruleset);
    return rc;
}
