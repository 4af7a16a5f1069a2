"""The client address behind trusted reverse proxies.

Forwarding headers are written by whoever sends the request, so they are believed
only when the TCP peer is a configured proxy (``[trace] trusted_proxies``). Then
``X-Real-IP`` (set by the proxy from its own peer) wins; otherwise
``X-Forwarded-For`` is read right to left, skipping trusted proxies, and the first
address that is not one of ours is the client. Everything left of it was sent by
the client and may be forged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from kernel.settings import as_list

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CACHE_LIMIT = 1024


def parse_networks(values: Iterable[str]) -> list[Network]:
    """Parse IPs and CIDRs (``10.0.0.1``, ``10.0.0.0/8``, ``::1``).

    :raises ValueError: naming the first value that is neither
    """
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address or CIDR network") from None
    return networks


def proxy_list(value: Any) -> list[str]:
    """Setting converter for ``[trace] trusted_proxies``: a validated list of strings."""
    items = as_list(value)
    parse_networks(items)
    return items


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP from a header entry (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``), else ``None``."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedProxies:
    """Decides ``request.client_ip``.

    :param networks: the trusted proxy networks; empty means headers are never believed
    """

    def __init__(self, networks: list[Network]) -> None:
        self.networks = networks
        self._peer_verdicts: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def is_trusted(self, address: Any) -> bool:
        """True when ``address`` (an ``ip_address``) lies in a trusted network."""
        return any(address.version == net.version and address in net for net in self.networks)

    def _peer_is_trusted(self, peer: str) -> bool:
        # PERF: peers are few (the proxies themselves); cache the verdict per string.
        verdict = self._peer_verdicts.get(peer)
        if verdict is None:
            address = parse_address(peer)
            verdict = address is not None and self.is_trusted(address)
            if len(self._peer_verdicts) < _CACHE_LIMIT:
                self._peer_verdicts[peer] = verdict
        return verdict

    def client_ip(self, peer: str, real_ip: str | None, forwarded_for: str | None) -> str:
        """The client address for a request from ``peer`` carrying these headers.

        :param peer: the TCP peer (``REMOTE_ADDR``)
        :param real_ip: the ``X-Real-IP`` header, if any
        :param forwarded_for: the ``X-Forwarded-For`` header, if any
        :return: ``peer`` unless ``peer`` is a trusted proxy and a header names the client
        """
        if not self.networks or not (real_ip or forwarded_for) or not self._peer_is_trusted(peer):
            return peer
        if real_ip:
            address = parse_address(real_ip)
            if address is not None:
                return str(address)
        if forwarded_for:
            nearest = peer
            for entry in reversed(forwarded_for.split(",")):
                address = parse_address(entry)
                if address is None:
                    # NOTE: garbage in the chain: stop at the last hop we could verify.
                    return nearest
                nearest = str(address)
                if not self.is_trusted(address):
                    return nearest
            return nearest
        return peer
