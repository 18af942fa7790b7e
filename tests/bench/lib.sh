# shellcheck shell=bash
# Helpers shared by the bench scripts (sourced).  Everything that sends or
# listens to multicast runs inside a lab (tests/lab/lab); packet captures run
# in the lab's switch namespace, after checking it is not the root one.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/../.." && pwd)
LAB=${LMD_LAB_SCRIPT:-$ROOT/tests/lab/lab}
BIN=${LMDISC_BIN:-$ROOT/build/lmdisc}
PY=/usr/bin/python3          # Debian's: python3-dbus, python3-gi, python3-zeroconf
ADBUS=$BENCH_DIR/avahi_dbus.py

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# f3 X: X with 3 decimals (X may be "", "-", ">N").
f3() { case $1 in ''|-|'>'*|n/a) printf '%s' "${1:--}" ;; *) LC_ALL=C printf '%.3f' "$1" ;; esac; }

# sub A B: A - B (floats), empty if either is empty.
sub() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a - b }'; }

# bg_plain ID HOST LOG CMD...: start CMD on HOST, print its pid.
bg_plain() { local id=$1 h=$2 lg=$3; shift 3; "$LAB" bg "$id" "$h" "$lg" "$@"; }

# bg_ts ID HOST LOG CMD...: like bg_plain, every output line prefixed with the
# wall-clock time at which it was read ("UNIXTIME line"); the first line is
# "UNIXTIME __start__", written just before CMD starts.  CMD is line
# buffered through stdbuf.  Stop it with kill_group LOG.
bg_ts() {
    local id=$1 h=$2 lg=$3
    shift 3
    # shellcheck disable=SC2016
    "$LAB" bg "$id" "$h" "$lg" bash -c \
        'printf "%s __start__\n" "$EPOCHREALTIME"; stdbuf -oL -eL "$@" 2>&1 | while IFS= read -r l; do printf "%s %s\n" "$EPOCHREALTIME" "$l"; done' \
        bench-ts "$@"
}

# kill_group LOG [SIG]: signal the whole process group of a `lab bg` command.
kill_group() {
    local cmd wrap
    [ -s "$1.pid" ] || return 0
    read -r cmd wrap < "$1.pid"
    kill "-${2:-TERM}" -- "-$wrap" 2>/dev/null || kill "-${2:-TERM}" "$cmd" 2>/dev/null || true
}

# cmd_pid LOG: pid of the command started by `lab bg`.
cmd_pid() { local c w; read -r c w < "$1.pid"; echo "$c"; }

# wait_line FILE ERE TIMEOUT_S: print the first line of FILE matching ERE,
# polling every 50 ms; fails after TIMEOUT_S.
wait_line() {
    local f=$1 re=$2 end l
    end=$(awk -v n="$EPOCHREALTIME" -v t="$3" 'BEGIN { printf "%.0f", (n + t) * 1000 }')
    while :; do
        if [ -f "$f" ] && l=$(grep -m1 -E -- "$re" "$f"); then
            printf '%s\n' "$l"
            return 0
        fi
        [ "$(( ${EPOCHREALTIME/./} / 1000 ))" -lt "$end" ] || return 1
        sleep 0.05
    done
}

# wait_count FILE ERE N TIMEOUT_S: until FILE has N lines matching ERE.
wait_count() {
    local f=$1 re=$2 n=$3 end c
    end=$(awk -v n="$EPOCHREALTIME" -v t="$4" 'BEGIN { printf "%.0f", (n + t) * 1000 }')
    while :; do
        c=0
        [ -f "$f" ] && c=$(grep -c -E -- "$re" "$f")
        [ "$c" -ge "$n" ] && return 0
        [ "$(( ${EPOCHREALTIME/./} / 1000 ))" -lt "$end" ] || return 1
        sleep 0.05
    done
}

# first_ts FILE ERE: timestamp (field 1) of the first matching line, or "".
first_ts() { [ -f "$1" ] && grep -m1 -E -- "$2" "$1" | awk '{ print $1 }'; }

# field_ts FILE ERE FIELD: field FIELD of the first matching line.
field_ts() { [ -f "$1" ] && grep -m1 -E -- "$2" "$1" | awk -v f="$3" '{ print $f }'; }

# cap_start ID PCAP: capture mDNS on the lab's bridge (switch namespace, never
# the root one); sets CAP_PID.
cap_start() {
    local ns=lmd-$1-sw
    ip netns list | awk '{ print $1 }' | grep -qx "$ns" || die "no switch namespace $ns"
    # shellcheck disable=SC2016
    ip netns exec "$ns" sh -c '
        me=$(readlink /proc/self/ns/net); root=$(readlink /proc/1/ns/net 2>/dev/null || readlink /proc/2/ns/net)
        if [ -z "$root" ] || [ "$me" = "$root" ]; then echo "bench: refusing to capture in the root netns" >&2; exit 125; fi
        exec tcpdump -Z root -i br0 -n -U -s 0 -w "$1" udp port 5353' bench-cap "$2" 2>"$2.err" &
    CAP_PID=$!
    local i
    for i in $(seq 1 100); do
        grep -q "listening on" "$2.err" 2>/dev/null && return 0
        kill -0 "$CAP_PID" 2>/dev/null || die "tcpdump failed: $(cat "$2.err")"
        sleep 0.05
    done
    die "tcpdump did not start: $(cat "$2.err")"
}

cap_stop() {
    [ -n "${CAP_PID:-}" ] || return 0
    kill -INT "$CAP_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do kill -0 "$CAP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CAP_PID" 2>/dev/null || true
    wait "$CAP_PID" 2>/dev/null || true
    CAP_PID=
}

# median of the numbers on stdin ("" if none); non-numbers are skipped.
median() {
    grep -E '^[0-9.]+$' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) printf "%.6f", a[(NR + 1) / 2]; else printf "%.6f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# minmax of numbers on stdin: "MIN-MAX"
minmax() {
    grep -E '^[0-9.]+$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.1f-%.1f", lo, hi }'
}

# snapshot_bin DIR: copy the lmdisc binary to DIR and point BIN at the copy,
# so that a rebuild of build/ by someone else during a long run cannot
# change (or break) the binary under test.  Sets BIN_INFO.
snapshot_bin() {
    [ -x "$BIN" ] || die "no lmdisc binary at $BIN (cmake --build build first, or set LMDISC_BIN)"
    local bt
    bt=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$(dirname "$BIN")/CMakeCache.txt" 2>/dev/null || true)
    BIN_INFO="$(basename "$BIN") built $(date -u -r "$BIN" '+%Y-%m-%d %H:%M:%S UTC')${bt:+ ($bt)}, sha256 $(sha256sum "$BIN" | cut -c1-12)"
    mkdir -p "$1"
    cp "$BIN" "$1/lmdisc"
    BIN=$1/lmdisc
}
