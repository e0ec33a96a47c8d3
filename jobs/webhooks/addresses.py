"""Which URLs a webhook may reach: http or https, on an address on the public internet,
unless the operator lists the host or its network in TENSORFLEET_WEBHOOK_ALLOWED_HOSTS.

A hook is a request the platform makes on a user's behalf, from inside its network:
without this check a user could make it call the metadata service (169.254.169.254),
the database or Redis. The check runs when the URL is registered (a 400) and again at
every delivery, on the addresses the name resolves to then: a name that resolved to a
public address at registration and to 10.0.0.5 later (DNS rebinding) is refused, and
the request goes to the address that was checked, not to a second lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """The URL may not be called; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (a name, or an address without brackets)
    port: int
    path: str  # path and query


def url_parse(url: str) -> Target:
    """The parts of a webhook URL, or UrlRefused for one that is not a plain http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL may not hold a user name or password; the secret signs each delivery")
    if parts.fragment:
        raise UrlRefused("the URL may not hold a #fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def _allowed() -> tuple[set[str], list]:
    names, networks = set(), []
    for entry in settings.TENSORFLEET_WEBHOOK_ALLOWED_HOSTS:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return names, networks


def address_refusal(address: Address) -> str | None:
    """Why a hook may not call ``address``, or None when it may (the allow list aside)."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:  # shared (100.64/10), documentation, benchmarking ranges
        return "a reserved address"
    return None


def resolve(target: Target) -> list[Address]:
    """Every address ``target.host`` resolves to (an address resolves to itself)."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"cannot resolve {target.host}: {exc}") from None
    found: list[Address] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise UrlRefused(f"{target.host} resolves to no address")
    return found


def addresses_check(target: Target) -> list[Address]:
    """The addresses to connect to, every one of them allowed; UrlRefused naming the
    first that is not (one bad address refuses the name: a client could pick it)."""
    names, networks = _allowed()
    addresses = resolve(target)
    if target.host.lower().rstrip(".") in names:
        return addresses
    for address in addresses:
        problem = address_refusal(address)
        if problem and not any(address in network for network in networks):
            shown = "" if str(address) == target.host else f" ({address})"
            raise UrlRefused(
                f"{target.host}{shown} is {problem}; hooks may only call public addresses "
                "unless the operator allows the host in TENSORFLEET_WEBHOOK_ALLOWED_HOSTS"
            )
    return addresses


def url_check(url: str) -> Target:
    """A URL a hook may be registered with (UrlRefused otherwise)."""
    target = url_parse(url)
    addresses_check(target)
    return target
