"""The error tree of sarathi-sdk.

Every error the SDK raises on purpose derives from :class:`SarathiError`::

    SarathiError
    ├── ConfigError (ValueError)          bad EngineConfig option; raised before the engine starts
    │   └── PluginError                   a plugin that cannot be loaded or has an unknown hook
    ├── InvalidRequestError (ValueError)  bad prompt or SamplingParams; raised before admission
    ├── EngineStateError (RuntimeError)   lifecycle misuse: not started, closed, reopened, other event loop
    ├── EngineOverloadedError             max_waiting_requests reached; nothing was admitted, retry later
    ├── RequestError                      one request failed; only its stream ends
    └── EngineDeadError (RuntimeError)    the step loop failed; every open stream ends with it

This module imports nothing from the rest of the package.
"""

from __future__ import annotations


class SarathiError(Exception):
    """Root of every error the SDK raises on purpose."""


class ConfigError(SarathiError, ValueError):
    """An engine option is unknown or out of range."""


class PluginError(ConfigError):
    """A plugin cannot be loaded, or implements a hook that has no specification."""


class InvalidRequestError(SarathiError, ValueError):
    """A prompt or its sampling parameters cannot be served; nothing was admitted."""


class EngineStateError(SarathiError, RuntimeError):
    """The engine was used outside its lifecycle (before start, after close, reopened) or from an event
    loop other than the one it was started in."""


class EngineOverloadedError(SarathiError):
    """`max_waiting_requests` requests are already waiting; this one was refused before admission and
    nothing else changed. Retry later (an HTTP server answers 503)."""


class RequestError(SarathiError):
    """One request failed while running; other requests are unaffected."""


class EngineDeadError(SarathiError, RuntimeError):
    """The step loop failed; every open stream ends with this error and the engine accepts no more work."""
