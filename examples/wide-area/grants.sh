#!/bin/sh
# Print the update grants of one lmdisc host for BIND (update-policy lines)
# or Knot (one ACL rule): the names its agent writes in a DNS-SD domain, in
# the domain itself and in each of its shards.
#
#   grants.sh bind|knot DOMAIN SHARDS HOST [SERVICE...]
#
#   DOMAIN   sd.example.org
#   SHARDS   how many shards the domain lists (s0 .. s(SHARDS-1)); 0: none
#   HOST     the host's DNS label (wide_area.host; default its short name):
#            its key is HOST-key, its configured service is named HOST
#   SERVICE  services registered through its agent (announce_self(...,
#            name=SERVICE)), each a name of its own
#
# Each host gets its names in every shard, not only in the one its name
# hashes to: shards can then be added to the zone without touching grants
# (the agents move by themselves within half a lease).  The liveness zone's
# grant (TXT below HOST._live.DOMAIN) is printed too.
#
# Example (BIND, 4 shards, gpu1 and a service it registers):
#   sh grants.sh bind sd.example.org 4 gpu1 gpu1-llama
set -eu
[ $# -ge 4 ] || { echo "usage: $0 bind|knot DOMAIN SHARDS HOST [SERVICE...]" >&2; exit 2; }
kind=$1 domain=${2%.} shards=$3 host=$4
shift 4
case $shards in ''|*[!0-9]*) echo "$0: SHARDS must be a number (0: none)" >&2; exit 2 ;; esac
type=_lmserv._tcp
places=""                      # the domain, then each shard (relative to the domain)
i=0
while [ "$i" -lt "$shards" ]; do places="$places s$i"; i=$((i + 1)); done

case $kind in
bind)
    for p in "" $places; do
        at=${p:+$p.}$domain
        echo "grant $host-key name $type.$at. PTR;"
        for inst in "$host" "$@"; do echo "grant $host-key name $inst.$type.$at. SRV TXT;"; done
    done
    echo "grant $host-key name $host.$domain. A AAAA;"
    echo "// in zone \"_live.$domain\":"
    echo "grant $host-key subdomain $host._live.$domain. TXT;"
    ;;
knot)
    names="$type"
    for inst in "$host" "$@"; do names="$names, $inst.$type"; done
    for p in $places; do
        names="$names, $type.$p"
        for inst in "$host" "$@"; do names="$names, $inst.$type.$p"; done
    done
    names="$names, $host"
    cat <<EOF
  - id: $host-update
    key: $host-key
    action: update
    update-owner: name
    update-owner-match: equal
    update-owner-name: [ $names ]
    update-type: [ PTR, SRV, TXT, A, AAAA ]
  - id: $host-live                     # in zone _live.$domain
    key: $host-key
    action: update
    update-owner: name
    update-owner-match: sub
    update-owner-name: [ $host ]
    update-type: [ TXT ]
EOF
    ;;
*) echo "$0: bind or knot, not '$kind'" >&2; exit 2 ;;
esac
