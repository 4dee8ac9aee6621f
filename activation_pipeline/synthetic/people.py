"""The simulated population: people, their devices, B2B accounts, and who shows up when."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from itertools import accumulate
from random import Random
from typing import Any

from activation_pipeline.synthetic.emitter import ANDROID, IOS, WEB
from activation_pipeline.synthetic.identity import SHARED_EMAIL_FORMS, ZERO_IDFA, IdFactory, Phone
from activation_pipeline.synthetic.pools import (
    ANDROID_MODELS,
    CATEGORIES,
    COMPANY_WORDS,
    CURRENCY_BY_COUNTRY,
    FIRST_NAMES,
    GB_CITIES,
    GENDER_FORMS,
    INDUSTRIES,
    IOS_MODELS,
    LAST_NAMES,
    OTHER_CITIES,
    PLANS,
    US_CITIES,
    WEB_AGENTS,
    ascii_fold,
)

# Trait changes a person may go through later in the window (latest value matters downstream).
PLAN_CHANGE, MOVE, SECOND_EMAIL, NEW_PHONE, NAME_CHANGE, ALIAS = range(6)
_LOCALES = {"US": "en-US", "GB": "en-GB", "DE": "de-DE", "FR": "fr-FR", "ES": "es-ES", "NL": "nl-NL",
            "IE": "en-IE", "CA": "en-CA"}  # fmt: skip
_GB_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_ONE = (1.0,)
# Documentation-range addresses (RFC 5737); a small pool keeps web contexts shareable.
_IPS = tuple(f"{net}.{host}" for net in ("203.0.113", "198.51.100", "192.0.2") for host in range(7, 250, 11))
_FOLDED = {name: ascii_fold(name) for name in (*FIRST_NAMES, *LAST_NAMES)}


class Account:
    """A B2B account (the target of `group` calls); its traits drift as the window goes on."""

    __slots__ = ("domain", "employees", "group_id", "industry", "mrr", "name", "plan")
    mrr: float

    def __init__(
        self, group_id: str, name: str, domain: str, industry: str, employees: int, plan: str
    ) -> None:
        """Set the account's identity and starting traits."""
        self.group_id = group_id
        self.name = name
        self.domain = domain
        self.industry = industry
        self.employees = employees
        self.plan = plan
        self.mrr = {"basic": 49.0, "pro": 299.0, "enterprise": 2400.0}[plan] * (1 + employees / 400)

    def traits(self) -> dict[str, Any]:
        """Current group traits."""
        return {
            "name": self.name,
            "industry": self.industry,
            "employees": self.employees,
            "plan": self.plan,
            "mrr": round(self.mrr, 2),
        }


class Device:
    """One browser or app install: its anonymousId, advertising id and cached JSON fragments."""

    __slots__ = (
        "ad_id",
        "anon_frag",
        "ctx",
        "ctx_group",
        "kind",
        "logged_in",
        "noted",
        "user_frag",
    )

    def __init__(self, kind: int, anon_id: str, ad_id: str | None) -> None:
        """A fresh, not-yet-used, logged-out device."""
        self.kind = kind
        self.ad_id = ad_id
        self.anon_frag = f'"anonymousId":"{anon_id}"'
        self.user_frag = ""
        self.ctx = ""
        self.ctx_group = ""
        self.logged_in = False
        self.noted = False

    @property
    def anon_id(self) -> str:
        """The device's anonymousId (kept only inside the pre-encoded fragment, to save memory)."""
        return self.anon_frag[15:-1]


