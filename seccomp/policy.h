/* The seccomp allowlist of the per-request child: one table of named syscall
 * groups, compiled by libseccomp in one function. Part of the sandbox
 * (seccomp/): compiled once by the worker, loaded by sandbox_confine
 * (confine.c) as the LAST confinement step (runs in the child); printed by
 * pyexecd --print-policy. */
#ifndef PYEXEC_POLICY_H
#define PYEXEC_POLICY_H

#include <linux/filter.h>
#include <stdio.h>

/* The table compiled to BPF once (in the worker), for any process: the rules
 * that name "our own pid" hold a placeholder that policy_load patches.
 * Compiling takes milliseconds; loading a compiled program, microseconds. */
struct policy_prog {
    struct sock_filter *insns;
    unsigned short len;
    unsigned self_sites; /* instructions that compare against the placeholder */
};

int policy_compile(struct policy_prog *prog);

/* In the child: a private copy of prog with the placeholder replaced by
 * getpid() (the calls that take a pid limited to itself), loaded with
 * seccomp(2). Anything not listed fails with EPERM; clone3 fails with ENOSYS
 * so libc falls back to clone; non-native architectures (i386 int 0x80, x32)
 * kill the process. Needs no_new_privs. Returns 0 or -errno; on error no user
 * code may run. */
int policy_load(const struct policy_prog *prog);

/* policy_compile + policy_load, for a process that compiles its own. */
int policy_apply(void);

/* Print the table, group by group, then the compiled filter (libseccomp PFC)
 * to out. Returns 0 or -errno. */
int policy_print(FILE *out);

/* 1 when this kernel can install the filter's bad-arch action as
 * SCMP_ACT_KILL_PROCESS, 0 when it falls back to SCMP_ACT_KILL_THREAD
 * (gVisor). For /health and --print-policy. */
int policy_kill_process_available(void);

#endif
