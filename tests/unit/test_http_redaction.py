"""Keeping an HTTP worker URL's secrets out of what awa shows: URLs, free text, httpx's log."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import httpx
import pytest

from awa.http_redaction import REDACTED, install_log_filter, redact_url, scrub_secrets

UNPARSEABLE = "<unparseable URL: not shown>"


# ------------------------------------------------------------------------------ redact_url


def test_redacted_marker_is_three_stars() -> None:
    assert REDACTED == "***"


def test_redact_url_replaces_the_whole_userinfo_and_keeps_host_and_port() -> None:
    assert redact_url("https://user:pw@example.com/p") == "https://***@example.com/p"
    assert redact_url("https://u:p@example.com:8443/p") == "https://***@example.com:8443/p"
    assert redact_url("https://u:p@[::1]:8080/x") == "https://***@[::1]:8080/x"


def test_redact_url_hides_a_token_passed_as_the_user_name() -> None:
    assert redact_url("https://ghp_abc123@api.example.com/") == "https://***@api.example.com/"


def test_redact_url_splits_userinfo_at_the_last_at_sign() -> None:
    assert redact_url("https://user:p@ss@example.com/") == "https://***@example.com/"


def test_redact_url_leaves_a_url_without_secrets_unchanged() -> None:
    url = "https://example.com/hooks/run?page=2&order=desc#section"
    assert redact_url(url) == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/?token=abc", "https://h/?token=***"),
        ("https://h/?accessToken=abc", "https://h/?accessToken=***"),
        ("https://h/?X-Amz-Signature=abc", "https://h/?X-Amz-Signature=***"),
        ("https://h/?client_secret=abc", "https://h/?client_secret=***"),
        ("https://h/?apiKey=abc", "https://h/?apiKey=***"),
        ("https://h/?api_key=abc", "https://h/?api_key=***"),
        ("https://h/?sig=abc", "https://h/?sig=***"),
        ("https://h/?pwd=abc", "https://h/?pwd=***"),
        ("https://h/?passwd=abc", "https://h/?passwd=***"),
        ("https://h/?db_password=abc", "https://h/?db_password=***"),
        ("https://h/?Authorization=abc", "https://h/?Authorization=***"),
        ("https://h/?oauth=abc", "https://h/?oauth=***"),
        ("https://h/?credential=abc", "https://h/?credential=***"),
        ("https://h/?api%5Fkey=abc", "https://h/?api%5Fkey=***"),
        ("https://h/?access+token=abc", "https://h/?access+token=***"),
    ],
)
def test_redact_url_replaces_values_of_secret_named_query_parameters(
    url: str, expected: str
) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("name", ["page", "keyword", "signed", "author", "tokens", "q"])
def test_redact_url_keeps_values_of_harmless_parameters(name: str) -> None:
    url = f"https://h/?{name}=abc"
    assert redact_url(url) == url


def test_redact_url_keeps_other_parameters_and_separators_byte_for_byte() -> None:
    url = "https://h/p?a=1%20x&token=s3cr%2Ft;page=2&sig=zz&flag&empty="
    assert redact_url(url) == "https://h/p?a=1%20x&token=***;page=2&sig=***&flag&empty="


def test_redact_url_leaves_a_secret_name_without_a_value_alone() -> None:
    assert redact_url("https://h/?token") == "https://h/?token"


def test_redact_url_redacts_secret_parameters_in_the_fragment() -> None:
    assert (
        redact_url("https://h/cb#access_token=abc&state=xyz")
        == "https://h/cb#access_token=***&state=xyz"
    )


def test_redact_url_keeps_a_plain_fragment() -> None:
    assert redact_url("https://h/doc#token") == "https://h/doc#token"


def test_redact_url_redacts_userinfo_query_and_fragment_together() -> None:
    assert (
        redact_url("https://user:pw@example.com/p?a=1&token=abc#key=k&x=1")
        == "https://***@example.com/p?a=1&token=***#key=***&x=1"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",  # unterminated IPv6 literal
        "http://host:bad/",  # non-numeric port
        "http://host:99999/",  # port out of range
        "https://user:pa#ss@host/",  # an unencoded '#' in the password misparses as a port
    ],
)
def test_redact_url_shows_nothing_of_an_unparseable_url(url: str) -> None:
    assert redact_url(url) == UNPARSEABLE


# ---------------------------------------------------------------------------- scrub_secrets

WORKER_URL = "https://alice:s3cr%2Ft@api.example.com/hook?token=tok%2Babc&page=1"


def test_scrub_secrets_removes_the_userinfo_raw_and_decoded() -> None:
    text = "auth as alice with s3cr%2Ft (s3cr/t), full alice:s3cr%2Ft"
    assert scrub_secrets(text, WORKER_URL) == "auth as *** with *** (***), full ***"


def test_scrub_secrets_removes_the_basic_authorization_header_value() -> None:
    basic = base64.b64encode(b"alice:s3cr/t").decode()
    assert basic == "YWxpY2U6czNjci90"
    text = f"echo: Authorization: Basic {basic}"
    assert scrub_secrets(text, WORKER_URL) == "echo: Authorization: Basic ***"


def test_scrub_secrets_removes_secret_parameter_values_raw_and_decoded() -> None:
    text = "bad token tok%2Babc / tok+abc; page 1"
    assert scrub_secrets(text, WORKER_URL) == "bad token *** / ***; page 1"


def test_scrub_secrets_removes_a_plus_encoded_space_in_either_form() -> None:
    url = "https://h/?token=my+secret+value"
    assert scrub_secrets("got my+secret+value", url) == "got ***"
    assert scrub_secrets("got my secret value", url) == "got ***"


def test_scrub_secrets_removes_a_secret_from_the_fragment() -> None:
    assert scrub_secrets("token was abcdef", "https://h/#access_token=abcdef") == "token was ***"


def test_scrub_secrets_redacts_every_url_in_the_text() -> None:
    text = "redirected to https://bob:pw@other.example/x?key=zz&a=1 then stopped"
    assert (
        scrub_secrets(text, "https://h/")
        == "redirected to https://***@other.example/x?key=***&a=1 then stopped"
    )


def test_scrub_secrets_keeps_secrets_shorter_than_three_characters() -> None:
    assert scrub_secrets("x ab y", "https://h/?token=ab") == "x ab y"
    assert scrub_secrets("x abc y", "https://h/?token=abc") == "x *** y"


def test_scrub_secrets_prefers_the_longest_secret_so_none_is_half_replaced() -> None:
    # "abc" (the user) is inside "abcdef:xyz123" (the userinfo): replacing the short one
    # first would leave "***def:***" behind.
    assert scrub_secrets("[abcdef:xyz123]", "https://abcdef:xyz123@h/") == "[***]"


def test_scrub_secrets_leaves_text_alone_when_the_url_holds_no_secret() -> None:
    text = "HTTP 500 from api.example.com: internal error"
    assert scrub_secrets(text, "https://api.example.com/hook?page=1") == text


def test_scrub_secrets_of_an_unparseable_url_only_redacts_urls_in_the_text() -> None:
    assert scrub_secrets("secret abc stays", "http://[::1") == "secret abc stays"


# ----------------------------------------------------------------------- install_log_filter


class Capture(logging.Handler):
    """Keeps the formatted message of every record it handles."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def httpx_logger() -> Iterator[tuple[logging.Logger, Capture]]:
    """httpx's own logger, with no filters at first and a capturing handler; restored after."""
    logger = logging.getLogger("httpx")
    saved_filters = list(logger.filters)
    saved_level, saved_propagate = logger.level, logger.propagate
    for existing in saved_filters:
        logger.removeFilter(existing)
    capture = Capture()
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, capture
    finally:
        logger.removeHandler(capture)
        for added in list(logger.filters):
            logger.removeFilter(added)
        for existing in saved_filters:
            logger.addFilter(existing)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate


