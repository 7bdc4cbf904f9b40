#!/bin/sh
# The container's entrypoint (Dockerfile): prepares what the container runtime
# mounted, then execs tini (PID 1, reaps orphans) which runs pyexecd.
# Runs once, as root, before any script.
set -eu
set -f # no globbing of the variables below

# gVisor (runsc, Cloud Run gen1) mounts a fresh tmpfs on /tmp, and every
# runtime one on /dev/shm, both mode 1777. Without Landlock the children's
# file confinement is the uid drop alone: take the world's write bit away.
# pyexecd (root) makes its scratch dirs under /tmp itself.
chmod o-w /tmp /dev/shm 2>/dev/null || true

# Under gVisor /proc/1/environ is readable by every uid: hand pyexecd (and
# PID 1) only its own configuration, never the container's other variables
# (credentials set with --set-env-vars or --set-secrets, K_* metadata).
# pyexecd's values hold no spaces (numbers, an address, a user, a project id).
# shellcheck disable=SC2046
exec /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
    $(/usr/bin/env | grep -E '^(PORT|PYEXEC_[A-Z_]+|GOOGLE_CLOUD_PROJECT|OPENBLAS_CORETYPE|OPENBLAS_L2_SIZE)=' || true) \
    /usr/bin/tini -- /usr/local/bin/pyexecd "$@"
