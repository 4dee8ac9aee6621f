"""Fixed value pools for the synthetic event generator: names, places, products, campaigns, devices."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from random import Random

# fmt: off
# Names: some with accents and punctuation, as real sign-up forms produce.
FIRST_NAMES: tuple[str, ...] = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Margaret", "Steven", "Sandra",
    "Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Noah", "Mia", "Jack", "Grace", "Leo", "Freya",
    "Zoë", "José", "Chloé", "Renée", "Søren", "François", "Łukasz", "Björn", "Inès", "Maël", "Anaïs",
    "Seán", "Siobhán", "Nuño", "Ana-María", "Jean-Luc", "Mei", "Hiroshi", "Priya", "Arjun", "Fatima",
    "Omar", "Aaliyah", "Kwame", "Olusegun", "Ngozi", "Dmitri", "Yara", "Mateo", "Lucía", "Valentina",
)
LAST_NAMES: tuple[str, ...] = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King",
    "O'Brien", "O'Connor", "D'Angelo", "McDonald", "MacLeod", "Smith-Jones", "van der Berg", "de la Cruz",
    "Müller", "García", "Núñez", "Ødegaard", "Łukaszewicz", "Fernández", "Björk", "Lefèvre", "Gonçalves",
    "Nakamura", "Patel", "Okafor", "Mensah", "Ivanova", "Kowalski", "Rossi", "Dubois", "Schäfer", "Brontë",
)
GENDER_FORMS: tuple[tuple[str, ...], ...] = (
    ("female", "Female", "F", "f", "woman", "FEMALE"),
    ("male", "Male", "M", "m", "man", "MALE"),
    ("non-binary", "other", "Non-Binary"),
)

_FOLD = str.maketrans({"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE"})


def ascii_fold(text: str) -> str:
    """Strip accents and punctuation so a name can be used in an email local part."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if ch.isascii() and ch.isalnum()).lower()


# Places: (city, state/region, postal code prefix, country ISO code).
US_CITIES: tuple[tuple[str, str, str], ...] = (
    ("New York", "NY", "100"), ("Brooklyn", "NY", "112"), ("Los Angeles", "CA", "900"),
    ("San Francisco", "CA", "941"), ("Chicago", "IL", "606"), ("Houston", "TX", "770"),
    ("Austin", "TX", "787"), ("Seattle", "WA", "981"), ("Boston", "MA", "021"), ("Denver", "CO", "802"),
    ("Miami", "FL", "331"), ("Atlanta", "GA", "303"), ("Portland", "OR", "972"), ("Phoenix", "AZ", "850"),
)
US_AREA_CODES: tuple[str, ...] = (
    "201", "202", "206", "212", "213", "214", "215", "303", "305", "310", "312", "313", "314", "323",
    "404", "407", "408", "410", "412", "415", "424", "469", "480", "503", "510", "512", "602", "617",
    "619", "646", "650", "702", "713", "718", "720", "773", "786", "818", "917", "949",
)
GB_CITIES: tuple[tuple[str, str, str], ...] = (
    ("London", "England", "SW1A"), ("London", "England", "E1"), ("Manchester", "England", "M1"),
    ("Leeds", "England", "LS1"), ("Bristol", "England", "BS1"), ("Edinburgh", "Scotland", "EH1"),
    ("Glasgow", "Scotland", "G1"), ("Cardiff", "Wales", "CF10"), ("Belfast", "Northern Ireland", "BT1"),
)
# Ofcom drama ranges: (national significant number prefix, digits to add, grouping of the NSN).
GB_PHONE_RANGES: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("7700900", 3, (4, 6)),  # mobile 07700 900xxx
    ("2079460", 3, (2, 4, 4)),  # London 020 7946 0xxx
    ("1134960", 3, (3, 3, 4)),  # Leeds 0113 496 0xxx
    ("1614960", 3, (3, 3, 4)),  # Manchester 0161 496 0xxx
    ("1174960", 3, (3, 3, 4)),  # Bristol 0117 496 0xxx
    ("1314960", 3, (3, 3, 4)),  # Edinburgh 0131 496 0xxx
)
OTHER_CITIES: tuple[tuple[str, str, str, str], ...] = (
    ("Berlin", "BE", "10", "DE"), ("Munich", "BY", "80", "DE"), ("Paris", "IDF", "75", "FR"),
    ("Lyon", "ARA", "69", "FR"), ("Madrid", "MD", "28", "ES"), ("Toronto", "ON", "M5V", "CA"),
    ("Amsterdam", "NH", "10", "NL"), ("Dublin", "D", "D02", "IE"),
)
CURRENCY_BY_COUNTRY: dict[str, str] = {
    "US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "ES": "EUR", "NL": "EUR", "IE": "EUR", "CA": "CAD",
}
COUNTRY_FORMS: dict[str, tuple[str, ...]] = {
    "US": ("US", "US", "USA", "United States"),
    "GB": ("GB", "GB", "UK", "United Kingdom"),
}

