"""Checks and encodings of the values a caller hands awa: durations, JSON, text, datetimes.

A leaf below the model so the model, the handler outcomes, callbacks and HTTP workers all
validate a value the same way, before any SQL runs: a bad value raises a typed
``ValidationError`` naming the field, and no partial row can exist.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from awa.errors import ValidationError

__all__ = [
    "args_item",
    "check_aware",
    "check_int",
    "check_text",
    "encode_json",
    "to_seconds",
    "valid_utf8",
]

_T = TypeVar("_T")


def to_seconds(
    name: str, value: float | timedelta | None, *, allow_zero: bool = False
) -> float | None:
    """Normalise a duration given as seconds or ``timedelta``; reject negatives and NaN."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(name, value, "expected seconds (int/float) or a timedelta")
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise ValidationError(name, value, "must be a finite number of seconds") from None
    if not math.isfinite(seconds):
        raise ValidationError(name, value, "must be a finite number of seconds")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValidationError(
            name, value, "must be > 0 seconds" if not allow_zero else "must be >= 0"
        )
    if seconds > 366 * 86400 * 100:
        raise ValidationError(name, value, "must be at most 100 years")
    return seconds


def _structured(value: Any) -> Any:
    """A dataclass instance or a pydantic model as the JSON object it stands for, so typed
    args (``awa.typed_args``) are stored as plain JSON wherever a value is encoded: args,
    cron args, progress, callback payloads. A dataclass gives its ``__init__`` fields (what
    its reader takes back); a model its JSON-mode dump. Anything else stays refused."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
    dump = getattr(value, "model_dump", None)
    if callable(dump) and callable(getattr(type(value), "model_validate", None)):
        return dump(mode="json")
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(
    allow_nan=False, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=_structured
)


def _c_encoder() -> Any:
    """The C encoder behind ``_ENCODER.encode``, built once (``encode`` builds one per call,
    most of its cost for a small value). Without circular-reference markers (a shared
    markers dict would be left dirty by a failed call): a cycle ends in RecursionError, and
    any failure is re-run through ``_ENCODER`` for its exact error. None when the C
    accelerator is missing or does not produce what ``_ENCODER`` does."""
    make = getattr(json.encoder, "c_make_encoder", None)
    basestring = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or basestring is None:
        return None
    try:
        encode = make(None, _ENCODER.default, basestring, None, ":", ",", True, False, False)
        sample = {"b": [1, 2.5, None, True, "é\n"], "a": {"x": -0.0}, "": ""}
        if "".join(encode(sample, 0)) != _ENCODER.encode(sample):
            return None
    except Exception:  # a different C API: use the slow path
        return None
    return encode


_encode_fast = _c_encoder()


def encode_json(name: str, value: Any) -> str:
    """Serialise ``value`` as strict JSON text PostgreSQL's ``jsonb`` will accept.

    Keys are sorted (``jsonb`` keeps its own key order anyway) because sorting is the cheap
    way to refuse objects whose keys mix strings with numbers, bools or None: JSON turns
    every key into a string, so ``{1: "a", "1": "b"}`` would silently lose a value.
    Keys of one non-string kind (``{1: "a", 2: "b"}``) cannot collide and are stored as
    strings, which is what the returned ``Job`` then shows."""
    if isinstance(value, dict) and not value:
        return "{}"  # no metadata, no args: the common case on the bulk path
    if _encode_fast is not None:
        try:
            text = "".join(_encode_fast(value, 0))
        except Exception:  # the full encoder below names the problem
            pass
        else:  # the checks below, without their errors: those come from the full path
            if (text.isascii() or valid_utf8(text)) and (
                "\\u0000" not in text or not _ESCAPED_NUL.search(text)
            ):
                if "e+" not in text and len(text) <= JSONB_MAX_BYTES // 4:
                    return text  # what _storable returns for it, without the call (bulk path)
                return _storable(name, value, text)
    try:
        text = _ENCODER.encode(value)
        if not text.isascii():  # O(1) flag check; only non-ASCII text can hold a surrogate
            text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(name, value, "contains a lone surrogate (not valid UTF-8)") from None
    except TypeError as exc:
        if "not supported between instances" in str(exc):
            raise ValidationError(
                name,
                value,
                "object keys must be all strings, or all of one other type (JSON turns "
                "every key into a string, so mixed keys can collide)",
            ) from None
        raise ValidationError(name, value, f"not JSON-serialisable: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise ValidationError(name, value, f"not JSON-serialisable: {exc}") from None
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise ValidationError(name, value, "JSON text may not contain NUL (\\u0000) characters")
    return _storable(name, value, text)


#: jsonb's limit on the elements of one value (PostgreSQL refuses more with SQLSTATE 54000).
JSONB_MAX_BYTES = 0x0FFFFFFF


def _storable(name: str, value: Any, text: str) -> str:
    """``text`` as jsonb will give it back: large floats spelt out, oversized refused.

    jsonb keeps numbers as ``numeric`` and prints them without an exponent, so ``1e+300``
    would come back as 301 digits with no decimal point, which JSON readers take for an
    int (``10**300 != 1e300`` in Python). Spelt out with a ``.0`` it keeps a scale, comes
    back as ``1000…0.0`` and reads as the same float. Negative exponents need nothing: their
    digits already carry a decimal point."""
    if len(text) > JSONB_MAX_BYTES // 4 and len(text.encode()) > JSONB_MAX_BYTES:
        raise ValidationError(
            name, f"<{len(text)} characters of JSON>", "larger than jsonb stores (255 MB)"
        )
    if "e+" in text:
        text = _FLOAT_OR_STRING.sub(_spelt_out, text)
    return text


#: A JSON string (left alone) or a number with a positive exponent (group 1).
_FLOAT_OR_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def _spelt_out(match: re.Match[str]) -> str:
    number = match.group(1)
    if number is None:
        return match.group(0)
    return format(Decimal(number), "f") + ".0"


# An escaped NUL: "\u0000" preceded by an even number of backslashes (an odd number means
# the backslash itself was escaped and the text is a literal "\\u0000", which is fine).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def valid_utf8(value: str) -> bool:
    """False for text holding a lone surrogate, which PostgreSQL (UTF-8) cannot store."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(name: str, value: Any, max_length: int) -> str:
    """A non-empty, storable string of at most ``max_length`` characters (kind, queue...)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(name, value, "expected a non-empty string")
    if not valid_utf8(value):
        raise ValidationError(name, value, "contains a lone surrogate (not valid UTF-8)")
    if len(value) > max_length:
        raise ValidationError(name, value, f"at most {max_length} characters")
    if "\x00" in value:
        raise ValidationError(name, value, "may not contain NUL characters")
    return value


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """An int (a bool is refused: ``True`` is not a priority) within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(name, value, "expected an integer")
    if not low <= value <= high:
        raise ValidationError(name, value, f"expected {low}..{high}")
    return value


_MIN_UTC = datetime.min.replace(tzinfo=UTC)
_MAX_UTC = datetime.max.replace(tzinfo=UTC)


def check_aware(name: str, value: Any) -> datetime:
    """Accept only timezone-aware datetimes: a naive one has no single meaning across hosts."""
    if not isinstance(value, datetime):
        raise ValidationError(name, value, "expected a datetime")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValidationError(name, value, "naive datetime; pass a timezone-aware datetime")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(name, value, "outside years 1..9999 in UTC") from None
    if utc in (_MIN_UTC, _MAX_UTC):
        # asyncpg stores these as -infinity/infinity, which come back naive and break
        # every computation on the job.
        raise ValidationError(name, value, "datetime.min/max cannot be stored")
    return value


def args_item(index: int, item: Any, build: Callable[[Any], _T]) -> _T:
    """``build(item)`` for item ``index`` of a batch; an error about its args names the
    item (``args[3]``), one about anything else passes unchanged."""
    try:
        return build(item)
    except ValidationError as exc:
        if exc.field != "args" and not exc.field.startswith(("args.", "args[")):
            raise
        raise ValidationError(f"args[{index}]{exc.field[4:]}", exc.value, exc.reason) from None
