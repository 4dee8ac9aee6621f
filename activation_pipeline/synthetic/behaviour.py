"""What one person does in one session: browsing funnel, sign-ups and log-ins, trait changes, group calls."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from random import Random
from typing import Any

from activation_pipeline.synthetic.emitter import SERVER, WEB, Emitter, iso_ms
from activation_pipeline.synthetic.extras import ValueMaker, value_maker
from activation_pipeline.synthetic.people import (
    ALIAS,
    MOVE,
    NAME_CHANGE,
    NEW_PHONE,
    PLAN_CHANGE,
    SECOND_EMAIL,
    Device,
    Person,
    Population,
)
from activation_pipeline.synthetic.pools import (
    CAMPAIGNS,
    CATEGORIES,
    COUNTRY_FORMS,
    COUPONS,
    GB_CITIES,
    NEWSLETTER_SOURCES,
    OTHER_CITIES,
    PLAN_PRICES,
    PLANS,
    REFERRERS,
    SIGNUP_METHODS,
    US_CITIES,
    UTM_SOURCES,
    Product,
)

SITE = "https://shop.example.com"
WISHLIST_RATE = 0.03
"""Chance per product viewed and not added to the cart that it is wishlisted, times the buyer's propensity²."""
WISHLIST_BUYS = 0.6
"""Chance that a signed-up person buys a wishlisted product 1 to 21 days later."""
_CURRENCY_INDEX = {"USD": 0, "GBP": 1, "EUR": 2, "CAD": 3}
_EXP_STEPS = 4096
_EXP_TABLE = tuple(-math.log(1.0 - (k + 0.5) / _EXP_STEPS) for k in range(_EXP_STEPS))
_SCREEN_PRODUCT = '"name":"Product Detail","properties":{}'
_CAT_SLUGS = tuple(c[0].lower().replace(" & ", "-").replace(" ", "-") for c in CATEGORIES)


