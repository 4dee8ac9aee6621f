"""Plausible values for workspace-specific event properties, guessed from each property's name."""

from __future__ import annotations

import re
from collections.abc import Callable
from random import Random

from activation_pipeline.synthetic.pools import CATEGORIES, PLANS, WORDS

ValueMaker = Callable[[Random], object]
"""Draws one property value."""

_MONEY = ("price", "revenue", "amount", "total", "value", "mrr", "cost", "discount", "tax", "shipping",
          "spend", "balance", "fee", "ltv")  # fmt: skip
_COUNTS = ("count", "quantity", "qty", "number", "num", "items", "seats", "position", "rank", "step", "level",
           "age", "days", "minutes", "seconds", "duration", "size", "index", "pages", "views", "clicks", "points",
           "credits", "visits", "attempts", "nights", "guests", "hours", "weeks", "months", "years")  # fmt: skip
_TEXT = ("name", "title", "label", "type", "source", "method", "channel", "status", "reason", "query", "term")
_BOOL_PREFIXES = ("is_", "has_", "was_", "can_", "should_")
_CATEGORY_NAMES = tuple(c[0] for c in CATEGORIES)


def _text_pool(name: str) -> tuple[str, ...]:
    # A stable per-name subset of words (sum of code points, not hash(): that is salted per process).
    start = sum(map(ord, name)) % len(WORDS)
    return tuple(WORDS[(start + 3 * i) % len(WORDS)] for i in range(4))


def value_maker(name: str) -> ValueMaker:
    """A generator of plausible values for a property called name (ids, money, counts, flags, labels)."""
    n = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()
    tokens = set(n.replace("-", "_").replace(" ", "_").split("_"))
    if n == "currency":
        return lambda r: r.choice(("USD", "USD", "EUR", "GBP"))
    if n.endswith("_id") or n == "id":
        prefix = (n[:-3] or "id")[:6]
        return lambda r: f"{prefix}_{r.randrange(1, 100_000)}"
    if n.startswith(_BOOL_PREFIXES) or n.endswith(("_enabled", "_flag")):
        return lambda r: r.random() < 0.5
    if "rating" in n or "stars" in n:
        return lambda r: r.randint(1, 5)
    if "score" in n or "percent" in n or n.endswith("_pct"):
        return lambda r: round(r.random() * 100, 1)
    if tokens.intersection(_TEXT):
        pool = _text_pool(n)
        return lambda r: r.choice(pool)
    if tokens.intersection(_MONEY):
        return lambda r: round(r.lognormvariate(3.5, 0.9), 2)
    if tokens.intersection(_COUNTS):
        return lambda r: 1 + int(r.expovariate(0.4))
    if "category" in n:
        return lambda r: r.choice(_CATEGORY_NAMES)
    if "plan" in n or "tier" in n:
        return lambda r: r.choice(PLANS)
    if "url" in n:
        return lambda r: f"https://shop.example.com/p/{r.randrange(1000, 9999)}"
    if "path" in n:
        return lambda r: f"/p/{r.randrange(1000, 9999)}"
    if n.endswith(("_at", "date", "time")):
        return lambda r: f"2026-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}"
    if "email" in n:
        return lambda r: f"user{r.randrange(1, 10_000)}@example.org"
    pool = _text_pool(n)
    return lambda r: r.choice(pool)
