#!/usr/bin/env bash
# Proves the container image on this machine, without a registry: builds the
# debian:bookworm-slim base with debootstrap (cached in podman's storage),
# builds the Dockerfile, then runs the image under runc and under gVisor
# (runsc) and checks each: the HEALTHCHECK, the container test suite
# (test_container.py: /health layers, conformance, escapes, error types, what
# a script can write and read), orphan reaping by PID 1 (pid1.py) and SIGTERM
# with a request in flight (sigterm.py: answered, exit 0 within 10 s).
# Exits non-zero on any failure; removes the containers it started.
#
# Needs root and Debian's podman, runc, runsc and debootstrap.
# Usage: tests/container/run.sh [runc|runsc ...]   (default: both)
# Environment: PYEXEC_IMAGE (default localhost/pyexec:test),
#   PYEXEC_REBUILD_BASE=1 to rebuild the base image.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
python=/usr/bin/python3 # Debian's; never the python3 first on PATH
base=docker.io/library/debian:bookworm-slim
image=${PYEXEC_IMAGE:-localhost/pyexec:test}
cases=${PYEXEC_CASES:-$repo/tests/conformance/cases.json}
runtimes=("$@")
((${#runtimes[@]})) || runtimes=(runc runsc)
started=() # containers to remove on exit
t0=$SECONDS

say() { printf '[%4ds] %s\n' $((SECONDS - t0)) "$*"; }
die() {
    say "FAIL: $*"
    exit 1
}

# podman run/rm of an image with a HEALTHCHECK try to manage a systemd timer;
# without systemd (this kind of machine) they log an error and carry on.
podman_q() { podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

cleanup() {
    local c
    for c in "${started[@]}"; do
        podman rm -f -t 0 "$c" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

# --- preconditions -------------------------------------------------------
[[ $(id -u) == 0 ]] || die "run as root (rootful podman, debootstrap)"
for tool in podman runc debootstrap "$python"; do
    command -v "$tool" >/dev/null || die "$tool missing (apt-get install podman runc debootstrap)"
done
for rt in "${runtimes[@]}"; do
    case $rt in
    runc) ;;
    runsc) [[ -x /usr/bin/runsc ]] || die "/usr/bin/runsc missing (apt-get install runsc)" ;;
    *) die "unknown runtime $rt (runc or runsc)" ;;
    esac
done
[[ -f $cases ]] || die "no conformance cases at $cases (set PYEXEC_CASES)"

# --- 1. the base image -----------------------------------------------------
# The Debian mirror apt already uses: the first bookworm source that is not
# the security archive, in deb822 (*.sources) or one-line (*.list) form.
debian_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        uri=$(awk 'BEGIN { RS = "" }
            /Suites:[^\n]*bookworm([ \n]|$)/ && !/security/ {
                for (i = 1; i < NF; i++) if ($i == "URIs:") { print $(i + 1); exit } }' "$f")
        [[ -n $uri ]] && echo "$uri" && return 0
    done
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" && $3 == "bookworm" && $2 !~ /security/ { print $2; exit }') || true
    [[ -n $uri ]] && echo "$uri"
}

make_base() {
    local mirror rootfs
    mirror=$(debian_mirror) || die "no bookworm mirror in /etc/apt/sources.list*"
    rootfs=$(mktemp -d /var/tmp/pyexec-base.XXXXXX)
    say "debootstrap --variant=minbase bookworm from $mirror (first run only)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
        {
            tail -n 20 "$rootfs.log"
            die "debootstrap failed (log: $rootfs.log)"
        }
    # What the official slim image does too: the same suites as apt here, no
    # apt lists or caches, no docs or man pages now or in later installs.
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
    rm -rf "$rootfs"/usr/share/{man,info,locale}/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/*
    tar -C "$rootfs" --numeric-owner -cf - . |
        podman import --quiet --change 'CMD ["bash"]' \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            - "$base" >/dev/null
    rm -rf "$rootfs" "$rootfs.log"
}

if [[ ${PYEXEC_REBUILD_BASE:-0} == 1 ]] || ! podman image exists "$base"; then
    make_base
fi
say "base image $base: $(podman image inspect --format '{{.Id}}' "$base" | cut -c1-12)"

# Every container gets limits at or below the host's hard limits: podman's
# defaults ask for more, and without CAP_SYS_RESOURCE the runtime cannot raise
# them (runc: "error setting rlimit type 6"). podman runs conmon, and so the
# container's first process, with RLIMIT_NPROC 32768, hence that cap.
nofile=$(ulimit -Hn)
[[ $nofile == unlimited ]] || ((nofile > 65536)) && nofile=65536
nproc=$(ulimit -Hu)
[[ $nproc == unlimited ]] || ((nproc > 32768)) && nproc=32768
ulimits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")

# --- 2. the image ----------------------------------------------------------
# --format docker: the OCI image format has no HEALTHCHECK (buildah drops it).
say "podman build $image"
podman build --pull=never --network host --format docker -t "$image" -f "$repo/Dockerfile" "$repo" >/tmp/pyexec-build.$$.log 2>&1 ||
    {
        tail -n 40 /tmp/pyexec-build.$$.log
        die "podman build failed"
    }
rm -f /tmp/pyexec-build.$$.log
size=$(podman image inspect --format '{{.Size}}' "$image")
say "image $image: $((size / 1000000)) MB"
# No compiler and no build tree in what ships.
podman_q run --rm --network none "${ulimits[@]}" --entrypoint /bin/sh "$image" -c \
    '! command -v gcc cc cmake >/dev/null && [ ! -e /src ] && [ ! -e /build ]' ||
    die "the runtime image holds a compiler or the build tree"

# --- 3-5. each runtime ---------------------------------------------------
free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Wait for pyexecd's "ready" line, or the container's end, up to 90 s.
wait_ready() {
    local name=$1 fd pid rc=0
    exec {fd}< <(exec timeout 90 podman logs -f "$name" 2>&1)
    pid=$!
    grep -q -m1 'ready: [0-9]* workers warm' <&"$fd" || rc=1
    exec {fd}<&-
    kill "$pid" 2>/dev/null || true
    ((rc == 0)) || podman logs "$name" 2>&1 | tail -n 30
    return $rc
}

declare -A verdict
run_one() {
    local rt=$1 name port rc started_at
    name=pyexec-ct-$rt-$$
    port=$(free_port)
    local canary
    canary=canary-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
    local args=(--name "$name" --network host -e PORT="$port" -e PYEXEC_HOST=127.0.0.1 -e SECRET_TOKEN="$canary"
        "${ulimits[@]}")
    [[ $rt == runsc ]] && args+=(--runtime /usr/bin/runsc --runtime-flag network=host)
    say "[$rt] start (port $port, nofile $nofile, nproc $nproc)"
    started_at=$SECONDS
    started+=("$name")
    podman_q run -d "${args[@]}" "$image" >/dev/null || return 1
    wait_ready "$name" || {
        say "[$rt] pyexecd never became ready"
        return 1
    }
    say "[$rt] ready after $((SECONDS - started_at)) s"

    podman healthcheck run "$name" >/dev/null 2>&1 || {
        say "[$rt] HEALTHCHECK failed"
        return 1
    }
    say "[$rt] HEALTHCHECK healthy"
    say "[$rt] /health sandbox: $("$python" "$here/health.py" "http://127.0.0.1:$port")"

    rc=0
    PYEXEC_URL="http://127.0.0.1:$port" PYEXEC_RUNTIME=$rt PYEXEC_CASES=$cases PYEXEC_CANARY=$canary \
        "$python" -m pytest -q -rs -p no:cacheprovider "$here/test_container.py" 2>&1 |
        sed "s/^/[$rt] /" || rc=$?
    ((rc == 0)) || {
        say "[$rt] test suite failed"
        return 1
    }

    "$python" "$here/pid1.py" --url "http://127.0.0.1:$port" --container "$name" 2>&1 |
        sed "s/^/[$rt] /" || rc=$?
    ((rc == 0)) || {
        say "[$rt] PID 1 check failed"
        return 1
    }

    "$python" "$here/sigterm.py" --url "http://127.0.0.1:$port" --container "$name" 2>&1 |
        sed "s/^/[$rt] /" || rc=$?
    ((rc == 0)) || {
        say "[$rt] SIGTERM check failed"
        podman logs "$name" 2>&1 | tail -n 20
        return 1
    }
    podman_q rm -f -t 0 "$name" >/dev/null
    return 0
}

failed=0
for rt in "${runtimes[@]}"; do
    t=$SECONDS
    if run_one "$rt"; then
        verdict[$rt]="PASS ($((SECONDS - t)) s)"
    else
        verdict[$rt]="FAIL ($((SECONDS - t)) s)"
        failed=1
    fi
done

for rt in "${runtimes[@]}"; do
    say "$rt: ${verdict[$rt]}"
done
say "image size: $((size / 1000000)) MB; total $((SECONDS - t0)) s"
exit $failed
