/* Probing is cheap and side-effect free: version queries only. Whether the
 * layers really hold is proven by the worker's start-up self-test, which runs
 * the real child set-up. */
#include "seccomp/status.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "seccomp/landlock.h"
#include "seccomp/namespaces.h"
#include "seccomp/policy.h"

void sandbox_status_probe(struct sandbox_status *st, uid_t uid, gid_t gid, int namespaces)
{
    /* PR_GET_SECCOMP fails with EINVAL on a kernel without seccomp */
    st->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 && seccomp_api_get() >= 1;
    st->kill_process = policy_kill_process_available();
    st->landlock_abi = landlock_abi();
    st->namespaces = namespaces < 0 ? 0 : namespaces;
    st->privdrop = geteuid() == 0;
    st->uid = st->privdrop ? uid : geteuid();
    st->gid = st->privdrop ? gid : getegid();
    st->no_new_privs = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) >= 0;
}

int sandbox_status_json(const struct sandbox_status *st, char *buf, size_t len)
{
    char landlock[16], namespaces[96];
    if (st->landlock_abi > 0)
        snprintf(landlock, sizeof(landlock), "%d", st->landlock_abi);
    else
        snprintf(landlock, sizeof(landlock), "\"unavailable\"");
    if (namespaces_json((unsigned)st->namespaces, namespaces, sizeof(namespaces)) < 0)
        return -ENOSPC;
    int n =
        snprintf(buf, len,
                 "{\"seccomp\":%s,\"seccomp_bad_arch\":\"%s\",\"landlock\":%s,"
                 "\"namespaces\":%s,\"uid\":%u,\"gid\":%u,\"privdrop\":%s,"
                 "\"no_new_privs\":%s}",
                 st->seccomp ? "true" : "false", st->kill_process ? "kill_process" : "kill_thread",
                 landlock, namespaces, (unsigned)st->uid, (unsigned)st->gid,
                 st->privdrop ? "true" : "false", st->no_new_privs ? "true" : "false");
    return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}
