"""Identifier factories: user, anonymous, advertising and CRM ids, emails and phones in messy real-world forms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from random import Random

from activation_pipeline.synthetic.pools import GB_PHONE_RANGES, PERSONAL_DOMAINS, US_AREA_CODES

ZERO_IDFA = "00000000-0000-0000-0000-000000000000"
"""What iOS reports as IDFA when tracking is limited: a shared, blocked-looking value."""
SHARED_EMAIL_FORMS: tuple[str, ...] = (
    "test@example.com",
    "test@example.com",
    "Test@Example.com",
    " test@example.com",
)
"""A placeholder email several people type in: a shared, blocked-looking value."""

_VARIANT = "89ab"
_PLAIN_CUM = (0.7, 1.0)  # clean form, messy form
_GMAIL_CUM = (0.55, 0.75, 0.87, 1.0)  # clean, messy, dots toggled, +tag
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_DOMAINS = tuple(d for d, _ in PERSONAL_DOMAINS)
_DOMAIN_CUM = list(accumulate(w for _, w in PERSONAL_DOMAINS))


def uuid4_text(bits: int) -> str:
    """Format 128 random bits as a lowercase version-4 UUID string."""
    h = bits.to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[bits & 3]}{h[17:20]}-{h[20:32]}"


@dataclass(frozen=True)
class Phone:
    """One phone number and the raw forms a person types it in; national forms need a country trait."""

    country: str
    forms: tuple[str, ...]
    national: tuple[bool, ...]


def _us_forms(area: str, line: str) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    forms = (
        f"+1 ({area}) 555-{line}",
        f"{area}.555.{line}",
        f"({area}) 555-{line}",
        f"+1{area}555{line}",
        f"1-{area}-555-{line}",
    )
    return forms, (False, True, True, False, True)


def _gb_forms(nsn: str, groups: tuple[int, ...]) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    parts: list[str] = []
    pos = 0
    for size in groups:
        parts.append(nsn[pos : pos + size])
        pos += size
    spaced = " ".join(parts)
    forms = (
        f"+44 {spaced}",
        f"0044 {spaced}",
        f"0{spaced}",
        f"+44{nsn}",
        f"0{nsn}",
    )
    return forms, (False, True, True, False, True)  # 0044 needs a region too: 00 is the UK exit code


class IdFactory:
    """Makes unique, deterministic identifiers from one shared random generator."""

    def __init__(self, rng: Random) -> None:
        """Bind to the generator's RNG; phone pools are shuffled lazily on first use."""
        self.rng = rng
        self._used: set[str] = set()
        self._us_pool: list[tuple[str, str]] | None = None
        self._gb_pool: list[tuple[str, tuple[int, ...]]] | None = None

    def _unique(self, make: Callable[[], str]) -> str:
        value = make()
        while value in self._used:
            value = make()
        self._used.add(value)
        return value

    def uuid(self) -> str:
        """A random lowercase UUID (collisions are negligible, so not tracked)."""
        return uuid4_text(self.rng.getrandbits(128))

    def user_id(self, style: int) -> str:
        """A user id in one of four house styles (prefixed hex, numeric, UUID, Stripe-like)."""
        rng = self.rng
        if style == 0:
            return self._unique(lambda: f"usr_{rng.getrandbits(40):010x}")
        if style == 1:
            return self._unique(lambda: str(rng.randrange(100_000, 99_999_999)))
        if style == 2:
            return self._unique(self.uuid)
        return self._unique(lambda: "cus_" + "".join(rng.choices(_ALNUM, k=14)))

    def crm_id(self) -> str:
        """A CRM record id: either `CRM-0001234` or a Salesforce-looking 18-character id."""
        rng = self.rng
        if rng.random() < 0.6:
            return self._unique(lambda: f"CRM-{rng.randrange(1, 9_999_999):07d}")
        return self._unique(lambda: "0035g00000" + "".join(rng.choices(_ALNUM, k=8)))

    def phone(self, country: str) -> Phone | None:
        """A fictional but well-formed US (555-01xx) or UK (Ofcom drama range) number, or None if used up."""
        rng = self.rng
        if country == "US":
            if self._us_pool is None:
                self._us_pool = [(a, f"01{n:02d}") for a in US_AREA_CODES for n in range(100)]
                rng.shuffle(self._us_pool)
            if not self._us_pool:
                return None
            area, line = self._us_pool.pop()
            forms, national = _us_forms(area, line)
            return Phone("US", forms, national)
        if country == "GB":
            if self._gb_pool is None:
                self._gb_pool = [
                    (prefix + f"{n:0{extra}d}", groups)
                    for prefix, extra, groups in GB_PHONE_RANGES
                    for n in range(10**extra)
                ]
                rng.shuffle(self._gb_pool)
            if not self._gb_pool:
                return None
            nsn, groups = self._gb_pool.pop()
            forms, national = _gb_forms(nsn, groups)
            return Phone("GB", forms, national)
        return None

    def personal_domain(self) -> str:
        """A consumer mailbox domain, weighted by popularity."""
        return self.rng.choices(_DOMAINS, cum_weights=_DOMAIN_CUM)[0]

    def email(self, first: str, last: str, domain: str) -> str:
        """A unique lowercase address from ascii-folded names (uniqueness ignores gmail dots and +tags)."""
        rng = self.rng
        style = rng.randrange(6)
        if style == 0:
            local = f"{first}.{last}"
        elif style == 1:
            local = f"{first}{last}"
        elif style == 2:
            local = f"{first[0]}{last}"
        elif style == 3:
            local = f"{first}_{last}"
        elif style == 4:
            local = f"{first}.{last}{rng.randrange(1, 99)}"
        else:
            local = f"{first}{rng.randrange(60, 100):02d}"
        candidate = local
        while True:
            key = _mailbox_key(candidate, domain)
            if key not in self._used:
                self._used.add(key)
                return f"{candidate}@{domain}"
            candidate = f"{local}{rng.randrange(1, 9999)}"

    def email_forms(self, address: str) -> tuple[list[str], tuple[float, ...]]:
        """Raw forms one address is typed in (clean, mixed-case/padded, gmail dot/+tag) and cumulative weights."""
        rng = self.rng
        local, domain = address.split("@", 1)
        forms = [address, _pad(rng, _mixed_case(rng, local, domain))]
        if domain == "gmail.com":
            if "." in local:
                forms.append(local.replace(".", "") + "@gmail.com")
            else:
                cut = max(1, len(local) // 2)
                forms.append(f"{local[:cut]}.{local[cut:]}@gmail.com")
            forms.append(f"{local}+{rng.choice(('shop', 'deals', 'orders', 'news'))}@gmail.com")
            return forms, _GMAIL_CUM
        return forms, _PLAIN_CUM


def _mailbox_key(local: str, domain: str) -> str:
    if domain == "gmail.com":
        local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}"


def _mixed_case(rng: Random, local: str, domain: str) -> str:
    style = rng.randrange(3)
    if style == 0:
        local = ".".join(part[:1].upper() + part[1:] for part in local.split("."))
        labels = domain.split(".")
        domain = ".".join([labels[0].capitalize(), *(label.upper() for label in labels[1:])])
    elif style == 1:
        local, domain = local.upper(), domain.upper()
    else:
        local = local[:1].upper() + local[1:]
        domain = domain.capitalize()
    return f"{local}@{domain}"


def _pad(rng: Random, text: str) -> str:
    return rng.choice(("  {} ", "{} ", " {}", "{}", "\t{} ", "{}  ")).format(text)
