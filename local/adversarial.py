"""Inputs that make a content-policy scan work hard, for the policy benchmark and its equivalence tests.

Each shape repeats one kind of unit (a card-like run, an allowlisted SSN, a PEM block…) up to a size in UTF-8
bytes: many near-matches, many real matches, many allowlisted fixtures, text normalisation has to map back.
`mixed` draws its units from every shape. Everything is seeded: the same call gives the same text.

    generate("card-valid", 1 << 20)      1 MiB of Luhn-valid card numbers
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable
from pathlib import Path

Unit = Callable[[random.Random], str]

ROOT = Path(__file__).resolve().parents[1]
BASE64 = string.ascii_letters + string.digits + "+/"
WORD = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
# Card prefixes of the networks the shipped card rule knows, with their lengths.
CARD_PREFIXES = (("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16))
CARD_FIXTURES = ("4111 1111 1111 1111", "4242424242424242", "5555-5555-5555-4444", "3782 822463 10005")
SSN_FIXTURES = ("078-05-1120", "219-09-9999", "123-45-6789", "457-55-5462")
ARABIC_INDIC = "".join(chr(0x0660 + digit) for digit in range(10))
FULLWIDTH = "".join(chr(0xFF10 + digit) for digit in range(10))


def luhn_check_digit(digits: str) -> str:
    """The digit that makes `digits` + it pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 0:  # doubled once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


def card(rng: random.Random, *, valid: bool, separator: str = " ") -> str:
    prefix, length = rng.choice(CARD_PREFIXES)
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = luhn_check_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    number = body + check
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return separator.join(groups)


