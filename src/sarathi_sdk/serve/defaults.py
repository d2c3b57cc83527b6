"""The server's defaults, shared by the app, its guard, the runner and the command."""

from __future__ import annotations

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""Largest request body the server reads; a larger one is a 413."""
DEFAULT_CHAT_MAX_TOKENS = 512
"""Tokens a chat completion may generate when the request gives no `max_tokens`."""
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
"""Seconds open requests may take to finish once a shutdown begins, before they are aborted."""
