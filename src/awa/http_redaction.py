"""Keeping the secrets an HTTP worker's URL may carry out of everything awa reports.

An HTTP worker's URL may hold credentials (userinfo, ``?token=``, ``X-Amz-Signature``...).
Anywhere awa shows the URL or a text the remote wrote (error records, ``job.failed``
events, ``repr``, httpx's request log line) goes through here first, so the redaction
rules live in one place apart from the request logic of ``awa.http_worker``.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Final
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

import httpx

__all__ = ["REDACTED", "install_log_filter", "redact_url", "scrub_secrets"]

#: Shown in place of a secret.
REDACTED: Final = "***"

# Query parameter names (lower-cased, split on non-alphanumerics) that carry secrets: a part
# equal to one of the words, or ending in one of the suffixes ("accessToken",
# "X-Amz-Signature", "client_secret", "apiKey"). Over-redacting a harmless parameter costs a
# less useful error message; under-redacting leaks a credential into every error record.
_SECRET_WORDS: Final = frozenset(
    {"sig", "pwd", "passwd", "apikey", "credential", "credentials", "auth", "authorization"}
)
_SECRET_SUFFIXES: Final = ("token", "key", "secret", "password", "signature", "auth")
# Secret values shorter than this are not scrubbed from free text (they would mangle it
# and are no secret anyway); they are still redacted from the URL itself.
_MIN_SCRUBBED: Final = 3
_URL_IN_TEXT: Final = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """``url`` with its userinfo and the values of secret-looking query (and fragment)
    parameters replaced by ``***``, for error messages, records and logs.

    The whole userinfo goes, user name included: tokens are often passed as the user
    (``https://<token>@host``). Text that does not parse as a URL is not shown at all: a
    malformed URL's secrets cannot be located reliably.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port: a bad one may be a password misparsed
    except ValueError:
        return "<unparseable URL: not shown>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            _redact_params(parts.query),
            _redact_params(parts.fragment),
        )
    )


def scrub_secrets(text: str, url: str) -> str:
    """``text`` with every URL in it redacted and every secret of ``url`` (userinfo parts,
    secret-looking parameter values, raw and decoded) replaced by ``***``: for texts awa
    does not word itself (a response body, a transport error)."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m[0]), text)
    for secret in sorted(_url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class _RedactHttpxUrls(logging.Filter):
    """Redacts the URL httpx passes to its ``HTTP Request: ...`` log line (an ``httpx.URL``
    argument, printed in full, userinfo and query included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


_LOG_FILTER: Final = _RedactHttpxUrls()


def install_log_filter() -> None:
    """Attach the redacting filter to httpx's logger, once (idempotent: ``addFilter``
    ignores a filter already attached). It redacts every httpx URL logged in the process,
    not only awa's: a side effect that can only hide secrets."""
    logging.getLogger("httpx").addFilter(_LOG_FILTER)


def _is_secret_name(name: str) -> bool:
    parts = [p for p in re.split(r"[^a-z0-9]+", unquote_plus(name).lower()) if p]
    return any(p in _SECRET_WORDS or p.endswith(_SECRET_SUFFIXES) for p in parts)


def _redact_params(query: str) -> str:
    """A ``name=value&...`` string with secret-looking values replaced; other text kept
    byte for byte (no re-encoding, so the rest of the URL reads as configured)."""
    if not query:
        return query
    pieces = []
    for piece in re.split(r"([&;])", query):
        name, eq, _ = piece.partition("=")
        pieces.append(f"{name}={REDACTED}" if eq and _is_secret_name(name) else piece)
    return "".join(pieces)


def _url_secrets(url: str) -> set[str]:
    """The secret values in ``url`` as they may appear in other text: raw and decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    found: list[str] = []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, _, password = userinfo.partition(":")
        found += [userinfo, user, password]
        # httpx sends the userinfo as ``Authorization: Basic``; a remote echoing its
        # request headers would echo this.
        basic = f"{unquote(user)}:{unquote(password)}".encode()
        found.append(base64.b64encode(basic).decode())
    for params in (parts.query, parts.fragment):
        for piece in re.split(r"[&;]", params):
            name, eq, value = piece.partition("=")
            if eq and _is_secret_name(name):
                found.append(value)
    decoded = {d for v in found for d in (v, unquote(v), unquote_plus(v))}
    return {v for v in decoded if len(v) >= _MIN_SCRUBBED}
