"""Actions: one unit of durable work, with retry, timeout and watcher polling."""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from orbits_nb.core.errors import InvalidArgument, OrbitsError
from orbits_nb.core.masking import mask
from orbits_nb.core.serde import check_json, masked

if TYPE_CHECKING:
    from orbits_nb.core.ports import Executor


class _InProgress:
    """Returned by ``main()``/``watch()`` to say: not done yet, poll ``watch()``."""

    _instance: ClassVar[_InProgress | None] = None

    def __new__(cls) -> _InProgress:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "IN_PROGRESS"

    def __reduce__(self) -> str:
        return "IN_PROGRESS"


IN_PROGRESS = _InProgress()


#: Errors a retry cannot fix, never retried whatever the policy: orbits_nb's own
#: (timeouts, bad arguments, a step that aborted) and code that does not import,
#: except those whose class says ``transient = True`` (e.g. a lost Dask worker).
NEVER_RETRIED: tuple[type[BaseException], ...] = (OrbitsError, ImportError)


def _number(owner: str, value: Any) -> float:
    """``value`` as a float, refusing bools, strings and NaN with a message naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise InvalidArgument(f"{owner} must be a number, got {value!r} "
                              f"({type(value).__name__})")
    return float(value)


@dataclass(frozen=True)
class Retry:
    """Retry policy of an action class.

    ``attempts`` counts the first try; the n-th retry waits
    ``min(delay * backoff ** (n - 1), max_delay)`` seconds. Only exceptions that are
    instances of ``on`` (a class or a tuple of classes) are retried; ImportError and
    orbits_nb's own errors (e.g. a timeout) never are.

    >>> Retry(attempts=3, delay=1.0, backoff=2.0).delay_for(2)
    2.0
    >>> Retry(on=ConnectionError).on
    (<class 'ConnectionError'>,)
    """

    attempts: int = 1
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        attempts = self.attempts
        if (isinstance(attempts, bool) or not isinstance(attempts, numbers.Integral)
                or attempts < 1):
            raise InvalidArgument(
                f"Retry(attempts={attempts!r}) needs a whole number of attempts >= 1 "
                "(the first try counts)")
        delay = _number("Retry(delay=...)", self.delay)
        backoff = _number("Retry(backoff=...)", self.backoff)
        max_delay = _number("Retry(max_delay=...)", self.max_delay)
        if not (0 <= delay < math.inf) or not (1 <= backoff < math.inf) or max_delay < 0:
            raise InvalidArgument(
                f"Retry needs 0 <= delay, 1 <= backoff (both finite) and max_delay >= 0; "
                f"got delay={self.delay!r}, backoff={self.backoff!r}, "
                f"max_delay={self.max_delay!r}")
        for name, value in (("attempts", int(attempts)), ("delay", delay),
                            ("backoff", backoff), ("max_delay", max_delay),
                            ("on", _exception_classes(self.on))):
            object.__setattr__(self, name, value)

    def delay_for(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1-based)."""
        try:
            grown = self.delay * self.backoff ** (retry_number - 1)
        except OverflowError:
            grown = math.inf
        return float(min(grown, self.max_delay))

    def retries(self, error: BaseException) -> bool:
        """Whether this policy retries ``error``."""
        return isinstance(error, self.on) and (not isinstance(error, NEVER_RETRIED)
                                               or getattr(error, "transient", False) is True)


def _exception_classes(on: Any) -> tuple[type[BaseException], ...]:
    classes = (on,) if isinstance(on, type) else on
    if isinstance(classes, (tuple, list)) and all(
            isinstance(c, type) and issubclass(c, BaseException) for c in classes):
        return tuple(classes)
    raise InvalidArgument(
        f"Retry(on={on!r}) needs an exception class or a tuple of them, e.g. "
        "on=(ConnectionError, TimeoutError)")