class Person:
    """One real human being, with everything needed to render their messages consistently."""

    __slots__ = (
        "account", "add_rate", "address", "affinity", "birthday", "buy", "changes", "country", "created_ms",
        "crm_id", "crm_synced", "currency", "devices", "email_cum", "email_forms", "email_pref", "fav_cat",
        "first", "first_ascii", "gender", "grouped", "identified", "idx", "last", "last_ascii", "n_devices",
        "newsletter", "orders", "phone", "phone_forms", "pid", "plan", "preexisting", "qty_max",
        "sessions", "shared_email", "signup_at", "truth", "user_id", "view_mean", "whale",
    )  # fmt: skip
    idx: int
    pid: str
    preexisting: bool
    identified: bool
    signup_at: int
    country: str
    address: tuple[str, str, str]
    currency: str
    first: str
    last: str
    first_ascii: str
    last_ascii: str
    gender: int
    birthday: str
    plan: str
    user_id: str
    created_ms: int
    shared_email: bool
    whale: bool
    buy: float
    add_rate: float
    qty_max: int
    view_mean: float
    fav_cat: int
    affinity: float
    newsletter: bool
    n_devices: int

    def __init__(self) -> None:
        """Blank person; Population.create fills every field."""
        self.truth: dict[tuple[str, str], None] | None = None
        self.email_forms: list[list[str]] = []
        self.email_cum: list[tuple[float, ...]] = []
        self.email_pref = 0
        self.orders: list[tuple[str, float, str]] | None = None
        self.changes: list[int] | None = None
        self.devices: list[Device] = []
        self.n_devices = 1
        self.sessions = 0
        self.grouped = False
        self.crm_synced = False
        self.phone: Phone | None = None
        self.phone_forms: tuple[int, ...] = ()
        self.account: Account | None = None
        self.crm_id: str | None = None

    def note(self, kind: str, value: str) -> None:
        """Record an identifier value as emitted for this person (ground truth), if truth is kept."""
        if self.truth is not None:
            self.truth[(kind, value)] = None

    def note_device(self, dev: Device) -> None:
        """Record a device's identifiers the first time it is used."""
        dev.noted = True
        if self.truth is not None:
            self.truth[("anonymous_id", dev.anon_id)] = None
            if dev.ad_id is not None and dev.ad_id != ZERO_IDFA:
                self.truth[("ios.idfa" if dev.kind == IOS else "android.id", dev.ad_id)] = None