PERSONAL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 0.38), ("yahoo.com", 0.12), ("outlook.com", 0.1), ("hotmail.com", 0.08),
    ("icloud.com", 0.1), ("hotmail.co.uk", 0.06), ("proton.me", 0.04), ("aol.com", 0.03),
    ("gmx.de", 0.04), ("orange.fr", 0.05),
)

CATEGORIES: tuple[tuple[str, float, float, float], ...] = (
    # (name, popularity weight, min price, max price)
    ("Apparel", 30.0, 9.0, 120.0),
    ("Shoes", 16.0, 29.0, 220.0),
    ("Electronics", 12.0, 19.0, 1400.0),
    ("Home & Kitchen", 10.0, 8.0, 350.0),
    ("Beauty", 9.0, 6.0, 90.0),
    ("Sports & Outdoors", 7.0, 12.0, 600.0),
    ("Toys", 5.0, 7.0, 150.0),
    ("Books", 4.0, 5.0, 45.0),
    ("Jewelry", 3.0, 25.0, 2500.0),
    ("Grocery", 2.0, 2.0, 40.0),
)
_PRODUCT_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Apparel": (("Classic", "Slim", "Organic", "Oversized", "Linen", "Merino"), ("Tee", "Hoodie", "Jeans",
                "Chinos", "Dress", "Jacket", "Sweater")),
    "Shoes": (("Trail", "Court", "Leather", "Canvas", "Running", "Chelsea"), ("Sneaker", "Boot", "Loafer",
              "Sandal", "Runner")),
    "Electronics": (("Wireless", "Smart", "Noise-Cancelling", "4K", "Portable", "Pro"), ("Headphones",
                    "Speaker", "Watch", "Monitor", "Charger", "Camera", "Tablet")),
    "Home & Kitchen": (("Cast-Iron", "Ceramic", "Bamboo", "Stainless", "Nordic"), ("Skillet", "Mug Set",
                       "Knife Block", "Lamp", "Throw", "Kettle")),
    "Beauty": (("Hydrating", "Vitamin C", "Matte", "Gentle", "Overnight"), ("Serum", "Cleanser",
               "Lipstick", "Moisturiser", "Mask")),
    "Sports & Outdoors": (("Ultralight", "Insulated", "Adjustable", "Carbon"), ("Tent", "Yoga Mat",
                          "Dumbbell", "Backpack", "Bike Light")),
    "Toys": (("Wooden", "Magnetic", "Plush", "Remote-Control"), ("Blocks", "Puzzle", "Bear", "Car")),
    "Books": (("Illustrated", "Collected", "Pocket", "Annotated"), ("Cookbook", "Atlas", "Novel",
              "Field Guide")),
    "Jewelry": (("Sterling", "Gold-Plated", "Pearl", "Diamond"), ("Ring", "Necklace", "Earrings",
                "Bracelet")),
    "Grocery": (("Single-Origin", "Organic", "Cold-Brew", "Artisan"), ("Coffee", "Tea", "Chocolate",
                "Olive Oil")),
}

