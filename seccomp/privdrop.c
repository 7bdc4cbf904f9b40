/* Privilege drop. Order matters: groups and gid while we still are root,
 * bounding set while we still hold CAP_SETPCAP, uid last (it clears the
 * permitted and effective capability sets), then verify rather than trust. */
#include "seccomp/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int privdrop_resolve(const char *user, uid_t *uid, gid_t *gid)
{
    char *end;
    if (!user || !*user)
        return -EINVAL;
    errno = 0;
    unsigned long n = strtoul(user, &end, 10);
    if (*end == '\0') {
        if (errno || n == 0 || n >= (uid_t)-1 || user[0] == '-')
            return -EINVAL;
        *uid = (uid_t)n;
        *gid = (gid_t)n;
        return 0;
    }
    char buf[4096];
    struct passwd pw, *found = NULL;
    int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &found);
    if (rc)
        return -rc;
    if (!found)
        return -ENOENT;
    if (pw.pw_uid == 0 || pw.pw_gid == 0)
        return -EINVAL;
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

/* 1 when any of the effective, permitted or inheritable sets is non-empty. */
static int holds_capabilities(void)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {0};
    if (syscall(SYS_capget, &hdr, data) < 0)
        return 1; /* cannot tell: assume the worst */
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return 1;
    return 0;
}

/* The bounding set: so nothing regains a capability through a file. Each
 * drop is a credential change of its own, some 1.7 us with the freeing it
 * leaves to RCU; reading whether a capability is still in the set costs a
 * fifth of that, so in a child of the worker, which dropped them all at its
 * start, each is only read. Stops at the first number the kernel does not
 * know. */
int privdrop_bounding_set(void)
{
    for (int cap = 0; cap < 64; cap++) {
        int held = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (held < 0 && errno == EINVAL)
            break;
        if (held != 0 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return -errno;
    }
    return 0;
}

/* The bounding set and the ambient set. */
static int drop_bounding_and_ambient(void)
{
    int r = privdrop_bounding_set();
    if (r)
        return r;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    return 0;
}

int privdrop_apply(uid_t uid, gid_t gid)
{
    int rc;
    if (geteuid() == 0) {
        rc = -EINVAL;
        if (uid == 0 || gid == 0)
            goto fail;
        if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0)
            goto fail_errno;
        rc = drop_bounding_and_ambient();
        if (rc < 0)
            goto fail;
        if (setresuid(uid, uid, uid) < 0)
            goto fail_errno;
        rc = -EPERM; /* the drop must be irreversible */
        if (setuid(0) == 0 || getuid() != uid || geteuid() != uid || getegid() != gid)
            goto fail;
    }
    if (geteuid() != 0 && holds_capabilities()) {
        /* Started as a normal user, the worker's user namespace gave the
         * child every capability over that namespace: drop them all. */
        rc = drop_bounding_and_ambient();
        if (rc < 0)
            goto fail;
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {0};
        if (syscall(SYS_capset, &hdr, none) < 0)
            goto fail_errno;
    }
    rc = -EPERM;
    if (holds_capabilities())
        goto fail;
    /* setresuid already made us non-dumpable; say so for the non-root case */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        goto fail_errno;
    return 0;
fail_errno:
    rc = -errno;
fail:
    return rc;
}

int privdrop_no_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
}
