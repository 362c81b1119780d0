"""User-facing error types.

Every error a user can cause by bad input is a :class:`MixpeError`; the CLI
prints its one-line message and exits with code 2, never a traceback.
"""

from __future__ import annotations

import re


class MixpeError(Exception):
    """Base class for errors caused by user input (config, trace, arguments)."""


class ConfigError(MixpeError, ValueError):
    """A config value is missing, unknown, malformed or out of range.

    Parameters
    ----------
    message:
        What is wrong, naming the field.
    source:
        File name the value came from, if any.
    line:
        1-based line in ``source``, if known.
    """

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        self.reason = message
        where = ""
        if source:
            where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(f"{where}{message}")


class MappingError(MixpeError):
    """An operation cannot be mapped onto the hardware (e.g. no tile fits a buffer).

    ``field`` is the design field at fault (read from a message that starts
    ``field 'NAME':`` when not given), so a caller that knows the design file
    can add its file and line.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        if field is None:
            found = re.match(r"field '([^']+)'", message)
            field = found.group(1) if found else None
        self.field = field


class TraceError(MixpeError):
    """A row of an operator or request trace is malformed (message names file:line:field)."""


class FitError(MixpeError):
    """A model does not fit the memory of the chips it is given (message names bytes needed and available)."""


def enum_choice(enum_cls, value, field: str, noun: str):
    """``value`` as a member of ``enum_cls``, or a ConfigError naming ``field`` and the choices."""
    try:
        return enum_cls(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum_cls)
        raise ConfigError(f"field '{field}': unknown {noun} {value!r} (choose from: {choices})") from None