class Shopper:
    """Simulates sessions and pushes their messages to the emitter."""

    def __init__(
        self,
        rng: Random,
        emitter: Emitter,
        population: Population,
        products: Sequence[Product],
        extra_events: Mapping[str, Sequence[str]],
        encode: Callable[[Any], str],
    ) -> None:
        """Bind the shared RNG, output and population; split extra events into new ones and additions."""
        self.rng = rng
        self.em = emitter
        self.pop = population
        self.products = products
        self.encode = encode
        self.late_ms = emitter.end_ms - 3 * 3_600_000
        self.order_seq = 100_000
        self.grouped_accounts: set[str] = set()
        self.prod_cum = list(accumulate(pr.weight for pr in products))
        self.prod_total = self.prod_cum[-1]
        self.cat_products: list[tuple[list[int], list[float]]] = []
        for name, *_ in CATEGORIES:
            idxs = [i for i, pr in enumerate(products) if pr.category == name]
            self.cat_products.append((idxs, list(accumulate(products[i].weight for i in idxs))))
        self._view_props: dict[int, tuple[dict[str, Any], str, str]] = {}
        self._page_body: dict[int, str] = {}
        self._ev: dict[str, str] = {}
        self._view_extra = "Product Viewed" in extra_events
        self._added_extra = "Product Added" in extra_events
        self._added = self._event("Product Added")
        self.server_ctx = encode({"library": {"name": "analytics-node", "version": "2.2.1"}})
        builtin = {
            "Product Viewed", "Product Added", "Product List Viewed", "Cart Viewed", "Checkout Started",
            "Order Completed", "Order Refunded", "Signed Up", "Signed In", "Newsletter Subscribed",
            "Subscription Started", "Email Opened", "Application Opened", "Wishlist Added",
        }  # fmt: skip
        self.extra_new: list[tuple[str, list[tuple[str, ValueMaker]]]] = []
        self.extra_builtin: dict[str, list[tuple[str, ValueMaker]]] = {}
        for event, props in extra_events.items():
            makers = [(prop, value_maker(prop)) for prop in props]
            if event in builtin:
                self.extra_builtin[event] = makers
            else:
                self.extra_new.append((event, makers))

    # ------------------------------------------------------------------ message helpers

    def _send(self, ts: float, typ: str, p: Person, dev: Device, body: str) -> bool:
        who = dev.user_frag if dev.logged_in else dev.anon_frag
        ctx = dev.ctx_group if p.grouped and dev.logged_in else dev.ctx
        ok = self.em.push(ts, typ, who, body, ctx, dev.kind)
        if ok and not dev.noted:
            p.note_device(dev)
        return ok

    def _event(self, event: str) -> str:
        frag = self._ev.get(event)
        if frag is None:
            frag = f'"event":{self.encode(event)},"properties":'
            self._ev[event] = frag
        return frag

    def _props(self, event: str, props: dict[str, Any]) -> str:
        extra = self.extra_builtin.get(event)
        if extra:
            props = dict(props)
            for name, make in extra:
                if name not in props:
                    props[name] = make(self.rng)
        return self._event(event) + self.encode(props)

    def _track(self, ts: float, p: Person, dev: Device, event: str, props: dict[str, Any]) -> bool:
        return self._send(ts, "track", p, dev, self._props(event, props))

    def _server_track(self, ts: float, p: Person, event: str, props: dict[str, Any]) -> bool:
        who = f'"userId":"{p.user_id}"'
        return self.em.push(ts, "track", who, self._props(event, props), self.server_ctx, SERVER)

    def _page(self, ts: float, p: Person, dev: Device, name: str, path: str, title: str,
              extra: dict[str, str] | None = None) -> bool:  # fmt: skip
        if dev.kind == WEB:
            props = {"path": path, "url": SITE + path, "title": title}
            if extra:
                props.update(extra)
            return self._send(ts, "page", p, dev, f'"name":"{name}","properties":{self.encode(props)}')
        return self._send(ts, "screen", p, dev, f'"name":"{name}","properties":{{}}')

    def _identify(self, ts: float, p: Person, dev: Device | None, traits: dict[str, Any]) -> bool:
        body = f'"traits":{self.encode(traits)}'
        if dev is None:
            return self.em.push(ts, "identify", f'"userId":"{p.user_id}"', body, self.server_ctx, SERVER)
        return self._send(ts, "identify", p, dev, body)

    def _step(self, lo: float, mean: float) -> float:
        """lo plus an exponential delay with the given mean (table lookup: cheaper than expovariate)."""
        return lo + mean * _EXP_TABLE[int(self.rng.random() * _EXP_STEPS)]

    # ------------------------------------------------------------------ traits

    def _full_traits(self, p: Person) -> dict[str, Any]:
        rng = self.rng
        pop = self.pop
        traits: dict[str, Any] = {"email": pop.email_form(p)}
        phone = pop.phone_form(p)
        if phone is not None:
            traits["phone"] = phone[0]
            if phone[1]:
                traits["country"] = p.country
        traits["first_name"] = p.first if rng.random() < 0.93 else p.first.lower()
        traits["last_name"] = p.last if rng.random() < 0.95 else p.last.upper()
        gender = pop.gender_form(p)
        if gender is not None:
            traits["gender"] = gender
        if p.birthday:
            traits["birthday"] = p.birthday
        traits["address"] = self._address(p)
        traits["plan"] = p.plan
        if p.crm_id is not None and rng.random() < 0.5:
            traits["crm_id"] = p.crm_id
            p.note("crm_id", p.crm_id)
        traits["created_at"] = iso_ms(p.created_ms)
        return traits

    def _address(self, p: Person) -> dict[str, str]:
        city, state, postal = p.address
        forms = COUNTRY_FORMS.get(p.country)
        country = self.rng.choice(forms) if forms is not None else p.country
        return {"city": city, "state": state, "postal_code": postal, "country": country}

    def _partial_traits(self, p: Person) -> dict[str, Any]:
        rng = self.rng
        roll = rng.randrange(5)
        if roll == 0 and p.phone is not None:
            phone = self.pop.phone_form(p)
            if phone is not None:
                return {"phone": phone[0], "country": p.country} if phone[1] else {"phone": phone[0]}
        if roll == 1:
            return {"first_name": p.first, "last_name": p.last}
        if roll == 2:
            return {"email": self.pop.email_form(p), "address": self._address(p)}
        if roll == 3:
            return {"email": self.pop.email_form(p), "plan": p.plan}
        return {"email": self.pop.email_form(p)}

    # ------------------------------------------------------------------ session

    def session(self, t0: float, p: Person) -> None:
        """Simulate one session of p starting at t0."""
        rng = self.rng
        p.sessions += 1
        late = t0 > self.late_ms
        used = len(p.devices)
        if used == 0 or (p.identified and used < p.n_devices and not late and rng.random() < 0.2):
            dev = self.pop.new_device(p)
        elif used == 1 or rng.random() < 0.6:
            dev = p.devices[0]
        else:
            dev = p.devices[rng.randrange(used)]
        cur = t0
        campaign = False
        if p.identified and p.sessions > 1 and rng.random() < 0.1:
            self._server_track(
                cur,
                p,
                "Email Opened",
                {"campaign": rng.choice(CAMPAIGNS), "email_id": f"em_{rng.getrandbits(32):08x}"},
            )
            if rng.random() < 0.45:
                return
            cur += self._step(20_000, 300_000)
            campaign = True
        cur = self._landing(cur, p, dev, campaign)
        if p.identified and not dev.logged_in:
            for _ in range(rng.randrange(3)):
                cur = self._view(cur + self._step(2_000, 20_000), p, dev, self._product(p))
            cur = self._login(cur + self._step(3_000, 15_000), p, dev)
        elif not p.identified and p.sessions >= p.signup_at and not late:
            for _ in range(rng.randrange(3)):
                cur = self._view(cur + self._step(2_000, 30_000), p, dev, self._product(p))
            cur = self._signup(cur + self._step(3_000, 20_000), p, dev)
        if p.identified and dev.logged_in:
            cur = self._maintenance(cur, p, dev)
        if p.newsletter and rng.random() < 0.25:
            p.newsletter = False
            cur += self._step(1_000, 20_000)
            self._track(cur, p, dev, "Newsletter Subscribed",
                        {"list_id": "weekly-deals", "source": rng.choice(NEWSLETTER_SOURCES)})  # fmt: skip
        cur = self._browse(cur, p, dev)
        if self.extra_new and rng.random() < 0.35:
            event, makers = self.extra_new[rng.randrange(len(self.extra_new))]
            cur += self._step(1_000, 30_000)
            self._track(cur, p, dev, event, {name: make(rng) for name, make in makers})
        if p.orders and dev.logged_in and rng.random() < 0.05:
            order_id, revenue, currency = p.orders.pop(rng.randrange(len(p.orders)))
            cur += self._step(3_600_000, 3_600_000)
            self._server_track(
                cur, p, "Order Refunded", {"order_id": order_id, "revenue": revenue, "currency": currency}
            )

    def _landing(self, cur: float, p: Person, dev: Device, campaign: bool) -> float:
        rng = self.rng
        if dev.kind != WEB:
            self._track(cur, p, dev, "Application Opened",
                        {"from_background": rng.random() < 0.4, "version": "6.4.1"})  # fmt: skip
            self._page(cur + 200, p, dev, "Home", "/", "Home")
            return cur + 200
        extra = {"referrer": "" if campaign else rng.choice(REFERRERS)}
        if campaign:
            extra["search"] = UTM_SOURCES[0]
        elif rng.random() < 0.25:
            extra["search"] = rng.choice(UTM_SOURCES)
        roll = rng.random()
        if roll < 0.45:
            self._page(cur, p, dev, "Home", "/", "Shopwise - Home", extra)
            return cur
        if roll < 0.75:
            cat = p.fav_cat if rng.random() < 0.5 else rng.randrange(len(CATEGORIES))
            self._page(
                cur, p, dev, "Category", f"/c/{_CAT_SLUGS[cat]}", f"{CATEGORIES[cat][0]} | Shopwise", extra
            )
            self._track(cur + 150, p, dev, "Product List Viewed",
                        {"list_id": _CAT_SLUGS[cat], "category": CATEGORIES[cat][0]})  # fmt: skip
            return cur + 150
        i = self._product(p)
        pr = self.products[i]
        self._page(cur, p, dev, "Product", f"/products/{pr.slug}", f"{pr.name} | Shopwise", extra)
        self._track(cur + 120, p, dev, "Product Viewed", self._view_cache(i, p.currency)[0])
        return cur + 120

    def _login(self, cur: float, p: Person, dev: Device) -> float:
        rng = self.rng
        dev.logged_in = True
        dev.user_frag = f'"userId":"{p.user_id}",{dev.anon_frag}'
        self._page(cur, p, dev, "Sign In", "/account/login", "Sign in | Shopwise")
        cur += self._step(5_000, 20_000)
        first = p.preexisting and p.sessions == 1
        traits = self._full_traits(p) if first else {"email": self.pop.email_form(p)}
        if self._identify(cur, p, dev, traits):
            p.note("user_id", p.user_id)
        self._track(cur + 40, p, dev, "Signed In", {"method": rng.choice(SIGNUP_METHODS)})
        return cur + 40

    def _signup(self, cur: float, p: Person, dev: Device) -> float:
        rng = self.rng
        self._page(cur, p, dev, "Sign Up", "/account/signup", "Create account | Shopwise")
        cur += self._step(15_000, 40_000)
        p.identified = True
        p.created_ms = int(cur)
        dev.logged_in = True
        dev.user_frag = f'"userId":"{p.user_id}",{dev.anon_frag}'
        if self._identify(cur, p, dev, self._full_traits(p)):
            p.note("user_id", p.user_id)
        cur += 50
        self._track(cur, p, dev, "Signed Up", {"method": rng.choice(SIGNUP_METHODS)})
        if rng.random() < 0.1:
            cur += 30
            self._send(cur, "alias", p, dev, f'"previousId":"{dev.anon_id}"')
        if rng.random() < 0.3:
            cur += self._step(10_000, 60_000)
            self._subscription(cur, p, dev)
        if p.newsletter and rng.random() < 0.5:
            p.newsletter = False
            cur += 500
            self._track(cur, p, dev, "Newsletter Subscribed", {"list_id": "weekly-deals", "source": "signup"})
        return cur

    def _subscription(self, cur: float, p: Person, dev: Device) -> None:
        rng = self.rng
        props = {
            "plan": p.plan,
            "billing_period": "annual" if rng.random() < 0.3 else "monthly",
            "price": PLAN_PRICES[p.plan],
            "currency": p.currency,
        }
        self._track(cur, p, dev, "Subscription Started", props)

    def _maintenance(self, cur: float, p: Person, dev: Device) -> float:
        rng = self.rng
        acct = p.account
        if acct is not None and (not p.grouped or rng.random() < 0.04):
            if p.grouped and rng.random() < 0.5:
                acct.mrr *= 1.03 + rng.random() * 0.3
                acct.employees += rng.randrange(0, max(2, acct.employees // 10))
                if acct.plan != "enterprise" and rng.random() < 0.2:
                    acct.plan = PLANS[PLANS.index(acct.plan) + 1]
            cur += self._step(500, 5_000)
            body = f'"groupId":"{acct.group_id}","traits":{self.encode(acct.traits())}'
            if self._send(cur, "group", p, dev, body):
                p.grouped = True
                self.grouped_accounts.add(acct.group_id)
        if p.changes and rng.random() < 0.15:
            cur = self._change(cur + self._step(1_000, 30_000), p, dev, p.changes.pop())
        elif rng.random() < 0.06:
            cur += self._step(500, 5_000)
            self._identify(cur, p, dev, self._partial_traits(p))
        if p.crm_id is not None and not p.crm_synced and rng.random() < 0.5:
            p.crm_synced = True
            cur += self._step(60_000, 600_000)
            if self._identify(cur, p, None, {"crm_id": p.crm_id, "plan": p.plan}):
                p.note("crm_id", p.crm_id)
        return cur

    def _change(self, cur: float, p: Person, dev: Device, change: int) -> float:
        rng = self.rng
        pop = self.pop
        if change == PLAN_CHANGE:
            p.plan = rng.choice([plan for plan in PLANS if plan != p.plan])
            self._subscription(cur, p, dev)
            self._identify(cur + 300, p, dev, {"plan": p.plan, "email": pop.email_form(p)})
        elif change == MOVE:
            if p.country == "US":
                city, state, prefix = rng.choice(US_CITIES)
                postal = f"{prefix}{rng.randrange(100):02d}"
            elif p.country == "GB":
                city, state, prefix = rng.choice(GB_CITIES)
                postal = f"{prefix} {rng.randrange(1, 10)}{rng.choice('ABDEHJLNPRSTUWXZ')}{rng.choice('ABDEHJLNPRSTUWXZ')}"
            else:
                city, state, prefix, _ = rng.choice([c for c in OTHER_CITIES if c[3] == p.country])
                postal = f"{prefix}{rng.randrange(100, 999)}"
            p.address = (city, state, postal)
            self._identify(cur, p, dev, {"address": self._address(p)})
        elif change == SECOND_EMAIL:
            pop.activate_second_email(p)
            self._identify(cur, p, dev, {"email": pop.email_form(p, p.email_pref)})
        elif change == NEW_PHONE:
            phone = pop.ids.phone(p.country)
            if phone is not None:
                p.phone = phone
                p.phone_forms = (rng.randrange(len(phone.forms)),)
                value = pop.phone_form(p)
                if value is not None:
                    traits = {"phone": value[0], "country": p.country} if value[1] else {"phone": value[0]}
                    self._identify(cur, p, dev, traits)
        elif change == NAME_CHANGE:
            p.last = rng.choice(("Smith", "García", "O'Neill", "Nguyen", "Kowalczyk", "Dubois-Laurent"))
            self._identify(cur, p, dev, {"last_name": p.last, "email": pop.email_form(p)})
        elif change == ALIAS:
            old = p.user_id
            style = 2 if old.startswith(("usr_", "cus_")) or old.isdigit() else 0
            p.user_id = pop.ids.user_id(style)
            who = f'"userId":"{p.user_id}"'
            ok = self.em.push(cur, "alias", who, f'"previousId":"{old}"', dev.ctx, dev.kind)
            if ok:
                p.note("user_id", p.user_id)
            for d in p.devices:
                if d.logged_in:
                    d.user_frag = f'"userId":"{p.user_id}",{d.anon_frag}'
            self._identify(cur + 500, p, dev, {"email": pop.email_form(p)})
            cur += 500
        return cur

    # ------------------------------------------------------------------ shopping funnel

    def _product(self, p: Person) -> int:
        # bisect_left on cumulative weights: a draw equal to the total still lands on the last product.
        rnd = self.rng.random
        if rnd() < p.affinity:
            idxs, cum = self.cat_products[p.fav_cat]
            i = idxs[bisect_left(cum, rnd() * cum[-1])]
        else:
            i = bisect_left(self.prod_cum, rnd() * self.prod_total)
        if p.whale:
            j = bisect_left(self.prod_cum, rnd() * self.prod_total)
            if self.products[j].price > self.products[i].price:
                i = j
        return i

    def _view_cache(self, i: int, currency: str) -> tuple[dict[str, Any], str, str]:
        """Product properties for a currency: as a dict, as JSON, and as a whole Product Viewed body."""
        key = i * 4 + _CURRENCY_INDEX[currency]
        hit = self._view_props.get(key)
        if hit is None:
            pr = self.products[i]
            props: dict[str, Any] = {
                "product_id": pr.product_id,
                "sku": pr.sku,
                "category": pr.category,
                "name": pr.name,
                "price": pr.price,
                "currency": currency,
            }
            encoded = self.encode(props)
            hit = (props, encoded, self._event("Product Viewed") + encoded)
            self._view_props[key] = hit
        return hit

    def _view(self, cur: float, p: Person, dev: Device, i: int) -> float:
        # Hot path (most messages are product views): pre-encoded bodies, no helper layers.
        logged = dev.logged_in
        who = dev.user_frag if logged else dev.anon_frag
        ctx = dev.ctx_group if logged and p.grouped else dev.ctx
        push = self.em.push
        if dev.kind == WEB:
            body = self._page_body.get(i)
            if body is None:
                pr = self.products[i]
                path = f"/products/{pr.slug}"
                props = {"path": path, "url": SITE + path, "title": f"{pr.name} | Shopwise"}
                body = f'"name":"Product","properties":{self.encode(props)}'
                self._page_body[i] = body
            ok = push(cur, "page", who, body, ctx, WEB)
        else:
            ok = push(cur, "screen", who, _SCREEN_PRODUCT, ctx, dev.kind)
        if ok and not dev.noted:
            p.note_device(dev)
        props, _, cached = self._view_cache(i, p.currency)
        cur += 40 + self.rng.random() * 400
        if self._view_extra:
            push(cur, "track", who, self._props("Product Viewed", props), ctx, dev.kind)
        else:
            push(cur, "track", who, cached, ctx, dev.kind)
        return cur

    def _wishlist(self, cur: float, p: Person, dev: Device, i: int) -> None:
        """The planted signal for predictive traits: a wishlisted product is often bought within weeks.

        Wishlisting rises with the hidden propensity to buy, and a signed-up person who wishlists buys the
        product later (a server-side order) with WISHLIST_BUYS chance, so "Wishlist Added" in the last
        weeks predicts "Order Completed" in the next ones, even for people who never bought before."""
        rng = self.rng
        product = self.products[i]
        self._track(cur, p, dev, "Wishlist Added", {"product_id": product.product_id})
        if not p.identified or rng.random() >= WISHLIST_BUYS:
            return
        self.order_seq += 1
        later = cur + rng.uniform(1.0, 21.0) * 86_400_000
        props = {**self._view_cache(i, p.currency)[0], "quantity": 1}
        del props["currency"]
        order = {
            "order_id": f"ORD-{self.order_seq:08d}",
            "revenue": product.price,
            "currency": p.currency,
            "products": [props],
        }
        # Not added to p.orders: a refund drawn in a session before `later` would precede its order.
        self._server_track(later, p, "Order Completed", order)

    def _browse(self, cur: float, p: Person, dev: Device) -> float:
        rng = self.rng
        views = 1 + min(int(rng.expovariate(1.0 / p.view_mean)), 20)
        cart: list[tuple[int, int]] = []
        rnd = rng.random
        for _ in range(views):
            cur += 3_000 + 40_000 * _EXP_TABLE[int(rnd() * _EXP_STEPS)]
            i = self._product(p)
            cur = self._view(cur, p, dev, i)
            if rnd() < p.add_rate:
                cur += self._step(2_000, 15_000)
                qty = 1 + int(rng.random() * rng.random() * p.qty_max + 0.5 * rng.random())
                props, encoded, _ = self._view_cache(i, p.currency)
                if self._added_extra:
                    self._track(cur, p, dev, "Product Added", {**props, "quantity": qty})
                else:
                    body = f'{self._added}{encoded[:-1]},"quantity":{qty}}}'
                    self._send(cur, "track", p, dev, body)
                cart.append((i, qty))
            elif rnd() < min(0.5, WISHLIST_RATE * p.buy * p.buy):
                cur += self._step(1_000, 5_000)
                self._wishlist(cur, p, dev, i)
        if not cart:
            return cur
        items = [{**self._view_cache(i, p.currency)[0], "quantity": qty} for i, qty in cart]
        for item in items:
            del item["currency"]
        if rng.random() < 0.6:
            cur += self._step(2_000, 10_000)
            self._page(cur, p, dev, "Cart", "/cart", "Your cart | Shopwise")
            self._track(
                cur + 80, p, dev, "Cart Viewed", {"cart_id": f"cart_{p.idx}_{p.sessions}", "products": items}
            )
        if rng.random() >= min(0.9, 0.45 * p.buy):
            return cur
        self.order_seq += 1
        order_id = f"ORD-{self.order_seq:08d}"
        subtotal = sum(self.products[i].price * qty for i, qty in cart)
        cur += self._step(5_000, 30_000)
        self._page(cur, p, dev, "Checkout", "/checkout", "Checkout | Shopwise")
        checkout = {
            "order_id": order_id,
            "revenue": round(subtotal, 2),
            "currency": p.currency,
            "products": items,
        }
        self._track(cur + 90, p, dev, "Checkout Started", checkout)
        if not dev.logged_in or rng.random() >= min(0.95, 0.55 * p.buy):
            return cur + 90
        cur += self._step(20_000, 90_000)
        order: dict[str, Any] = {"order_id": order_id}
        discount = 0.0
        if rng.random() < 0.15:
            code, rate = COUPONS[rng.randrange(len(COUPONS))]
            order["coupon"] = code
            discount = round(subtotal * rate, 2)
            order["discount"] = discount
        shipping = 0.0 if subtotal > 50 else 4.99
        revenue = round(subtotal - discount, 2)
        order.update(
            revenue=revenue,
            shipping=shipping,
            tax=round(revenue * 0.08, 2),
            total=round(revenue + shipping, 2),
            currency=p.currency,
            products=items,
        )
        self._page(cur, p, dev, "Order Confirmation", "/checkout/complete", "Thank you | Shopwise")
        self._track(cur + 70, p, dev, "Order Completed", order)
        if p.orders is None:
            p.orders = []
        p.orders.append((order_id, revenue, p.currency))
        if len(p.orders) > 4:
            del p.orders[0]
        return cur + 70
