"""The exception family for bad input.

Every user-facing error (a config key, a trace field, a CLI argument, an array) is raised as a
:class:`BlackwellSimError`, whose message is one line naming *where* (file, dotted key or argument)
and *what* (the bad value). The CLI turns it into one line on stderr and exit status 2.
It subclasses :class:`ValueError`, so library callers may catch either.
"""

from __future__ import annotations


class BlackwellSimError(ValueError):
    """Bad input to blackwell-sim: the message names the source, the key and the value.

    Messages are always one line: line breaks inside user values are escaped.
    """

    def __init__(self, message: str = "") -> None:
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))


class ConfigError(BlackwellSimError):
    """A hardware configuration (preset, YAML file or override) is invalid.

    Attributes:
        source: the file or origin (``"override"``, ``"preset b200"``) the bad value came from.
        key: the dotted key path, e.g. ``"sm.count"``.
        value: the offending value (may be ``None`` for a missing key).
    """

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None,
                 value: object = None) -> None:
        parts = []
        if source:
            parts.append(str(source))
        if key:
            parts.append(f"key '{key}'")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.source = source
        self.key = key
        self.value = value