class Population:
    """Creates people on first appearance and picks who starts each session (power-law activity)."""

    def __init__(self, rng: Random, ids: IdFactory, profiles: int, accounts: int, keep_truth: bool,
                 encode: Callable[[Any], str], start_ms: int) -> None:  # fmt: skip
        """Draw activity weights for all people and build the accounts; people themselves come lazily."""
        self.rng = rng
        self.ids = ids
        self.profiles = profiles
        self.keep_truth = keep_truth
        self.encode = encode
        self.start_ms = start_ms
        # Pareto activity: a few heavy users, a long tail of light ones.
        self.cum_weights = list(accumulate(min(rng.paretovariate(1.25), 250.0) for _ in range(profiles)))
        self.people: list[Person] = []
        self.accounts = [self._account(i) for i in range(accounts)]
        self.account_cum = list(accumulate(min(rng.paretovariate(1.1), 80.0) for _ in range(accounts)))
        self.cat_cum = list(accumulate(c[1] for c in CATEGORIES))
        self._web_ctx: dict[tuple[str, str, str], str] = {}
        self.shared_left = 3  # the first few sign-ups to type in the placeholder email; later ones at random

    def _account(self, i: int) -> Account:
        rng = self.rng
        first, second = rng.choice(COMPANY_WORDS[0]), rng.choice(COMPANY_WORDS[1])
        name = f"{first} {second}" + rng.choice(("", "", " Inc.", " Ltd", " GmbH", ", LLC"))
        domain = f"{first.lower()}{second.lower()}{i}.example.com"
        employees = int(min(rng.paretovariate(0.9) * 8, 20_000))
        plan = rng.choices(PLANS, weights=(0.5, 0.35, 0.15))[0]
        return Account(f"acct_{i + 1:05d}", name, domain, rng.choice(INDUSTRIES), employees, plan)

    def pick(self, t: float, end_ms: int) -> Person:
        """The person starting a session at t: a newcomer on schedule, else a seen person by weight."""
        n = len(self.people)
        frac = (t - self.start_ms) / max(1, end_ms - self.start_ms)
        due = self.profiles * min(1.0, 0.3 * min(1.0, frac / 0.04) + 0.7 * frac)
        if n == 0 or (n < self.profiles and n < due):
            return self.create(t)
        r = self.rng.random() * self.cum_weights[n - 1]
        return self.people[min(bisect_right(self.cum_weights, r, 0, n - 1), n - 1)]

    def create(self, t: float) -> Person:
        """Create the next person, first seen at t."""
        rng = self.rng
        ids = self.ids
        p = Person()
        p.idx = len(self.people)
        p.pid = f"p{p.idx + 1:07d}"
        if self.keep_truth:
            p.truth = {}
        roll = rng.random()
        p.preexisting = roll < 0.3
        p.identified = p.preexisting
        will_signup = p.preexisting or roll < 0.75
        p.signup_at = 1 + int(rng.expovariate(0.8)) if will_signup and not p.preexisting else 10**9

        country_roll = rng.random()
        p.country = "US" if country_roll < 0.52 else "GB" if country_roll < 0.82 else ""
        if p.country == "US":
            city, state, prefix = rng.choice(US_CITIES)
            postal = f"{prefix}{rng.randrange(100):02d}"
        elif p.country == "GB":
            city, state, prefix = rng.choice(GB_CITIES)
            postal = f"{prefix} {rng.randrange(1, 10)}{rng.choice(_GB_LETTERS)}{rng.choice(_GB_LETTERS)}"
        else:
            city, state, prefix, p.country = rng.choice(OTHER_CITIES)
            postal = f"{prefix}{rng.randrange(100, 999)}"
        p.address = (city, state, postal)
        p.currency = CURRENCY_BY_COUNTRY[p.country]

        p.first = rng.choice(FIRST_NAMES)
        p.last = rng.choice(LAST_NAMES)
        p.first_ascii, p.last_ascii = _FOLDED[p.first], _FOLDED[p.last]
        g = rng.random()
        p.gender = 0 if g < 0.48 else 1 if g < 0.94 else 2 if g < 0.96 else -1
        p.birthday = (
            f"{rng.randrange(1950, 2007)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
            if rng.random() < 0.7
            else ""
        )
        r = rng.random()
        p.plan = PLANS[0] if r < 0.7 else PLANS[1] if r < 0.92 else PLANS[2]
        p.user_id = ids.user_id(rng.randrange(4))
        p.created_ms = (
            self.start_ms - rng.randrange(1, 1000) * 86_400_000 - rng.randrange(86_400_000)
            if p.preexisting
            else 0
        )
        if self.accounts and rng.random() < 0.3:
            r = rng.random() * self.account_cum[-1]
            p.account = self.accounts[bisect_left(self.account_cum, r)]

        # Emails: a personal one, and for some a second (work, or another mailbox) added later.
        personal = ids.email(p.first_ascii, p.last_ascii, ids.personal_domain())
        work = ids.email(p.first_ascii, p.last_ascii, p.account.domain) if p.account else None
        primary, second = (work, personal) if work and rng.random() < 0.5 else (personal, work)
        self._add_email(p, primary)
        if second is None and rng.random() < 0.2:
            second = ids.email(p.first_ascii, p.last_ascii, ids.personal_domain())
        if p.country in ("US", "GB") and rng.random() < 0.6:
            p.phone = ids.phone(p.country)
            if p.phone is not None:
                p.phone_forms = tuple(rng.sample(range(len(p.phone.forms)), rng.choice((1, 1, 2, 3))))
        if rng.random() < 0.35:
            p.crm_id = ids.crm_id()
        p.shared_email = will_signup and (self.shared_left > 0 or rng.random() < 0.003)
        if p.shared_email:
            self.shared_left -= 1

        changes: list[int] = []
        if second is not None:
            changes.append(SECOND_EMAIL)
            p.email_forms.append([second])  # forms expanded when the address is first used
            p.email_cum.append(_ONE)
        if rng.random() < 0.3:
            changes.append(PLAN_CHANGE)
        if rng.random() < 0.15:
            changes.append(MOVE)
        if p.phone is not None and rng.random() < 0.05:
            changes.append(NEW_PHONE)
        if rng.random() < 0.03:
            changes.append(NAME_CHANGE)
        if rng.random() < 0.06:
            changes.append(ALIAS)
        if changes:
            rng.shuffle(changes)
            p.changes = changes

        # Behaviour: power-law spenders; a few whales buy often and big.
        p.whale = rng.random() < 0.04
        p.buy = 3.0 if p.whale else min(2.5, rng.lognormvariate(-0.2, 0.6))
        p.add_rate = min(0.6, 0.12 * p.buy)
        p.qty_max = 5 if p.whale else 2
        p.view_mean = 1.5 + min(rng.paretovariate(2.0), 8.0)
        r = rng.random() * self.cat_cum[-1]
        p.fav_cat = bisect_left(self.cat_cum, r)
        p.affinity = rng.random() * 0.7
        p.newsletter = rng.random() < 0.25

        # Devices: most people have one; some browse on two or three. Built on first use (saves memory).
        d = rng.random()
        p.n_devices = 1 if not will_signup or d < 0.62 else 2 if d < 0.9 else 3
        self.people.append(p)
        return p

    def new_device(self, p: Person) -> Device:
        """Build the person's next device (the first is web 60%, iOS 22%, Android 18%; later ones uniform)."""
        rng = self.rng
        k = rng.random()
        if p.devices:
            kind = WEB if k < 1 / 3 else IOS if k < 2 / 3 else ANDROID
        else:
            kind = WEB if k < 0.6 else IOS if k < 0.82 else ANDROID
        dev = self._device(p, kind)
        p.devices.append(dev)
        return dev

    def _add_email(self, p: Person, address: str) -> None:
        forms, cum = self.ids.email_forms(address)
        p.email_forms.append(forms)
        p.email_cum.append(cum)

    def activate_second_email(self, p: Person) -> None:
        """Expand the person's second address into its raw forms and make it the preferred one."""
        address = p.email_forms[-1][0]
        forms, cum = self.ids.email_forms(address)
        p.email_forms[-1] = forms
        p.email_cum[-1] = cum
        p.email_pref = len(p.email_forms) - 1

    def _device(self, p: Person, kind: int) -> Device:
        rng = self.rng
        encode = self.encode
        ip = _IPS[rng.randrange(len(_IPS))]
        locale = _LOCALES[p.country]
        if kind == WEB:
            dev = Device(WEB, self.ids.uuid(), None)
            agent = rng.choice(WEB_AGENTS)
            key = (ip, agent, locale)
            shared = self._web_ctx.get(key)  # web contexts hold no identifier: share the strings
            if shared is None:
                ctx: dict[str, Any] = {
                    "library": {"name": "analytics.js", "version": "next-1.72.0"},
                    "ip": ip,
                    "locale": locale,
                    "userAgent": agent,
                }
                shared = encode(ctx)
                self._web_ctx[key] = shared
            dev.ctx = shared
            if p.account is not None:
                dev.ctx_group = f'{shared[:-1]},"groupId":{encode(p.account.group_id)}}}'
            return dev
        if kind == IOS:
            roll = rng.random()
            idfa = self.ids.uuid().upper() if roll < 0.75 else ZERO_IDFA if roll < 0.9 else None
            dev = Device(IOS, self.ids.uuid().upper(), idfa)
            device: dict[str, Any] = {"type": "ios", "manufacturer": "Apple", "model": rng.choice(IOS_MODELS)}
            if idfa is not None:
                device["advertisingId"] = idfa
                device["adTrackingEnabled"] = idfa != ZERO_IDFA
            ctx = {
                "library": {"name": "analytics-ios", "version": "4.1.8"},
                "app": {"name": "Shopwise", "version": "6.4.1", "build": "6401"},
                "device": device,
                "os": {"name": "iOS", "version": rng.choice(("17.6.1", "18.0", "18.1"))},
                "ip": ip,
                "locale": locale,
            }
        else:
            aaid = self.ids.uuid() if rng.random() < 0.93 else None
            dev = Device(ANDROID, self.ids.uuid(), aaid)
            manufacturer, model = rng.choice(ANDROID_MODELS)
            device = {"type": "android", "manufacturer": manufacturer, "model": model}
            if aaid is not None:
                device["advertisingId"] = aaid
                device["adTrackingEnabled"] = True
            ctx = {
                "library": {"name": "analytics-android", "version": "4.11.3"},
                "app": {"name": "Shopwise", "version": "6.4.0", "build": "640"},
                "device": device,
                "os": {"name": "Android", "version": rng.choice(("13", "14", "15"))},
                "ip": ip,
                "locale": locale,
            }
        dev.ctx = encode(ctx)
        if p.account is not None:
            ctx["groupId"] = p.account.group_id
            dev.ctx_group = encode(ctx)
        return dev

    def email_form(self, p: Person, which: int | None = None) -> str:
        """A raw form of the person's preferred (or given) email, as typed this time."""
        i = p.email_pref if which is None else which
        rng = self.rng
        if p.shared_email:  # first time only: the placeholder, later the real address
            p.shared_email = False
            return rng.choice(SHARED_EMAIL_FORMS)
        if which is None and len(p.email_forms) > 1 and p.email_pref and rng.random() < 0.25:
            i = 0  # still some use of the older address
        forms = p.email_forms[i]
        value = rng.choices(forms, cum_weights=p.email_cum[i])[0] if len(forms) > 1 else forms[0]
        p.note("email", value)
        return value

    def phone_form(self, p: Person) -> tuple[str, bool] | None:
        """A raw form of the person's phone and whether it is national (needs a country trait)."""
        phone = p.phone
        if phone is None:
            return None
        i = (
            p.phone_forms[0]
            if len(p.phone_forms) == 1 or self.rng.random() < 0.6
            else self.rng.choice(p.phone_forms)
        )
        value = phone.forms[i]
        p.note("phone", value)
        return value, phone.national[i]

    def gender_form(self, p: Person) -> str | None:
        """The person's gender as typed this time (varied spellings), or None if never given."""
        if p.gender < 0:
            return None
        forms = GENDER_FORMS[p.gender]
        return forms[p.idx % len(forms)] if self.rng.random() < 0.8 else self.rng.choice(forms)
