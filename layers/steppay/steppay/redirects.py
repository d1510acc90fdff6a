"""Allow-listing of the success/error/cancel URLs handed to StepPay's pay page.

StepPay sends the shopper's browser to these URLs, so an unchecked value is an open redirect
that carries our order codes to someone else's site. A URL passes only when it is a plain
absolute URL whose host is on the merchant's allow-list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from steppay.problems import RedirectNotAllowed

MAX_REDIRECT_URL_LENGTH = 2048
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})

# A DNS host name in its ASCII form; no percent-escapes, no userinfo, no brackets.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
# Printable ASCII without space, backslash, quotes or angle brackets.
_SAFE_URL_CHARS = re.compile(r"^[!#$%&()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+$")


def parse_allowed_hosts(value: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise an allow-list given as `a.com,*.b.com` or an iterable of hosts."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(h.strip().lower().rstrip(".") for h in items if h.strip())


def host_is_allowed(host: str, allowed_hosts: Iterable[str]) -> bool:
    for pattern in allowed_hosts:
        if pattern.startswith("*."):
            suffix = pattern[1:]  # ".example.com": a wildcard never matches the bare domain
            if host.endswith(suffix) and len(host) > len(suffix):
                return True
        elif host == pattern:
            return True
    return False


def check_redirect_url(url: str, *, allowed_hosts: Iterable[str], stage: str, field: str) -> str:
    """Return `url` unchanged when StepPay may send the shopper there, else raise RedirectNotAllowed.

    Rules: at most 2048 characters of printable ASCII (no spaces, backslashes, control or
    non-ASCII characters, which browsers "repair" differently), scheme https (http only for
    localhost/127.0.0.1 on the local stage), no userinfo, no fragment (StepPay appends its query
    parameters), and a host that is on the allow-list exactly or by a `*.` wildcard.
    """
    allowed = parse_allowed_hosts(allowed_hosts)
    if not url or len(url) > MAX_REDIRECT_URL_LENGTH or not _SAFE_URL_CHARS.match(url):
        raise RedirectNotAllowed(field, "must be a plain absolute URL")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError as exc:
        raise RedirectNotAllowed(field, "is not a valid URL") from exc
    scheme = parts.scheme.lower()
    netloc = parts.netloc
    if "@" in netloc or not netloc:
        raise RedirectNotAllowed(field, "must be an absolute URL without user information")
    if parts.fragment or "#" in url:
        raise RedirectNotAllowed(field, "must not carry a fragment")
    host = (parts.hostname or "").lower()
    if not _HOSTNAME.match(host):
        raise RedirectNotAllowed(field, "has an invalid host")
    if port is not None and not 0 < port < 65536:
        raise RedirectNotAllowed(field, "has an invalid port")
    if scheme == "https":
        pass
    elif scheme == "http" and stage == "local" and host in LOCAL_HOSTS:
        pass
    else:
        raise RedirectNotAllowed(field, "must use https")
    if not host_is_allowed(host, allowed):
        raise RedirectNotAllowed(field, "points to a host that is not allowed")
    return url
