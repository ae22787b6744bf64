"""How DOCKER_CMD becomes a process's argv, the same on every runtime.

The hosted service runs no shell of its own: its documentation tells users to write
``sh -c "..."`` for variables to expand, and its samples write ``echo from node #${FRAME_ID}!``
without a shell. So the text goes through two steps, done here in one pass:

1. ``${NAME}`` is replaced by NAME's value in the instance's environment (its constants and
   instance variables), wherever it appears, inside quotes too: the replacement comes first,
   as the hosted service replaces ``${CONSTANT}`` in its commands and regexes. A name the
   environment does not have is left as written, so that a ``sh -c '... ${i} ...'`` keeps its
   own shell variables; ``$NAME`` without braces is never replaced (the shell in ``sh -c``
   does that); ``\\${NAME}`` gives a literal ``${NAME}``.
2. The result is split into words as a POSIX shell splits a simple command: blanks separate
   words, single quotes keep everything literally, double quotes keep blanks and honour the
   backslash before ``\\ " $ ` newline``, a backslash outside quotes keeps the next character.
   No pipes, redirections, globbing or comments: ``#``, ``|``, ``>`` are ordinary characters.

A replaced value is literal text (its quotes and backslashes are not parsed again); outside
quotes it is split on blanks, as the shell splits an unquoted expansion.
"""

import re
from collections.abc import Mapping

from calor.domain.errors import BadRequest

BLANKS = " \t\n"
# constants' keys may use letters, digits, "_", "-" and "." (the hosted API's rule)
_NAME = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")
_ESCAPED_IN_DOUBLE_QUOTES = '\\"$`\n'


class CommandError(BadRequest):
    """The command cannot be split into words (an unterminated quote, a dangling backslash)."""


class _Words:
    """Words being built; ``word is None`` between words, so that ``""`` is an empty word."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.word: str | None = None

    def add(self, text: str) -> None:
        self.word = (self.word or "") + text

    def touch(self) -> None:
        """A quote started a word, even if nothing follows inside it."""
        if self.word is None:
            self.word = ""

    def end(self) -> None:
        if self.word is not None:
            self.done.append(self.word)
            self.word = None

    def add_split(self, value: str) -> None:
        """An unquoted replacement: its blanks separate words."""
        parts = re.split(f"[{BLANKS}]+", value)
        for i, part in enumerate(parts):
            if i:
                self.end()
            if part:
                self.add(part)


def split_command(text: str, env: Mapping[str, str], what: str = "DOCKER_CMD") -> list[str]:
    """The argv DOCKER_CMD stands for in an instance with environment ``env``; ``[]`` for a
    blank command. Raises CommandError, with what to fix, for text that cannot be split."""
    words = _Words()
    i, n = 0, len(text)
    quote: str | None = None  # the quote we are inside, if any
    opened = 0  # where that quote opened, for the error message
    while i < n:
        c = text[i]
        if c == "\\" and text.startswith("${", i + 1):
            words.add("${")  # an escaped substitution: literal, in every context
            i += 3
            continue
        if c == "$" and (m := _NAME.match(text, i)):
            value = env.get(m.group(1))
            if value is None:
                words.add(m.group(0))
            elif quote is None:
                words.add_split(value)
            else:
                words.add(value)
            i = m.end()
            continue
        if quote == "'":
            if c == "'":
                quote = None
            else:
                words.add(c)
        elif quote == '"':
            if c == '"':
                quote = None
            elif c == "\\" and i + 1 < n and text[i + 1] in _ESCAPED_IN_DOUBLE_QUOTES:
                i += 1
                if text[i] != "\n":  # backslash-newline joins lines
                    words.add(text[i])
            else:
                words.add(c)
        elif c in BLANKS:
            words.end()
        elif c in "'\"":
            quote, opened = c, i
            words.touch()
        elif c == "\\":
            if i + 1 == n:
                raise CommandError(
                    f"{what} ends with a backslash that escapes nothing; remove it or write \\\\"
                )
            i += 1
            if text[i] != "\n":
                words.add(text[i])
        else:
            words.add(c)
        i += 1
    if quote is not None:
        kind = "single" if quote == "'" else "double"
        raise CommandError(
            f"{what} has an unterminated {kind} quote (opened at character {opened + 1}): "
            f"close it, or escape it with a backslash"
        )
    words.end()
    return words.done


def check_command(text: str, what: str = "DOCKER_CMD") -> None:
    """At submit: refuse a command no instance could run (values do not change the split's
    validity, since a replaced value is literal text)."""
    split_command(text, {}, what)
