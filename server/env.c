/* The acceptor's environment. See env.h. */
#include "server/env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

/* The template starts from exec with only these variables: nothing of the
 * service's environment (credentials, config) reaches Python. OPENBLAS_*
 * tuning passes, as some CPUs need it to run OpenBLAS at all. */
const char *const env_passthrough[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", NULL};

#define PASSTHROUGH_MAX 2 /* entries of env_passthrough */
_Static_assert(sizeof(env_passthrough) / sizeof(env_passthrough[0]) == PASSTHROUGH_MAX + 1,
               "PASSTHROUGH_MAX counts env_passthrough");
_Static_assert(ENV_TEMPLATE_MAX >= 3 + PASSTHROUGH_MAX + 1, "room for the template's variables");

/* Append "NAME=value" for every pass-through variable set (with a value
 * under 200 bytes) to env[n..max-1], copied into store. Returns the new n. */
static int env_passthrough_copy(char **env, int n, int max, char store[][ENV_ENTRY_MAX])
{
    int k = 0;
    for (size_t i = 0; env_passthrough[i] && k < PASSTHROUGH_MAX && n < max; i++) {
        const char *v = getenv(env_passthrough[i]);
        if (v && strlen(v) < 200) {
            snprintf(store[k], ENV_ENTRY_MAX, "%s=%s", env_passthrough[i], v);
            env[n++] = store[k++];
        }
    }
    return n;
}

void env_scrub(void)
{
    extern char **environ;
    char store[PASSTHROUGH_MAX][ENV_ENTRY_MAX];
    char *keep[PASSTHROUGH_MAX];
    int n = env_passthrough_copy(keep, 0, PASSTHROUGH_MAX, store);
    for (char **e = environ; *e; e++)
        explicit_bzero(*e, strlen(*e));
    clearenv();
    for (int i = 0; i < n; i++) {
        char *eq = strchr(keep[i], '=');
        *eq = '\0';
        setenv(keep[i], eq + 1, 1);
    }
    prctl(PR_SET_DUMPABLE, 0); /* and no other uid may read our memory */
}

int env_template(char **env, char store[][ENV_ENTRY_MAX])
{
    int n = 0;
    env[n++] = "LANG=C.UTF-8";
    env[n++] = "PATH=/usr/bin:/bin";
    /* malloc's heap on transparent huge pages: cheaper forks (embed/python.c). */
    env[n++] = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1";
    n = env_passthrough_copy(env, n, ENV_TEMPLATE_MAX - 1, store);
    env[n] = NULL;
    return n;
}
