#!/usr/bin/python3
"""notify_send.py: one NOTIFY (RFC 1996) to an agent's wide_area.notify port,
for the lab suite test_wide_notify.lua (dnspython, Debian's python3-dnspython).

  notify_send.py ADDR PORT ZONE [--key KEYFILE] [--secret-of KEYFILE] [--serial N]

--key: signed with that BIND key file's key; --secret-of: the name of --key
but the secret of another file (a bad signature).  Without --key: unsigned.
Prints one line: "answer rcode=NAME signed=1" (the answer's TSIG verified by
dnspython) or "no answer" (after 1 s), and exits 0 either way (2: wrong use).
"""
import re
import sys

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.tsigkeyring


def keyfile(path):
    text = open(path).read()
    name = re.search(r'key\s+"([^"]+)"', text).group(1)
    secret = re.search(r'secret\s+"([^"]+)"', text).group(1)
    return name, secret


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    addr, port, zone = argv[1], int(argv[2]), argv[3]
    opts = dict(zip(argv[4::2], argv[5::2]))
    q = dns.message.make_query(zone, dns.rdatatype.SOA)
    q.flags = dns.flags.AA  # first: the opcode is kept in the flags
    q.set_opcode(dns.opcode.NOTIFY)
    if "--serial" in opts:
        soa = dns.rrset.from_text(zone + ".", 60, "IN", "SOA",
                                  "ns.%s. hostmaster.%s. %s 60 30 3600 30" % (zone, zone, opts["--serial"]))
        q.answer.append(soa)
    if "--key" in opts:
        name, secret = keyfile(opts["--key"])
        if "--secret-of" in opts:
            secret = keyfile(opts["--secret-of"])[1]
        q.use_tsig(dns.tsigkeyring.from_text({name: secret}), keyname=name, algorithm=dns.tsig.HMAC_SHA256)
    try:
        r = dns.query.udp(q, addr, port=port, timeout=1)
    except dns.exception.Timeout:
        print("no answer")
        return 0
    print("answer rcode=%s signed=%d opcode=%s" % (dns.rcode.to_text(r.rcode()), 1 if r.had_tsig else 0,
                                                  dns.opcode.to_text(r.opcode())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
