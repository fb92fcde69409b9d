"""Who is really connecting, when chargers come through a load balancer.

Behind a load balancer every charger seems to connect from the balancer's
address, so the failed-upgrade rate limiter would block them all together and
logs would name the balancer. For peers listed in ``CSMS_TRUSTED_PROXIES``
(addresses or networks, comma-separated), and only for them:

* ``X-Forwarded-For`` is read right to left, skipping trusted proxies; the
  first address that is not one is the client (a client cannot spoof what a
  trusted proxy appended);
* ``X-Forwarded-Proto: https`` says the charger's side of the connection was
  TLS (security profiles 2 and 3 require it);
* with ``CSMS_TLS_CLIENT_CERT_HEADER`` set, that header carries the subject of
  the client certificate the proxy verified (RFC 2253, e.g. nginx
  ``$ssl_client_s_dn``: ``CN=CP-1,O=Example``); its CN is the certificate name
  security profile 3 checks. Configure the proxy to set the header only for a
  verified certificate and to overwrite any the client sent.

Headers from any other peer are ignored. TCP balancers use the PROXY protocol
instead (:mod:`csms.security.proxy_protocol`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.0.2.7"`` -> networks; raises ValueError naming a bad entry."""
    networks = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {part!r}") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:4711"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ClientView:
    """The connecting client as the proxies in front of us saw it."""

    host: str
    tls: bool | None = None  # None: as our own socket says
    certificate_names: frozenset[str] | None = None  # None: as our own socket says


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()
    certificate_header: str | None = None

    def trusts(self, host: str) -> bool:
        address = _address(host)
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def client(
        self,
        peer_host: str,
        forwarded_for: Iterable[str] = (),
        forwarded_proto: str | None = None,
        certificate_subject: str | None = None,
    ) -> ClientView:
        """The real client behind ``peer_host``, if ``peer_host`` is a trusted proxy."""
        if not self.trusts(peer_host):
            return ClientView(peer_host)
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        host = peer_host
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage: stop at the last address a trusted proxy vouched for
            host = str(address)
            if not self.trusts(host):
                break
        tls = None if forwarded_proto is None else forwarded_proto.strip().lower() == "https"
        names = None
        if self.certificate_header is not None:
            names = subject_names(certificate_subject or "")
            tls = True if names else tls
        return ClientView(host, tls, names)


def subject_names(subject: str) -> frozenset[str]:
    """The CN values of an RFC 2253 (or OpenSSL ``/CN=...``) subject string."""
    names = set()
    for part in subject.replace("/", ",").split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().upper() == "CN" and value.strip():
            names.add(value.strip())
    return frozenset(names)
