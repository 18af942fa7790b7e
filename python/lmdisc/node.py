"""What lmdisc knows about a peer: :class:`NodeInfo` (the old module's tuple),
:class:`Node` (every field the agent reports) and :class:`Address`."""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

__all__ = ["NodeInfo", "Node", "Address", "dedup"]


class NodeInfo(NamedTuple):
    """A peer as the old ``lmserv.discovery`` module reported it: ``(host, port, info)``.

    ``host`` is an address to connect to: the peer's first IPv4 address if it
    has one, else its first address (an IPv6 link-local address carries its
    interface, ``fe80::1%eth0``), else its host name (``h1.local``) when no
    address was resolved. The old module's ``host`` was an IPv4 address string,
    so ``f"http://{node.host}:{node.port}"`` keeps working for IPv4 peers.
    ``info`` is the peer's ``info`` (TXT ``info=...``, or what the agent's
    policy made of it), ``None`` if it has none.
    """

    host: str
    port: int
    info: str | None


class Address(NamedTuple):
    """One address of a peer: ``address`` (text form), ``family`` (4 or 6) and
    the ``interface`` it was seen on (``"eth0"``)."""

    address: str
    family: int
    interface: str


def _opt_float(v: Any) -> float | None:
    try:
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


@dataclass(frozen=True)
class Node:
    """A peer with every field the agent (or ``lmdisc discover --json``) reports.

    Fields: ``name`` (the DNS-SD instance name, ``"h1:8000"``), ``type``
    (``"_lmserv._tcp"``), ``domain`` (``"local"``), ``host`` (the host name,
    ``"h1.local"``), ``port``, ``info`` (``None`` if absent), ``addresses``
    (a tuple of :class:`Address`, IPv4 and IPv6 on every interface), ``txt``
    (``{key: str | True}``; a bare key is ``True``), ``txt_base64`` (the exact
    bytes, base64, of TXT values that were not valid UTF-8), ``local`` (served
    from this host), ``self`` (announced by this host's agent), ``routable``
    (``None`` when the agent does not report it), ``sources`` (where the peer
    was learned from, e.g. ``("mdns",)``), ``first_seen`` and ``last_seen``
    (Unix times, or ``None``), ``trusted`` and ``signer`` (``None`` unless the
    agent reports them), and ``extra``: any other field of the JSON object, so
    nothing a newer agent sends is lost.

    Nodes are immutable. ``txt``, ``txt_base64`` and ``extra`` are dicts that
    take no part in hashing.
    """

    name: str
    type: str = "_lmserv._tcp"
    domain: str = "local"
    host: str = ""
    port: int = 0
    info: str | None = None
    addresses: tuple[Address, ...] = ()
    txt: dict = field(default_factory=dict, hash=False)
    txt_base64: dict = field(default_factory=dict, hash=False)
    local: bool = False
    self: bool = False
    routable: bool | None = None
    sources: tuple[str, ...] = ()
    first_seen: float | None = None
    last_seen: float | None = None
    trusted: bool | None = None
    signer: str | None = None
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_json(cls, obj: dict) -> "Node":
        """Build a Node from one node object of the agent's JSON (``/v1/peers``,
        ``/v1/services``, ``/v1/events``) or of ``lmdisc discover --json``."""
        if not isinstance(obj, dict):
            raise ValueError(f"a node must be a JSON object, not {type(obj).__name__}")
        addrs = []
        for a in obj.get("addresses") or ():
            if isinstance(a, dict) and a.get("address"):
                try:
                    fam = int(a.get("family") or 0)
                except (TypeError, ValueError):
                    fam = 0
                if fam not in (4, 6):
                    fam = 6 if ":" in str(a["address"]) else 4
                addrs.append(Address(str(a["address"]), fam, str(a.get("interface") or "")))
        try:
            port = int(obj.get("port") or 0)
        except (TypeError, ValueError):
            port = 0
        info = obj.get("info")
        signer = obj.get("signer")
        known = _FIELDS
        return cls(
            name=str(obj.get("name") or ""),
            type=str(obj.get("type") or "_lmserv._tcp"),
            domain=str(obj.get("domain") or "local"),
            host=str(obj.get("host") or ""),
            port=port,
            info=None if info is None else str(info),
            addresses=tuple(addrs),
            txt=dict(obj.get("txt") or {}),
            txt_base64=dict(obj.get("txt_base64") or {}),
            local=bool(obj.get("local", False)),
            self=bool(obj.get("self", False)),
            routable=_opt_bool(obj.get("routable")),
            sources=tuple(str(s) for s in (obj.get("sources") or ())),
            first_seen=_opt_float(obj.get("first_seen")),
            last_seen=_opt_float(obj.get("last_seen")),
            trusted=_opt_bool(obj.get("trusted")),
            signer=None if signer is None else str(signer),
            extra={k: v for k, v in obj.items() if k not in known},
        )

    @classmethod
    def from_node_info(cls, ni: NodeInfo) -> "Node":
        """A minimal Node for a NodeInfo (name ``"HOST:PORT"``, no addresses)."""
        return cls(name=f"{ni.host}:{ni.port}", host=ni.host, port=ni.port, info=ni.info)

    def address(self) -> str:
        """The address :meth:`node_info` uses as ``host``: the first IPv4
        address, else the first address (IPv6 link-local with ``%interface``),
        else the host name."""
        for a in self.addresses:
            if a.family == 4:
                return a.address
        for a in self.addresses:
            addr = a.address
            if a.family == 6 and addr.lower().startswith("fe80") and "%" not in addr and a.interface:
                return f"{addr}%{a.interface}"
            return addr
        return self.host

    def node_info(self) -> NodeInfo:
        """This peer as the old module's ``NodeInfo(host, port, info)`` (see :class:`NodeInfo` for ``host``)."""
        return NodeInfo(self.address(), self.port, self.info)

    def txt_bytes(self, key: str) -> bytes | None:
        """The exact bytes of TXT value ``key`` (``None`` if absent or a bare flag),
        also for values that were not valid UTF-8."""
        if key in self.txt_base64:
            return base64.b64decode(self.txt_base64[key])
        v = self.txt.get(key)
        return v.encode("utf-8") if isinstance(v, str) else None

    def to_json(self) -> dict:
        """The node as the agent's JSON object (the inverse of :meth:`from_json`)."""
        d: dict[str, Any] = {
            "name": self.name, "type": self.type, "domain": self.domain, "host": self.host,
            "port": self.port, "info": self.info,
            "addresses": [a._asdict() for a in self.addresses],
            "txt": dict(self.txt), "local": self.local, "self": self.self,
        }
        if self.txt_base64:
            d["txt_base64"] = dict(self.txt_base64)
        for k in ("routable", "first_seen", "last_seen", "trusted", "signer"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.sources:
            d["sources"] = list(self.sources)
        d.update(self.extra)
        return d


_FIELDS = frozenset(f.name for f in dataclasses.fields(Node)) - {"extra"}


def dedup(items: Iterable) -> list:
    """The items in their first-seen order, without repeats (like the old ``discover_nodes``)."""
    seen = set()
    out = []
    for it in items:
        if it not in seen:
            seen.add(it)
            out.append(it)
    return out
