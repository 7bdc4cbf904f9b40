/* The configuration table turned into code: defaults, environment, flags,
 * --help, and the flags the acceptor hands to the template. */
#include "common/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ipc.h"

_Static_assert(((size_t)CONFIG_BODY_KB_MAX << 10) == IPC_MAX_REQUEST,
               "the largest body is what a worker reads in one frame");

struct int_opt {
    const char *flag, *env, *help;
    long def, min, max;
    size_t offset;
};

struct str_opt {
    const char *flag, *env, *def, *help;
    size_t offset;
};

static const struct int_opt int_opts[] = {
#define X(field, flag, env, def, min, max, help)                                                   \
    {flag, env, help, def, min, max, offsetof(struct config, field)},
    CONFIG_INTS(X)
#undef X
};

static const struct str_opt str_opts[] = {
#define X(field, flag, env, def, help) {flag, env, def, help, offsetof(struct config, field)},
    CONFIG_STRINGS(X)
#undef X
};

#define N_INT (sizeof(int_opts) / sizeof(int_opts[0]))
#define N_STR (sizeof(str_opts) / sizeof(str_opts[0]))

static long *int_field(struct config *cfg, const struct int_opt *o)
{
    return (long *)((char *)cfg + o->offset);
}

static char *str_field(struct config *cfg, const struct str_opt *o)
{
    return (char *)cfg + o->offset;
}

static int set_int(struct config *cfg, const struct int_opt *o, const char *value,
                   const char *source, FILE *err)
{
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end) {
        fprintf(err, "pyexecd: %s: \"%s\" is not a whole number\n", source, value);
        return -EINVAL;
    }
    if (v < o->min || v > o->max) {
        fprintf(err, "pyexecd: %s: %ld is outside %ld..%ld\n", source, v, o->min, o->max);
        return -EINVAL;
    }
    *int_field(cfg, o) = v;
    return 0;
}

static int set_str(struct config *cfg, const struct str_opt *o, const char *value,
                   const char *source, FILE *err)
{
    if (strlen(value) >= CONFIG_STRING_MAX || !*value) {
        fprintf(err, "pyexecd: %s: must be 1..%d characters\n", source, CONFIG_STRING_MAX - 1);
        return -EINVAL;
    }
    strcpy(str_field(cfg, o), value);
    return 0;
}

static const struct int_opt *find_int(const char *flag)
{
    for (size_t i = 0; i < N_INT; i++)
        if (!strcmp(flag, int_opts[i].flag))
            return &int_opts[i];
    return NULL;
}

static const struct str_opt *find_str(const char *flag)
{
    for (size_t i = 0; i < N_STR; i++)
        if (!strcmp(flag, str_opts[i].flag))
            return &str_opts[i];
    return NULL;
}

static bool known_option(const char *name)
{
    return find_int(name) || find_str(name);
}

/* Apply one option by flag name; returns 0, -ENOENT if unknown, -EINVAL. */
static int set_option(struct config *cfg, const char *name, const char *value, const char *source,
                      FILE *err)
{
    const struct int_opt *i = find_int(name);
    const struct str_opt *s = find_str(name);
    if (i)
        return set_int(cfg, i, value, source, err);
    return s ? set_str(cfg, s, value, source, err) : -ENOENT;
}

void config_usage(FILE *out)
{
    fprintf(out, "usage: pyexecd [--flag=VALUE ...]\n\n"
                 "Runs untrusted Python scripts over HTTP (POST /execute).\n"
                 "Each flag can also be set by its environment variable; flags win.\n\n");
    for (size_t i = 0; i < N_INT; i++)
        fprintf(out, "  --%-22s %-28s %s (default %ld)\n", int_opts[i].flag, int_opts[i].env,
                int_opts[i].help, int_opts[i].def);
    for (size_t i = 0; i < N_STR; i++)
        fprintf(out, "  --%-22s %-28s %s (default %s)\n", str_opts[i].flag, str_opts[i].env,
                str_opts[i].help, *str_opts[i].def ? str_opts[i].def : "unset");
    fprintf(out, "  --%-22s %-28s %s\n", "print-policy", "", "print the seccomp policy and exit");
    fprintf(out, "  --%-22s %-28s %s\n", "help", "", "show this help and exit");
}

int config_load(struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_INT; i++)
        *int_field(cfg, &int_opts[i]) = int_opts[i].def;
    for (size_t i = 0; i < N_STR; i++)
        strcpy(str_field(cfg, &str_opts[i]), str_opts[i].def);

    for (size_t i = 0; i < N_INT; i++) {
        const char *v = getenv(int_opts[i].env);
        if (v && *v && set_int(cfg, &int_opts[i], v, int_opts[i].env, err))
            return -EINVAL;
    }
    for (size_t i = 0; i < N_STR; i++) {
        const char *v = getenv(str_opts[i].env);
        if (v && *v && set_str(cfg, &str_opts[i], v, str_opts[i].env, err))
            return -EINVAL;
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            config_usage(out);
            return 1;
        }
        if (strncmp(arg, "--", 2)) {
            fprintf(err, "pyexecd: unexpected argument \"%s\" (see --help)\n", arg);
            return -EINVAL;
        }
        char name[64];
        const char *value;
        const char *eq = strchr(arg, '=');
        if (eq) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - arg - 2), arg + 2);
            value = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg + 2);
            if (!known_option(name)) {
                fprintf(err, "pyexecd: unknown flag \"%s\" (see --help)\n", arg);
                return -EINVAL;
            }
            if (i + 1 >= argc) {
                fprintf(err, "pyexecd: %s needs a value (see --help)\n", arg);
                return -EINVAL;
            }
            value = argv[++i];
        }
        int r = set_option(cfg, name, value, arg, err);
        if (r == -ENOENT)
            fprintf(err, "pyexecd: unknown flag \"--%s\" (see --help)\n", name);
        if (r)
            return -EINVAL;
    }
    return 0;
}

int config_to_flags(const struct config *cfg, char **argv, int max)
{
    int n = 0;
    for (size_t i = 0; i < N_INT && n < max; i++) {
        long v = *int_field((struct config *)cfg, &int_opts[i]);
        if (asprintf(&argv[n], "--%s=%ld", int_opts[i].flag, v) < 0)
            return -ENOMEM;
        n++;
    }
    for (size_t i = 0; i < N_STR && n < max; i++) {
        if (!*str_field((struct config *)cfg, &str_opts[i]))
            continue; /* unset: the default */
        if (asprintf(&argv[n], "--%s=%s", str_opts[i].flag,
                     str_field((struct config *)cfg, &str_opts[i])) < 0)
            return -ENOMEM;
        n++;
    }
    return n;
}
