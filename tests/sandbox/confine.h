/* The child's confinement steps in the service's order (worker/child.c):
 * privileges, no_new_privs, Landlock, seccomp. Shared by the sandbox tests so
 * they confine exactly as a request's child does. Test code only. */
#ifndef PYEXEC_TEST_CONFINE_H
#define PYEXEC_TEST_CONFINE_H

#include <sys/types.h>

#include "seccomp/landlock.h"
#include "seccomp/policy.h"
#include "seccomp/privdrop.h"

static inline int test_confine(uid_t uid, gid_t gid, const char *tmpdir)
{
    int rc = privdrop_apply(uid, gid);
    if (rc == 0)
        rc = privdrop_no_new_privs();
    if (rc == 0)
        rc = landlock_apply(tmpdir);
    if (rc >= 0)
        rc = policy_apply();
    return rc;
}

#endif
