"""Validated insert templates: the options a batch's jobs share, checked once.

A bulk producer calls ``Client.params(kind, args)`` thousands of times with the same kind
and options; building and validating a whole ``InsertParams`` per job was about a third of
the Python cost of a bulk enqueue (issue 16's profile). ``Templates`` keeps, per distinct
combination of the options that usually repeat (kind, queue, priority, max_attempts, tags,
timeout, unique_scope, with the handler's defaults resolved), one ``InsertParams`` built
and validated the ordinary way. Per job only what usually varies is checked and encoded:
``args``, ``run_at``, ``metadata`` and ``unique_key``, each with the same check and the same
typed error as ``InsertParams.__init__``.

Invalid options are never cached: the caller falls back to ``InsertParams(...)`` with every
value, which raises exactly the error (and the first of several) it always raised. Options
of unusual types (a ``str`` subclass, a bool where an int goes, a tags sequence that is not
a tuple or list) are not cached either, since a cache keyed by equality could take them for
a valid value they merely compare equal to (``True == 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol

from awa.errors import ValidationError
from awa.model import InsertParams, UniqueScope
from awa.validation import check_aware, check_text, encode_json

__all__ = ["HandlerDefaults", "ParamsTemplate", "Templates"]

#: Exact classes whose equal values validate and store alike (``1`` and ``1.0`` seconds are
#: the same timeout); ``bool`` is absent on purpose.
_TIMEOUT_CLASSES = frozenset({int, float, timedelta})
_SCOPE_CLASSES = frozenset({str, UniqueScope})
#: kind, queue, priority, max_attempts, tags, timeout, unique_scope.
_Key = tuple[str, str | None, int, int, tuple[str, ...], Any, Any]
_new = object.__new__
#: The defaults of ``Client.params``, compared by identity (an int here is exactly that int).
_DEFAULT_PRIORITY = 2
_DEFAULT_MAX_ATTEMPTS = 25
_NO_TAGS = ()


class HandlerDefaults(Protocol):
    """What a template takes from the kind's handler (``awa.handlers.HandlerSpec``): the
    queue and timeout that ``None`` stands for."""

    @property
    def queue(self) -> str: ...

    @property
    def timeout(self) -> float | None: ...


class ParamsTemplate:
    """One validated combination of shared options: the fields every job made from it
    starts with. ``owner`` is the handler the defaults were resolved from (or None): the
    template is stale once the kind's handler changes."""

    __slots__ = ("fields", "owner")

    def __init__(self, base: InsertParams, owner: HandlerDefaults | None) -> None:
        self.owner = owner
        self.fields: dict[str, Any] = dict(base.__dict__)


class Templates:
    """The client's templates, keyed by the shared options as passed (bounded: options made
    up per job cannot grow it without limit). ``build`` makes a job from one."""

    LIMIT = 512

    def __init__(self) -> None:
        self._by_key: dict[_Key, ParamsTemplate] = {}
        #: kind → its template with every shared option left at its default (the usual
        #: bulk call, ``params(kind, args)``): found without building a key.
        self._plain: dict[str, ParamsTemplate] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def build(
        self,
        owner: HandlerDefaults | None,
        kind: Any,
        args: Any,
        queue: Any,
        priority: Any,
        run_at: Any,
        max_attempts: Any,
        tags: Any,
        metadata: Any,
        timeout: Any,
        unique_key: Any,
        unique_scope: Any,
    ) -> InsertParams | None:
        """The job ``InsertParams(...)`` would build from these values (the queue and
        timeout ``None`` stand for resolved from ``owner``), or None when its shared options
        cannot be cached or are invalid: then build it with ``InsertParams(...)``, which
        names the problem. Per job, the values that usually vary are checked in
        ``InsertParams.__init__``'s order (``tags`` was checked by value in the template;
        the caller's object is stored, as the constructor stores it). A job never writes
        into the template's fields, only into its own copy, so one job's ``args``,
        ``run_at``, tags object, ``metadata`` or ``unique_key`` cannot reach the next."""
        if (
            queue is None
            and priority is _DEFAULT_PRIORITY
            and max_attempts is _DEFAULT_MAX_ATTEMPTS
            and tags is _NO_TAGS
            and timeout is None
            and unique_scope is UniqueScope.ACTIVE
            and kind.__class__ is str
        ):
            template = self._plain.get(kind)
            if template is None or template.owner is not owner:
                template = self.find(
                    owner, kind, None, priority, max_attempts, tags, None, "active"
                )
                if template is None:
                    return None
                if len(self._plain) >= self.LIMIT:
                    self._plain.clear()
                self._plain[kind] = template
        else:
            template = self.find(
                owner, kind, queue, priority, max_attempts, tags, timeout, unique_scope
            )
            if template is None:
                return None
        if run_at is not None:
            check_aware("run_at", run_at)
        # InsertParams.__init__'s order: the metadata's type, the unique key, then args
        # encoded before metadata, so the same first mistake is named.
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValidationError("metadata", metadata, "expected a JSON object (mapping)")
        if unique_key is not None:
            check_text("unique_key", unique_key, 1000)
        args_json = encode_json("args", {} if args is None else args)
        metadata_json = "{}" if metadata is None else encode_json("metadata", dict(metadata))
        job: InsertParams = _new(InsertParams)
        fields = job.__dict__
        fields.update(template.fields)
        fields["args"] = args
        fields["_args_json"] = args_json
        if run_at is not None:
            fields["run_at"] = run_at
        if tags is not fields["tags"]:
            fields["tags"] = tags
        if metadata is not None:
            fields["metadata"] = metadata
            fields["_metadata_json"] = metadata_json
        if unique_key is not None:
            fields["unique_key"] = unique_key
        return job

    def find(
        self,
        owner: HandlerDefaults | None,
        kind: Any,
        queue: Any,
        priority: Any,
        max_attempts: Any,
        tags: Any,
        timeout: Any,
        unique_scope: Any,
    ) -> ParamsTemplate | None:
        """The template for these options, made (and validated) on first use; None when
        they cannot be cached (unusual types) or are invalid."""
        # Typed before the class checks below, which leave mypy seeing ``object``.
        chosen_timeout: float | timedelta | None = timeout
        scope: UniqueScope | str = unique_scope
        if tags.__class__ is tuple:
            tags_key = tags
        elif tags.__class__ is list:
            tags_key = tuple(tags)
        else:
            return None
        if (
            kind.__class__ is not str
            or (queue is not None and queue.__class__ is not str)
            or priority.__class__ is not int
            or max_attempts.__class__ is not int
            or (timeout is not None and timeout.__class__ not in _TIMEOUT_CLASSES)
            or unique_scope.__class__ not in _SCOPE_CLASSES
            or (tags_key and not all(t.__class__ is str for t in tags_key))
        ):
            return None
        key = (kind, queue, priority, max_attempts, tags_key, timeout, unique_scope)
        found = self._by_key.get(key)
        if found is not None and found.owner is owner:
            return found
        default_queue, default_timeout = (
            ("default", None) if owner is None else (owner.queue, owner.timeout)
        )
        try:
            base = InsertParams(
                kind=kind,
                queue=default_queue if queue is None else queue,
                priority=priority,
                max_attempts=max_attempts,
                tags=tags_key,
                timeout=default_timeout if chosen_timeout is None else chosen_timeout,
                unique_scope=scope,
            )
        except ValidationError:
            return None
        if len(self._by_key) >= self.LIMIT:
            self._by_key.clear()
        made = self._by_key[key] = ParamsTemplate(base, owner)
        return made
