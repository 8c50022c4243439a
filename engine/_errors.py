"""Engine errors, under the same root as the spec errors.

::

    StatepollError
    ├── SpecError(ValueError) / UnknownSpecError(LookupError)   (statemachines)
    ├── EngineClosedError(RuntimeError)
    ├── CredentialError(LookupError)      the spec's credential variable is unset
    ├── InputError(ValueError)            a missing or unknown job input
    ├── CancelError(ValueError)           the lifecycle cannot cancel, or not from this state
    ├── WaitTimeout(TimeoutError)         wait(timeout=) expired; the job goes on
    └── JobError                          .job, .last_state
        ├── JobFailed                     outcome failure / cancelled / partial
        ├── JobTimedOut(TimeoutError)     the spec's attempts or deadline ran out; the job ended
        └── RemoteError                   .kind: transport | status | protocol | illegal_transition,
                                          auth (no token, or no signature)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from statemachines import StatepollError

if TYPE_CHECKING:
    from ._core.state import JobRef

__all__ = [
    "CancelError",
    "CredentialError",
    "EngineClosedError",
    "InputError",
    "JobError",
    "JobFailed",
    "JobTimedOut",
    "RemoteError",
    "WaitTimeout",
]

RemoteKind = Literal[
    "transport",
    "status",
    "protocol",
    "illegal_transition",
    "unknown_state",
    "submission",
    "auth",
]


class EngineClosedError(StatepollError, RuntimeError):
    """The engine was used after it was closed (or before it was opened)."""


class CredentialError(StatepollError, LookupError):
    """A credential the spec names cannot be had: its variable is unset, or its signer missing."""

    def __init__(self, service: str, env: str, message: str | None = None) -> None:
        """Name the service and the variable to set (``message`` says more when given)."""
        self.service = service
        self.env = env
        super().__init__(
            message or f"{service}: set the environment variable {env} to your API key"
        )

    def __str__(self) -> str:
        """Return the message without LookupError's quoting."""
        return str(self.args[0])


class InputError(StatepollError, ValueError):
    """A job input is missing, unknown or of the wrong type."""


class CancelError(StatepollError, ValueError):
    """The job cannot be cancelled (no cancel in the spec, or a state it cannot leave)."""


class JobError(StatepollError):
    """A job ended without reaching a success state."""

    def __init__(
        self, message: str, *, job: JobRef | None = None, last_state: str | None = None
    ) -> None:
        """Carry the job and the last state it was in."""
        super().__init__(message)
        self.job = job
        self.last_state = last_state


class JobFailed(JobError):  # noqa: N818 - the name is the contract (STYLE 3.4)
    """The job reached a terminal state whose outcome is not success."""

    def __init__(
        self,
        message: str,
        *,
        outcome: str,
        job: JobRef | None = None,
        last_state: str | None = None,
    ) -> None:
        """Carry the outcome (failure, cancelled or partial)."""
        super().__init__(message, job=job, last_state=last_state)
        self.outcome = outcome


class JobTimedOut(JobError, TimeoutError):  # noqa: N818 - the name is the contract (STYLE 3.4)
    """The job ran out of attempts or time (by its spec) before reaching a terminal state."""


class WaitTimeout(StatepollError, TimeoutError):  # noqa: N818 - pairs with JobTimedOut
    """A caller's ``wait(timeout=)`` expired before the job ended.

    The job is not stopped: it goes on by its spec (deadline, attempts) until it
    ends, is cancelled, or is forgotten. ``state`` is where it was when the
    wait gave up.
    """

    def __init__(self, message: str, *, job: JobRef, state: str) -> None:
        """Carry the job and the state it was in."""
        super().__init__(message)
        self.job = job
        self.state = state


class RemoteError(JobError):
    """The service answered something the spec does not accept, or did not answer.

    ``kind`` classifies it: ``transport`` (connection, timeout), ``status``
    (a fatal HTTP status; ``code``/``message`` are the service's own),
    ``protocol`` (malformed body, foreign link, body too large),
    ``illegal_transition`` / ``unknown_state`` (by a ``fail`` policy),
    ``submission`` (a submission cut off by a crash that could not be found
    again: ``code`` says ``not_submitted`` or ``unresolved``), ``auth`` (the
    credential could not be had: a token endpoint's refusal, with its
    ``code`` such as ``invalid_client``, or a request that could not be signed).
    Messages name the host and path, never the full URL: query strings can carry
    tokens.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: RemoteKind,
        status: int | None = None,
        code: str | None = None,
        remote_message: str | None = None,
        job: JobRef | None = None,
        last_state: str | None = None,
        retryable: bool = True,
    ) -> None:
        """Carry the classification and the service's own error code and message."""
        super().__init__(message, job=job, last_state=last_state)
        self.kind: RemoteKind = kind
        #: False when retrying cannot help (a link to a foreign host stays foreign).
        self.retryable = retryable
        self.status = status
        self.code = code
        self.remote_message = remote_message
