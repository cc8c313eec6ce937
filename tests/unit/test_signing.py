"""The one signing scheme (ADR 019), pinned against HMACs computed here by hand, so a change
to any wire format (webhook, HTTP worker, ingress) fails here first."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import pytest

from awa import callbacks, signing
from awa.errors import ValidationError
from awa.events import webhook

SECRET = "s3cret"
BODY = b'{"job":{"id":1}}'
T = 1_700_000_000


def _hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def test_body_signature_is_v1_over_timestamp_dot_body() -> None:
    expected = _hex(SECRET, f"{T}.".encode() + BODY)
    assert signing.sign_header(SECRET, T, BODY) == f"t={T},v1={expected}"
    assert callbacks.sign_body(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_callback_signature_is_v2_bound_to_the_canonical_id() -> None:
    callback_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    expected = _hex(SECRET, f"{T}.{callback_id}.".encode() + BODY)
    upper = str(callback_id).upper()
    assert callbacks.sign_callback(SECRET, upper, BODY, T) == f"t={T},v2={expected}"


def test_webhook_signature_keeps_its_own_header_format() -> None:
    expected = _hex(SECRET, f"{T}.".encode() + BODY)
    assert webhook.sign(SECRET, str(T), BODY) == f"sha256={expected}"
    assert webhook.SIGNATURE_HEADER == "X-Awa-Signature"
    assert callbacks.SIGNATURE_HEADER == signing.SIGNATURE_HEADER == "Awa-Signature"


def test_verify_accepts_any_rotated_secret_within_the_window() -> None:
    header = signing.sign_header("old", T, BODY)
    assert signing.verify_header(["new", "old"], BODY, header, now=T + 299)
    assert not signing.verify_header(["new"], BODY, header, now=T)
    assert not signing.verify_header("old", BODY, header, now=T + 301)
    assert not signing.verify_header("old", BODY + b" ", header, now=T)


def test_versions_do_not_cross() -> None:
    body_only = signing.sign_header(SECRET, T, BODY)
    bound = signing.sign_header(SECRET, T, BODY, bound_to="abc")
    assert not signing.verify_header(SECRET, BODY, body_only, T, bound_to="abc")
    assert not signing.verify_header(SECRET, BODY, bound, T)
    assert signing.verify_header(SECRET, BODY, bound, T, bound_to="abc")
    assert not signing.verify_header(SECRET, BODY, bound, T, bound_to="abd")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"t={T}",
        "v1=" + "0" * 64,
        f"t=²,v1={'0' * 64}",
        f"t={'9' * 13},v1={'0' * 64}",
        f"t={T},v1=é",
    ],
)
def test_parse_header_never_raises_on_hostile_input(header: str | None) -> None:
    assert signing.parse_header(header, signing.BODY_ONLY, T, 300) == (None, [])
    assert signing.verify_header(SECRET, BODY, header, T) is False


def test_parse_header_collects_every_mac_of_its_version() -> None:
    header = f"t={T}, v1=aa ,v1=bb,v2=cc"
    assert signing.parse_header(header, "v1", T, 300) == (T, ["aa", "bb"])
    assert signing.parse_header(header, "v2", T, 300) == (T, ["cc"])


def test_an_empty_secret_is_refused_not_used() -> None:
    for bad in ("", b"", [], ["ok", ""]):
        with pytest.raises(ValidationError):
            signing.secret_keys(bad)
    assert signing.secret_keys(["a", b"b"]) == [b"a", b"b"]


def test_matches_any_compares_every_pair() -> None:
    assert signing.matches_any(["a", "b"], ["c", "b"])
    assert not signing.matches_any(["a"], [])
    assert not signing.matches_any([], ["a"])


def test_webhook_verify_checks_freshness_and_body() -> None:
    signature = webhook.sign(SECRET, str(T), BODY)
    at = datetime.fromtimestamp(T + 10, UTC)
    assert webhook.verify_signature(SECRET, BODY, str(T), signature, now=at)
    assert not webhook.verify_signature("other", BODY, str(T), signature, now=at)
    assert not webhook.verify_signature(SECRET, BODY, "soon", signature, now=at)
    late = datetime.fromtimestamp(T + 301, UTC)
    assert not webhook.verify_signature(SECRET, BODY, str(T), signature, now=late)
