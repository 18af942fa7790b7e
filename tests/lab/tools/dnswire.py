"""Shared by the lab's stand-in DNS relays (tc_relay.py, xfr_cut.py): DNS
messages over TCP (RFC 1035 4.2.2: a two-byte length, then the message)."""


def log(msg):
    print(msg, flush=True)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def read_msg(sock):
    n = int.from_bytes(read_exact(sock, 2), "big")
    return read_exact(sock, n)
