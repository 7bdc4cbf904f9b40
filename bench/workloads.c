#include "bench/workloads.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct workload {
    const char *name;
    const char *body;
};

/* Each body is a complete POST /execute request as users send it (README, API).
 * pandas builds its 1,000-row frame inside main so the work is per request. */
static const struct workload workloads[] = {
    {"trivial", "{\"script\": \"def main():\\n    return {\\\"ok\\\": True}\\n\"}"},
    {"numpy",
     "{\"script\": \"import numpy as np\\n\\ndef main():\\n"
     "    print(\\\"Processing data...\\\")\\n"
     "    data = np.arange(1, 1001, dtype=np.float64)\\n"
     "    return {\\\"mean\\\": float(data.mean()), \\\"sum\\\": float(data.sum())}\\n\"}"},
    {"pandas", "{\"script\": \"import pandas as pd\\n\\ndef main():\\n"
               "    df = pd.DataFrame({\\\"key\\\": [i % 10 for i in range(1000)],"
               " \\\"value\\\": list(range(1000))})\\n"
               "    sums = df.groupby(\\\"key\\\")[\\\"value\\\"].sum()\\n"
               "    return {str(k): int(v) for k, v in sums.items()}\\n\"}"},
};

const char *workload_body(const char *name)
{
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        if (strcmp(workloads[i].name, name) == 0)
            return workloads[i].body;
    return NULL;
}

const char *workload_names(void)
{
    return "trivial, numpy, pandas";
}

int workload_read_file(const char *path, char **body, size_t *len)
{
    char *buf = NULL;
    size_t used = 0, size = 0;
    int err = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    for (;;) {
        if (used == size) {
            size_t grown = size ? size * 2 : 4096;
            char *bigger = realloc(buf, grown);
            if (!bigger) {
                err = -ENOMEM;
                goto fail;
            }
            buf = bigger;
            size = grown;
        }
        size_t n = fread(buf + used, 1, size - used, f);
        used += n;
        if (n == 0) {
            if (ferror(f)) {
                err = -EIO;
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *body = buf;
    *len = used;
    return 0;
fail:
    fclose(f);
    free(buf);
    return err;
}