def ssn(rng: random.Random) -> str:
    area = rng.choice([rng.randint(1, 665), rng.randint(667, 899)])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _chars(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def _pem(rng: random.Random, kind: str) -> str:
    body = base64.b64encode(rng.randbytes(rng.randint(200, 1200))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----\n"


def _key_like(rng: random.Random) -> str:
    upper = string.ascii_uppercase + string.digits
    alnum = string.ascii_letters + string.digits
    makers: list[Callable[[], str]] = [
        lambda: "AKIA" + _chars(rng, upper, 16, 16),
        lambda: "ghp_" + _chars(rng, alnum, 36, 36),
        lambda: "xoxb-" + _chars(rng, alnum, 10, 40),
        lambda: "sk_live_" + _chars(rng, alnum, 24, 40),
        lambda: "sk-ant-api03-" + _chars(rng, alnum, 20, 90),
        lambda: '"private_key_id": "' + _chars(rng, HEX, 40, 40) + '"',
        lambda: "aws_secret_access_key = " + _chars(rng, alnum, 40, 40),
    ]
    return rng.choice(makers)()


def _key_near_miss(rng: random.Random) -> str:
    upper = string.ascii_uppercase + string.digits
    alnum = string.ascii_letters + string.digits
    makers: list[Callable[[], str]] = [
        lambda: "AKIA" + _chars(rng, upper, 10, 15),
        lambda: "ghp_" + _chars(rng, alnum, 20, 35),
        lambda: "xoxb-" + _chars(rng, alnum, 1, 9),
        lambda: "sk_live_" + _chars(rng, alnum, 1, 23),
        lambda: "sk-" + _chars(rng, alnum, 5, 31),
        lambda: '"private_key_id": "' + _chars(rng, HEX, 30, 39) + '"',
        lambda: "-----BEGIN RSA PRIVATE KE",
        lambda: "aws_secret_access_key = " + _chars(rng, alnum, 20, 39),
    ]
    return rng.choice(makers)()


def _jwt(rng: random.Random) -> str:
    part = string.ascii_letters + string.digits + "_-"
    return f"eyJ{_chars(rng, part, 8, 60)}.eyJ{_chars(rng, part, 8, 200)}.{_chars(rng, part, 8, 90)}"


def _nested_whitespace(rng: random.Random) -> str:
    depth = rng.randint(0, 400)
    indent = "".join(rng.choice(" \t") for _ in range(depth))
    return f"{indent}{rng.choice(['{', '[', '(', '', '-', ':'])}\n" + " " * rng.randint(0, 40) + "\r\n"


def _iban(rng: random.Random) -> str:
    code = rng.choice(["GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00"])
    if rng.random() < 0.5:
        code = (
            rng.choice(["FR", "NL", "ES"])
            + f"{rng.randint(10, 99)}"
            + "".join(" " + _chars(rng, string.ascii_uppercase + string.digits, 4, 4) for _ in range(rng.randint(2, 8)))
        )
    return code


def _migration_row(rng: random.Random) -> str:
    """A row of a SQL migration seeding fixtures: allowlisted SSNs and test cards, some real-looking ones."""
    i = rng.randint(1, 10**6)
    fixture_ssn = rng.choice(SSN_FIXTURES) if rng.random() < 0.9 else ssn(rng)
    fixture_card = rng.choice(CARD_FIXTURES) if rng.random() < 0.9 else card(rng, valid=rng.random() < 0.5)
    email = f"customer{i}@example.com" if rng.random() < 0.95 else f"customer{i}@bank.co.uk"
    return (
        f"INSERT INTO customers (id, name, email, ssn, card, phone, note) VALUES ({i}, 'Customer {i}', '{email}', "
        f"'{fixture_ssn}', '{fixture_card}', '+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}', "
        f"'{'x' * rng.randint(10, 40)} {rng.randint(10**11, 10**12)}');\n"
    )


def _unicode_digits(rng: random.Random) -> str:
    number = card(rng, valid=True)
    alphabet = rng.choice([ARABIC_INDIC, FULLWIDTH])
    return "".join(alphabet[int(c)] if c.isdigit() else "\u00a0" for c in number) + " ٪ "


def _zero_width_split(rng: random.Random) -> str:
    number = card(rng, valid=rng.random() < 0.5, separator="")
    return "\u200b".join(number) + "\u2060 "


SHAPES: dict[str, Unit] = {
    # One digit run the whole length: no word boundary inside for a card or SSN to start at.
    "digit-run": lambda rng: _chars(rng, string.digits, 1000, 1000),
    # Runs the length of card numbers (13 to 19 digits) beginning like one: each is a candidate to Luhn-check.
    "digit-runs-card-length": lambda rng: rng.choice("3456") + _chars(rng, string.digits, 12, 18) + " ",
    "digits-dashed": lambda rng: "-".join(_chars(rng, string.digits, 4, 4) for _ in range(4)) + " ",
    "digits-spaced": lambda rng: (
        "4"
        + _chars(rng, string.digits, 3, 3)
        + "".join(" " + rng.choice(string.digits) for _ in range(rng.randint(9, 20)))
        + "  "
    ),
    "card-valid": lambda rng: card(rng, valid=True, separator=rng.choice([" ", "-", "", "."])) + " ",
    "card-invalid": lambda rng: card(rng, valid=False, separator=rng.choice([" ", "-", ""])) + ", ",
    "card-fixtures": lambda rng: rng.choice(CARD_FIXTURES) + "\n",
    "ssn-like": lambda rng: ssn(rng) + " ",
    "ssn-fixtures": lambda rng: rng.choice(SSN_FIXTURES) + ",",
    "email-like": lambda rng: f"{_chars(rng, WORD, 1, 12)}@{_chars(rng, WORD, 1, 10)}.{rng.choice(['com', 'io'])} ",
    "email-fixtures": lambda rng: f"{_chars(rng, WORD, 1, 12)}@example.{rng.choice(['com', 'org', 'net'])} ",
    "email-near-miss": lambda rng: _chars(rng, WORD + ".", 40, 70) + "@" * rng.randint(1, 3),
    "base64-blob": lambda rng: base64.b64encode(rng.randbytes(3000)).decode(),
    "base64-lines": lambda rng: base64.b64encode(rng.randbytes(57)).decode() + "\n",
    "pem-public": lambda rng: _pem(rng, "PUBLIC KEY"),
    "pem-private": lambda rng: _pem(rng, rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY"])),
    "key-like": lambda rng: _key_like(rng) + "\n",
    "key-near-miss": lambda rng: _key_near_miss(rng) + " ",
    "jwt-like": lambda rng: _jwt(rng) + " ",
    "password-assignments": lambda rng: (
        rng.choice(["password", "secret", "api_key", "token"])
        + rng.choice([" = ", ": ", "="])
        + rng.choice(['"changeme"', '"' + _chars(rng, string.ascii_letters + string.digits + "!#&", 8, 40) + '"'])
        + "\n"
    ),
    "connection-strings": lambda rng: f"postgres://{_chars(rng, WORD, 1, 20)}:{_chars(rng, WORD, 1, 30)}@db:5432/x ",
    "iban-like": lambda rng: _iban(rng) + " ",
    "hex-run": lambda rng: _chars(rng, HEX, 64, 64),
    "whitespace-nested": _nested_whitespace,
    "sql-migration": _migration_row,
    "unicode-digits": _unicode_digits,
    "zero-width-split": _zero_width_split,
}


def generate(shape: str, size: int, seed: int = 14) -> str:
    """`size` UTF-8 bytes (or a character fewer) of the shape's units; `mixed` draws from every shape."""
    rng = random.Random(f"{shape}:{seed}")
    units = list(SHAPES.values())
    pieces: list[str] = []
    used = 0
    while used < size:
        unit = (rng.choice(units) if shape == "mixed" else SHAPES[shape])(rng)
        pieces.append(unit)
        used += len(unit.encode())
    return cut(("".join(pieces)), size)


def migration(lines: int = 4200, seed: int = 14) -> str:
    """A SQL migration of `lines` rows seeding fixture customers: the field report's file (4,200 lines) that kept
    an instance at 100 % CPU for 11 minutes under a backtracking PII regex."""
    rng = random.Random(f"migration:{seed}")
    return "".join(_migration_row(rng) for _ in range(lines))


def cut(text: str, size: int) -> str:
    """The longest prefix of `text` of at most `size` UTF-8 bytes."""
    encoded = text.encode()[:size]
    return encoded.decode(errors="ignore")


def typical_code(size: int) -> str:
    """The project's own Python source (not its tests, whose fixtures are secrets), repeated to `size` bytes."""
    folders = ("gateway", "config", "stacks", "constructs", "local", "scripts", "lambda")
    files = sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))
    return _repeat("".join(path.read_text() for path in files), size)


def typical_prose(size: int) -> str:
    """The project's README, repeated to `size` bytes."""
    return _repeat((ROOT / "README.md").read_text(), size)


def _repeat(text: str, size: int) -> str:
    return cut(text * (size // max(1, len(text.encode())) + 1), size)
