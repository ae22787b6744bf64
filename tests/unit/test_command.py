"""DOCKER_CMD to argv: ${NAME} replacement, then POSIX word splitting (domain/command.py)."""

import pytest

from calor.domain.command import CommandError, check_command, split_command

ENV = {
    "INSTANCE_ID": "3",
    "FRAME_ID": "3",
    "ARGS": "-a  -b",
    "SPACED": "two words",
    "EMPTY": "",
    "QUOTES": 'it\'s "x" \\n',
    "MY-CONST.v1": "dotted",
}

CASES = [
    # plain words and blanks
    ("echo hello world!", ["echo", "hello", "world!"]),
    ("  echo \t a\n b  ", ["echo", "a", "b"]),
    ("", []),
    ("   ", []),
    # the hosted SDK's README: no shell, '#' is no comment, ${} is replaced
    ("echo hello world from node #${FRAME_ID}!", ["echo", "hello", "world", "from", "node", "#3!"]),
    # sh -c "...": the inner shell gets its script intact, $i included
    (
        'sh -c "for i in 1 2 3; do echo line$i; done"',
        ["sh", "-c", "for i in 1 2 3; do echo line$i; done"],
    ),
    ("sh -c 'echo $INSTANCE_ID | tr 3 x'", ["sh", "-c", "echo $INSTANCE_ID | tr 3 x"]),
    # ${NAME} is replaced everywhere, inside quotes too
    ('echo "${INSTANCE_ID}"', ["echo", "3"]),
    ("echo '${INSTANCE_ID}'", ["echo", "3"]),
    ("out${INSTANCE_ID}.png", ["out3.png"]),
    ("echo ${MY-CONST.v1}", ["echo", "dotted"]),
    # unknown names and unbraced $ stay as written, for the shell of sh -c
    ("sh -c 'for f in a b; do echo ${f}; done'", ["sh", "-c", "for f in a b; do echo ${f}; done"]),
    ("echo $INSTANCE_ID $ ${ ${} ${1 x", ["echo", "$INSTANCE_ID", "$", "${", "${}", "${1", "x"]),
    # an escaped ${ is literal
    ("echo \\${INSTANCE_ID}", ["echo", "${INSTANCE_ID}"]),
    ('echo "\\${INSTANCE_ID}"', ["echo", "${INSTANCE_ID}"]),
    # unquoted values are split on blanks, quoted ones are not; values are never re-parsed
    ("prog ${ARGS}", ["prog", "-a", "-b"]),
    ('prog "${ARGS}"', ["prog", "-a  -b"]),
    ("cat ${SPACED}.txt", ["cat", "two", "words.txt"]),
    ("prog ${EMPTY} x", ["prog", "x"]),
    ('prog "${EMPTY}" x', ["prog", "", "x"]),
    ("echo ${QUOTES}", ["echo", "it's", '"x"', "\\n"]),
    # quoting
    ("echo 'a  b' \"c  d\" e\\ f", ["echo", "a  b", "c  d", "e f"]),
    ("echo a'b'\"c\"d", ["echo", "abcd"]),
    ("echo '' \"\"", ["echo", "", ""]),
    ("echo 'it'\\''s'", ["echo", "it's"]),
    ('echo "say \\"hi\\""', ["echo", 'say "hi"']),
    # backslashes: outside quotes escape anything; in double quotes only \ " $ ` newline
    ("echo \\a\\\\b", ["echo", "a\\b"]),
    ('echo "\\a \\\\ \\$ \\`"', ["echo", "\\a \\ $ `"]),
    ("echo '\\n'", ["echo", "\\n"]),
    ("echo a\\\nb", ["echo", "ab"]),
    # no shell operators: they are ordinary characters
    ("echo a|b > c; d && e", ["echo", "a|b", ">", "c;", "d", "&&", "e"]),
    ("ls *.txt ~", ["ls", "*.txt", "~"]),
]


@pytest.mark.parametrize(("text", "argv"), CASES)
def test_split(text: str, argv: list[str]) -> None:
    assert split_command(text, ENV) == argv


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("echo 'unclosed", "unterminated single quote (opened at character 6)"),
        ('sh -c "echo hi', "unterminated double quote (opened at character 7)"),
        ("echo \"it's", "unterminated double quote"),
        ("echo trailing\\", "ends with a backslash"),
    ],
)
def test_unsplittable_commands_are_refused_with_what_to_fix(text: str, needle: str) -> None:
    with pytest.raises(CommandError) as err:
        check_command(text)
    assert needle in err.value.message
    assert err.value.message.startswith("DOCKER_CMD ")


def test_a_value_cannot_make_a_command_unsplittable() -> None:
    """Submit checks the text alone: whatever the constants hold, the split still works."""
    check_command("echo ${QUOTES}")
    assert split_command("echo ${QUOTES}", {"QUOTES": "'\"\\"}) == ["echo", "'\"\\"]