SECRET_URL = httpx.URL("https://user:pw@example.com/hook?token=abc&page=2")
REQUEST_LINE = 'HTTP Request: %s %s "%s %d %s"'


def test_httpx_logs_the_full_url_without_the_filter(
    httpx_logger: tuple[logging.Logger, Capture],
) -> None:
    logger, capture = httpx_logger
    logger.info(REQUEST_LINE, "POST", SECRET_URL, "HTTP/1.1", 200, "OK")
    assert capture.messages == [
        'HTTP Request: POST https://user:pw@example.com/hook?token=abc&page=2 "HTTP/1.1 200 OK"'
    ]


def test_install_log_filter_redacts_the_url_in_httpx_request_lines(
    httpx_logger: tuple[logging.Logger, Capture],
) -> None:
    logger, capture = httpx_logger
    install_log_filter()
    logger.info(REQUEST_LINE, "POST", SECRET_URL, "HTTP/1.1", 200, "OK")
    assert capture.messages == [
        'HTTP Request: POST https://***@example.com/hook?token=***&page=2 "HTTP/1.1 200 OK"'
    ]


def test_install_log_filter_is_idempotent(httpx_logger: tuple[logging.Logger, Capture]) -> None:
    logger, capture = httpx_logger
    install_log_filter()
    install_log_filter()
    assert len(logger.filters) == 1
    logger.info("%s", SECRET_URL)
    assert capture.messages == ["https://***@example.com/hook?token=***&page=2"]


def test_install_log_filter_leaves_records_without_an_httpx_url_alone(
    httpx_logger: tuple[logging.Logger, Capture],
) -> None:
    logger, capture = httpx_logger
    install_log_filter()
    # A plain string is not an httpx.URL: the filter only rewrites httpx's own URL argument.
    logger.info("plain %s", "https://user:pw@example.com/")
    logger.info("no args https://user:pw@example.com/")
    logger.info("mapping %(url)s", {"url": "https://user:pw@example.com/"})
    assert capture.messages == [
        "plain https://user:pw@example.com/",
        "no args https://user:pw@example.com/",
        "mapping https://user:pw@example.com/",
    ]


def test_install_log_filter_does_not_touch_other_loggers(
    httpx_logger: tuple[logging.Logger, Capture],
) -> None:
    _, capture = httpx_logger
    install_log_filter()
    other = logging.getLogger("awa.tests.http_redaction.other")
    other.addHandler(capture)
    other.setLevel(logging.DEBUG)
    other.propagate = False
    try:
        other.info("%s", SECRET_URL)
    finally:
        other.removeHandler(capture)
    assert capture.messages == ["https://user:pw@example.com/hook?token=abc&page=2"]
