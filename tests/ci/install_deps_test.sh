#!/usr/bin/env bash
# .ci/install-deps: who installs, and what it says when nobody can. Runs the
# real script with PATH holding only what it needs plus stand-ins: dpkg-query
# (says every package is installed, or none), apt-get and sudo (record how they
# were called and exit 0). Nothing is installed; no network is used. The
# normal-user cases run as uid 65534 when the test runs as root.
set -euo pipefail
script=$(cd "$(dirname "$0")/../.." && pwd)/.ci/install-deps
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
log=$work/calls
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# $work/<name>/: a PATH of its own. Every one has bash, grep and cat.
make_path() {
    local dir=$work/$1 tool
    mkdir -p "$dir"
    for tool in bash grep cat; do
        ln -s "$(command -v "$tool")" "$dir/$tool"
    done
}
stand_in() { # dir name body
    printf '#!/bin/sh\n%s\n' "$3" >"$work/$1/$2"
    chmod 755 "$work/$1/$2"
}
for p in installed missing missing_sudo; do
    make_path "$p"
    stand_in "$p" apt-get "echo \"apt-get \$*\" >>$log"
done
stand_in installed dpkg-query "printf 'install ok installed'"
stand_in missing dpkg-query "exit 1"
stand_in missing_sudo dpkg-query "exit 1"
stand_in missing_sudo sudo "echo \"sudo \$*\" >>$log"
: >"$log"
chmod 666 "$log"

# run AS PATHNAME: the script's exit status; its stderr in $work/err.
run() {
    local as=$1 path=$work/$2 rc=0
    : >"$log"
    if [[ $as == user && $EUID == 0 ]]; then
        setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/env -i PATH="$path" "$script" all \
            2>"$work/err" || rc=$?
    else
        /usr/bin/env -i PATH="$path" "$script" all 2>"$work/err" || rc=$?
    fi
    return $rc
}

if [[ $EUID == 0 ]]; then
    run root installed || fail "root, all installed: exit $?"
    [[ ! -s $log ]] || fail "root, all installed: called $(cat "$log")"

    run root missing || fail "root without sudo, packages missing: exit $? ($(cat "$work/err"))"
    grep -q '^apt-get update' "$log" || fail "root: no apt-get update: $(cat "$log")"
    grep -q '^apt-get install .* gcc .*runsc' "$log" || fail "root: no apt-get install: $(cat "$log")"
    echo "ok: as root without sudo: nothing to do when installed; apt-get itself when not"
else
    echo "skip: the root cases (this test runs as uid $EUID)"
fi

run user installed || fail "normal user, all installed: exit $? ($(cat "$work/err"))"
[[ ! -s $log ]] || fail "normal user, all installed: called $(cat "$log")"

rc=0
run user missing || rc=$?
((rc != 0)) || fail "normal user without sudo, packages missing: exit 0"
[[ ! -s $log ]] || fail "normal user without sudo: called $(cat "$log")"
grep -q 'missing: gcc .* runsc' "$work/err" && grep -q 'needs root' "$work/err" &&
    grep -q "Run this script as root" "$work/err" ||
    fail "normal user without sudo: unclear message: $(cat "$work/err")"

run user missing_sudo || fail "normal user with sudo: exit $? ($(cat "$work/err"))"
grep -qx "sudo -- $script all" "$log" || fail "normal user with sudo: not re-run under sudo: $(cat "$log")"
grep -q '^apt-get' "$log" && fail "normal user with sudo: apt-get run without sudo"
echo "ok: as a normal user: nothing to do when installed; sudo when there, else a clear message:"
run user missing || sed 's/^/    /' "$work/err"
