"""Client IP: forwarding headers believed only from trusted proxies."""

from __future__ import annotations

import pytest

from butterfly_trace.client_ip import TrustedProxies, parse_address, parse_networks
from kernel import ConfigError
from kernel.testing import Client


def proxies(*networks: str) -> TrustedProxies:
    return TrustedProxies(parse_networks(networks))


def test_no_trusted_proxies_means_headers_are_ignored():
    assert proxies().client_ip("10.0.0.1", "1.2.3.4", "5.6.7.8") == "10.0.0.1"


def test_untrusted_peer_cannot_spoof():
    trusted = proxies("10.0.0.0/8")
    assert trusted.client_ip("203.0.113.9", "1.2.3.4", "5.6.7.8") == "203.0.113.9"


def test_x_real_ip_from_a_trusted_proxy():
    assert proxies("10.0.0.1").client_ip("10.0.0.1", "198.51.100.7", "6.6.6.6") == "198.51.100.7"


def test_invalid_x_real_ip_falls_back_to_forwarded_for():
    assert proxies("10.0.0.1").client_ip("10.0.0.1", "not-an-ip", "198.51.100.7") == "198.51.100.7"


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("6.6.6.6, 198.51.100.7", "198.51.100.7"),  # left entries are client-written: ignored
        ("6.6.6.6, 198.51.100.7, 10.1.2.3", "198.51.100.7"),  # skip our own inner proxy
        ("10.9.9.9, 10.1.2.3", "10.9.9.9"),  # every hop trusted: the left-most
        ("garbage, 198.51.100.7", "198.51.100.7"),
        ("198.51.100.7, garbage", "10.0.0.1"),  # unparsable hop: stop at the verified peer
        ("198.51.100.7:5555", "198.51.100.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::2", "2001:db8::2"),
    ],
)
def test_forwarded_for_right_most_untrusted(forwarded_for, client):
    assert proxies("10.0.0.0/8").client_ip("10.0.0.1", None, forwarded_for) == client


def test_ipv6_proxy_network():
    assert proxies("fd00::/8").client_ip("fd00::5", None, "2001:db8::9") == "2001:db8::9"
    assert proxies("fd00::/8").client_ip("2001:db8::5", None, "2001:db8::9") == "2001:db8::5"


def test_parse_address_rejects_names():
    assert parse_address("example.com") is None
    assert str(parse_address(" 192.0.2.1 ")) == "192.0.2.1"


def test_through_the_kernel(trace_kernel, read_json_lines):
    kernel = trace_kernel({"trace.trusted_proxies": ["10.0.0.0/8", "127.0.0.1"]})
    client = Client(kernel)
    client.get("/raw", remote_addr="10.0.0.2", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7"})
    client.get("/raw", remote_addr="127.0.0.1", headers={"X-Real-IP": "198.51.100.8"})
    client.get("/raw", remote_addr="203.0.113.5", headers={"X-Real-IP": "198.51.100.9"})
    client.get("/raw", remote_addr="10.0.0.2")
    ips = [line["ip"] for line in read_json_lines(kernel.log_dir / "acc.log")]
    assert ips == ["198.51.100.7", "198.51.100.8", "203.0.113.5", "10.0.0.2"]


def test_default_trusts_nobody(trace_kernel, read_json_lines):
    kernel = trace_kernel()
    Client(kernel).get("/raw", remote_addr="127.0.0.1", headers={"X-Real-IP": "1.2.3.4", "X-Forwarded-For": "1.2.3.4"})
    assert read_json_lines(kernel.log_dir / "acc.log")[-1]["ip"] == "127.0.0.1"


@pytest.mark.parametrize("bad", [["10.0.0.0/33"], ["nonsense"], "10.0.0.1, example.com"])
def test_bad_trusted_proxies_is_a_config_error(trace_kernel, bad):
    with pytest.raises(ConfigError, match=r"\[trace\] trusted_proxies"):
        trace_kernel({"trace.trusted_proxies": bad})
