/* Landlock for the per-request child: read-only access to what Python, numpy
 * and pandas need, read-write only to the private temp dir, nothing else.
 * Part of the sandbox (seccomp/): applied by sandbox_confine (confine.c) after
 * no_new_privs and before seccomp (child); landlock_abi is also asked once by
 * the worker at start to report the ABI in /health. */
#ifndef PYEXEC_LANDLOCK_H
#define PYEXEC_LANDLOCK_H

/* The Landlock ABI version this kernel offers, 0 when it has none (old
 * kernel, LSM not enabled, gVisor). */
int landlock_abi(void);

/* Restrict the calling process (and every thread it creates later) to:
 *   read-only:  /usr, /lib, /lib64, /etc/ld.so.cache, /etc/localtime,
 *               /sys/devices/system/cpu, /proc/<own pid>
 *   read-write: /dev/null, and tmpdir (create, remove, rename inside it)
 * No execute right anywhere; from ABI 4, no TCP bind/connect; from ABI 6, no
 * signals to processes outside the domain and no abstract unix sockets.
 * Needs no_new_privs. Returns the ABI in force (> 0), 0 when the kernel has
 * no Landlock (nothing done), or -errno. */
int landlock_apply(const char *tmpdir);

#endif
