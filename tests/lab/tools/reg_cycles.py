#!/usr/bin/env python3
"""Register, change and withdraw services through lmdisc's API in cycles
(tests/lab/test_attack_publish.lua: memory over many registrations).  Run
on a lab host; bounded in count.

  reg_cycles.py SOCK TAG COUNT

COUNT cycles on one keep-alive connection: PUT /v1/services/TAG-i?ttl=60
(i = cycle % 8, so at most 8 are held at once), PATCH its TXT, DELETE it.
Prints "cycles COUNT errors E" (E: answers other than 2xx) when done.
"""
import http.client
import socket
import sys


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("lmdisc", timeout=20)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(self.path)


def main(argv):
    sock, tag, count = argv[1], argv[2], int(argv[3])
    c = UnixHTTP(sock)
    errors = 0

    def call(method, path, body=None):
        nonlocal c, errors
        for _ in range(2):  # once more on a fresh connection if the agent closed it
            try:
                c.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
                r = c.getresponse()
                r.read()
                if r.status // 100 != 2:
                    errors += 1
                    print("%s %s: %d" % (method, path, r.status), flush=True)
                return
            except (http.client.HTTPException, OSError):
                c.close()
                c = UnixHTTP(sock)
        errors += 1

    for k in range(count):
        name = "%s-%d" % (tag, k % 8)
        call("PUT", "/v1/services/%s?ttl=60" % name, '{"port": %d, "txt": {"v": "%d"}}' % (9000 + k % 8, k))
        call("PATCH", "/v1/services/%s" % name, '{"txt": {"v": "x%d", "pad": "%s"}}' % (k, "p" * (k % 200)))
        call("DELETE", "/v1/services/%s" % name)
    print("cycles", count, "errors", errors, flush=True)


if __name__ == "__main__":
    main(sys.argv)
