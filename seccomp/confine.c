/* The child's confinement in order. See confine.h. */
#include "seccomp/confine.h"

#include <unistd.h>

#include "common/priority.h"

#include "seccomp/landlock.h"
#include "seccomp/privdrop.h"

void sandbox_limits(const struct config *cfg, struct rlimits_spec *out)
{
    *out = (struct rlimits_spec){
        .cpu_ms = cfg->cpu_ms,
        .memory_mb = cfg->memory_mb,
        .fsize_kb = cfg->tmp_kb,
        .nofile = 256,
    };
}

int sandbox_confine(const struct confine_spec *s, struct rlimits_base *base, const char **step)
{
    int r;
    *step = "priority";
    r = priority_lower_child(s->proc_fd);
    if (s->proc_fd > 0)
        close(s->proc_fd); /* the host's /proc: gone before any user code */
    if (r < 0)
        return r;
    *step = "rlimits";
    if ((r = rlimits_apply(s->limits, base)) < 0)
        return r;
    if (s->rlimits_only)
        return 0;
    *step = "privdrop";
    if ((r = privdrop_apply(s->uid, s->gid)) < 0)
        return r;
    *step = "no_new_privs";
    if ((r = privdrop_no_new_privs()) < 0)
        return r;
    *step = "landlock";
    if ((r = landlock_apply(s->tmpdir)) < 0) /* > 0: the ABI in force */
        return r;
    *step = "seccomp";
    if ((r = policy_load(s->policy)) < 0)
        return r;
    return 0;
}