CAMPAIGNS: tuple[str, ...] = (
    "welcome_series_1", "welcome_series_2", "weekly_digest", "abandoned_cart", "back_in_stock",
    "spring_sale", "summer_sale", "black_friday_2026", "cyber_monday_2026", "vip_early_access",
)
COUPONS: tuple[tuple[str, float], ...] = (("WELCOME10", 0.10), ("SAVE15", 0.15), ("VIP20", 0.20),
                                          ("FREESHIP", 0.0), ("BF2026", 0.25))
SIGNUP_METHODS: tuple[str, ...] = ("email", "email", "email", "google", "apple", "facebook")
PLANS: tuple[str, ...] = ("basic", "pro", "enterprise")
PLAN_PRICES: dict[str, float] = {"basic": 9.99, "pro": 29.0, "enterprise": 99.0}
NEWSLETTER_SOURCES: tuple[str, ...] = ("footer", "popup", "checkout", "account_settings")
REFERRERS: tuple[str, ...] = (
    "https://www.google.com/", "https://www.google.com/", "https://www.bing.com/", "https://t.co/",
    "https://www.facebook.com/", "https://www.instagram.com/", "https://duckduckgo.com/", "",
)
UTM_SOURCES: tuple[str, ...] = ("?utm_source=newsletter&utm_medium=email", "?utm_source=facebook&utm_medium=cpc",
                                "?utm_source=google&utm_medium=cpc", "")
WEB_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Mobile Safari/537.36",
)
IOS_MODELS: tuple[str, ...] = ("iPhone14,5", "iPhone15,2", "iPhone15,4", "iPhone16,1", "iPhone17,3", "iPad13,18")
ANDROID_MODELS: tuple[tuple[str, str], ...] = (("Google", "Pixel 8"), ("samsung", "SM-S918B"),
                                               ("samsung", "SM-A546B"), ("OnePlus", "CPH2581"), ("Xiaomi", "23127PN0CG"))
INDUSTRIES: tuple[str, ...] = ("Retail", "Software", "Healthcare", "Finance", "Manufacturing", "Education",
                               "Media", "Logistics", "Hospitality", "Non-profit")
COMPANY_WORDS: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("Northwind", "Bluebird", "Granite", "Juniper", "Copperleaf", "Harbor", "Summit", "Lumen", "Maple",
     "Vertex", "Orchid", "Sterling", "Kestrel", "Tidewater", "Ironclad", "Brightline"),
    ("Labs", "Outfitters", "Health", "Capital", "Logistics", "Studios", "Works", "Partners", "Foods", "Systems"),
)
WORDS: tuple[str, ...] = ("standard", "premium", "express", "mobile", "web", "email", "referral", "organic",
                          "paid_social", "direct", "partner", "seasonal", "loyalty", "trial", "annual")

# fmt: on


@dataclass(frozen=True)
class Product:
    """One catalogue product with its popularity weight."""

    product_id: str
    sku: str
    category: str
    name: str
    price: float
    slug: str
    weight: float


def build_products(rng: Random, per_category: int = 40) -> list[Product]:
    """Build a deterministic product catalogue with skewed category and product popularity."""
    products: list[Product] = []
    serial = 1000
    for category, cat_weight, low, high in CATEGORIES:
        adjectives, nouns = _PRODUCT_WORDS[category]
        code = "".join(w[0] for w in category.replace("&", " ").split()).upper()
        for rank in range(1, per_category + 1):
            serial += 1
            name = f"{rng.choice(adjectives)} {rng.choice(nouns)}"
            price = round(low * (high / low) ** (rng.random() ** 1.6), 2)
            price = float(int(price)) + 0.99 if price > 5 else price
            slug = f"{name.lower().replace(' ', '-')}-{serial}"
            products.append(
                Product(
                    product_id=f"prod_{serial}",
                    sku=f"SKU-{code}-{serial:05d}",
                    category=category,
                    name=name,
                    price=price,
                    slug=slug,
                    weight=cat_weight / rank,
                )
            )
    return products
