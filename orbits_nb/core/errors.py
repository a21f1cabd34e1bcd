"""One exception hierarchy, rooted in :class:`OrbitsError`.

Every error carries structured fields (run id, step, cause) and a message that tells
the user what to do next. All of them pickle cleanly so they can travel back from a
subprocess executor. Messages never carry a known secret value: it is masked when the
error is created (so ``str(step_failed)`` is safe to send in an alert).
"""

from __future__ import annotations

from typing import Any

from orbits_nb.core.masking import mask


class OrbitsError(Exception):
    """Base class of every error raised by orbits_nb.

    Two optional fields say what to do next: ``hint`` (in Python; it ends the message)
    and ``cli_hint`` (the same from the command line, which ``orbits-nb`` shows
    instead), e.g. ``hint="run.reset('deploy')"``, ``cli_hint="orbits-nb reset RUN
    deploy"``. Both travel with the error, into the store too; an error whose
    ``cause`` has them (a StepFailed) carries them as well.
    """

    hint: str | None = None
    cli_hint: str | None = None

    def __init__(self, message: str, **fields: Any) -> None:
        message = mask(message)
        cause = fields.get("cause")
        if isinstance(cause, OrbitsError):
            for name in ("hint", "cli_hint"):
                if fields.get(name) is None and getattr(cause, name) is not None:
                    fields[name] = getattr(cause, name)
        super().__init__(message)
        self.message = message
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.fields))

    def __str__(self) -> str:
        if self.hint and self.hint not in self.message:
            return f"{self.message}; {self.hint}"
        return self.message


def _rebuild(cls: type[OrbitsError], message: str, fields: dict[str, Any]) -> OrbitsError:
    err = cls.__new__(cls)
    OrbitsError.__init__(err, message, **fields)
    return err


class InvalidArgument(OrbitsError, TypeError):
    """An action argument, result or bag value is not JSON-serializable."""


class MissingDependency(OrbitsError, ImportError):
    """An optional package a feature needs is not installed.

    Raised at first use (never when ``orbits_nb`` is imported), with the command that
    installs it. Fields: ``package`` (what is missing), ``extra`` (the orbits_nb extra
    that brings it, or None), ``feature`` (what needed it). Never retried: installing
    is the user's move.
    """


class StepFailed(OrbitsError):
    """A workflow step failed after its retries; raised inside ``define()``.

    Fields: ``run_id``, ``step`` (the step key), ``cause`` (a :class:`RemoteError`
    or the original exception), ``attempts``.
    """

    run_id: str
    step: str
    cause: BaseException | None
    attempts: int

    def __init__(
        self, run_id: str, step: str, cause: BaseException | None, attempts: int
    ) -> None:
        kind = type(cause).__name__ if cause is not None else "error"
        if isinstance(cause, RemoteError):
            kind = cause.type_name
        super().__init__(
            f"step {step!r} failed after {attempts} attempt(s): {kind}: {cause} "
            f"(run {run_id})",
            run_id=run_id,
            step=step,
            cause=cause,
            attempts=attempts,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (StepFailed, (self.run_id, self.step, self.cause, self.attempts))


class StepTimeout(OrbitsError):
    """An action ran (or watched) longer than its class-level ``timeout``."""


class NondeterminismError(OrbitsError):
    """The workflow code no longer matches the recorded history of the run."""


class DuplicateStep(OrbitsError):
    """A step key was requested twice while the first call is still in flight."""


class ActionNotFound(OrbitsError):
    """A recorded action or workflow class cannot be imported when resuming."""


class RunNotFound(OrbitsError):
    """No run with the given id exists in the store."""


class RunOwned(OrbitsError):
    """Another live process owns the run (see the ``owner`` field)."""


class RunCancelled(OrbitsError):
    """The run was cancelled."""


class StoreError(OrbitsError):
    """The state file is unusable: corrupted, foreign, newer schema, or busy."""


class StoreBusy(StoreError):
    """The state file stayed locked by another process for too long."""


class RemoteError(OrbitsError):
    """An exception from another process that could not be sent back as itself.

    Keeps the original type name, message and formatted traceback.
    """

    type_name: str
    traceback: str

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(message, type_name=type_name, traceback=mask(traceback))

    def __reduce__(self) -> tuple[Any, ...]:
        return (RemoteError, (self.type_name, self.message, self.traceback))


class Aborted(RemoteError):
    """User code raised a BaseException that is not an error (``sys.exit()``,
    ``KeyboardInterrupt``, a class of its own): it fails the step or the run instead of
    stopping the engine. Keeps the original type name, message and traceback.
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (Aborted, (self.type_name, self.message, self.traceback))
