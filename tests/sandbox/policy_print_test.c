/* policy_print writes the table and a compiled filter whose text names the
 * allowed syscalls and the ENOSYS answer for clone3, and leaves the denied
 * ones out of every ALLOW line. Also checks the status JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seccomp/namespaces.h"
#include "seccomp/policy.h"
#include "seccomp/status.h"

static int check(int ok, const char *what)
{
    if (!ok)
        fprintf(stderr, "FAIL: %s\n", what);
    return ok ? 0 : 1;
}

int main(void)
{
    char *text = NULL, line[512];
    size_t len = 0;
    int failed = 0, allowed_socket = 0, allowed_execve = 0;
    FILE *out = open_memstream(&text, &len);
    FILE *tmp = tmpfile();
    if (!out || !tmp)
        return 1;
    /* seccomp_export_pfc writes to a file descriptor, so print to a real file */
    failed |= check(policy_print(tmp) == 0, "policy_print returns 0");
    rewind(tmp);
    while (fgets(line, sizeof(line), tmp)) {
        fputs(line, out);
        if (strstr(line, "if ($syscall == 41)")) /* socket: never in the filter */
            allowed_socket = 1;
        if (strstr(line, "if ($syscall == 59)")) /* execve */
            allowed_execve = 1;
    }
    fclose(out);
    failed |= check(strstr(text, "# [threads]") != NULL, "table names the threads group");
    failed |= check(strstr(text, "clone3  -> ENOSYS") != NULL, "clone3 answers ENOSYS");
    failed |= check(strstr(text, "action ERRNO(1)") != NULL, "default action EPERM");
    failed |= check(strstr(text, "action ALLOW") != NULL, "compiled filter has ALLOW rules");
    failed |= check(!allowed_socket, "socket absent from the compiled filter");
    failed |= check(!allowed_execve, "execve absent from the compiled filter");

    struct sandbox_status st;
    char json[512];
    sandbox_status_probe(&st, 65534, 65534, NAMESPACES_NET | NAMESPACES_MOUNT_RO);
    failed |= check(sandbox_status_json(&st, json, sizeof(json)) > 0, "status JSON fits");
    failed |=
        check(strstr(json, "\"namespaces\":[\"net\",\"mount-ro\"]") != NULL, "namespaces listed");
    failed |= check(strstr(json, "\"seccomp\":true") != NULL, "seccomp reported");
    printf("%s\n", json);
    failed |= check(sandbox_status_json(&st, json, 16) == -28, "short buffer: -ENOSPC");
    free(text);
    fclose(tmp);
    return failed;
}