def check_class(cls: type[Action]) -> None:
    """Refuse wrong class-level ``retry``, ``timeout`` or ``poll_interval`` values,
    naming the class and the attribute."""
    name = cls.__qualname__
    if not isinstance(cls.retry, Retry):
        raise InvalidArgument(f"{name}.retry must be an orbits_nb.Retry(...), got "
                              f"{cls.retry!r}")
    timeout = cls.timeout
    if timeout is not None and (_number(f"{name}.timeout", timeout) <= 0):
        raise InvalidArgument(f"{name}.timeout must be a number of seconds > 0, or None "
                              f"for no limit; got {timeout!r}")
    poll = _number(f"{name}.poll_interval", cls.poll_interval)
    if not 0 <= poll < math.inf:
        raise InvalidArgument(f"{name}.poll_interval must be a finite number of seconds "
                              f">= 0; got {cls.poll_interval!r}")


class Action:
    """One unit of work. Subclass it and implement ``main()`` (and ``watch()``).

    Constructor keyword arguments are the persisted arguments (``self.args``); they
    must be JSON-serializable. ``main()`` returns a JSON-serializable result, or
    :data:`IN_PROGRESS`, after which ``watch()`` is polled every ``poll_interval``
    seconds until it returns a result or raises. ``self.bag`` is a persisted dict for
    scratch state between ``main`` and ``watch``. Both may be plain functions (run in a
    worker thread) or ``async def``.

    >>> class Greet(Action):
    ...     def main(self):
    ...         return f"hello {self.args['who']}"
    >>> Greet(who="acme").args
    {'who': 'acme'}
    """

    retry: ClassVar[Retry] = Retry()
    #: Seconds the whole step (main, retries and watching) may take; None for no limit.
    timeout: ClassVar[float | None] = None
    #: Seconds between two ``watch()`` calls.
    poll_interval: ClassVar[float] = 5.0

    args: dict[str, Any]
    bag: dict[str, Any]
    #: Where ``main``/``watch`` run unless ``do(..., executor=)`` says otherwise; on a
    #: workflow, where its steps run. None: the run's, else the engine's executor.
    executor: Executor | None = None
    #: Set by the engine while the action runs.
    run_id: str
    step: str
    attempt: int
    env: dict[str, str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_class(cls)

    def __init__(self, **args: Any) -> None:
        name = type(self).__name__
        self.args = {
            key: check_json(value, f"argument {key!r} of {name}")
            for key, value in args.items()
        }
        self.bag = {}
        self.run_id = ""
        self.step = ""
        self.attempt = 0
        self.env = {}

    @property
    def engine(self) -> Any:
        """The engine executing this action (only while it runs in this process)."""
        engine = self.__dict__.get("_engine")
        if engine is None:
            raise RuntimeError(f"{type(self).__name__} is not running in an engine here")
        return engine

    def __getstate__(self) -> dict[str, Any]:
        # The engine (threads, the store) stays behind when an action is pickled.
        state = dict(self.__dict__)
        state.pop("_engine", None)
        return state

    def main(self) -> Any:
        """Do the work; return a result or :data:`IN_PROGRESS`."""
        raise NotImplementedError(f"{type(self).__name__} must define main()")

    def watch(self) -> Any:
        """Poll work started by ``main()``; return a result, IN_PROGRESS, or raise."""
        raise NotImplementedError(
            f"{type(self).__name__}.main() returned IN_PROGRESS but the class defines "
            "no watch() to poll"
        )

    @property
    def log(self) -> logging.Logger:
        """A logger whose records are captured in the step's logs."""
        return logging.getLogger(f"orbits_nb.action.{type(self).__name__}")

    @classmethod
    def type_name(cls) -> str:
        """``module:QualName``, the importable name recorded in the store."""
        return f"{cls.__module__}:{cls.__qualname__}"

    def describe(self) -> str:
        """``Name(arg=value, ...)`` with secrets (and known secret values) masked."""
        shown = ", ".join(f"{k}={v!r}" for k, v in masked(self.args).items())
        return mask(f"{type(self).__name__}({shown})")

    def __repr__(self) -> str:
        return self.describe()
