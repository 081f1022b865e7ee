"""``lifecycle dev --demo``: three sample customers sent through a compressed trial."""

from __future__ import annotations

import time

import httpx


def run_demo(base_url: str, key: str) -> None:
    """Three sample customers: one converts, one activates early, one lets the trial expire."""
    headers = {"Authorization": f"Bearer {key}"}
    stamp = time.strftime("%H%M%S")
    people = [
        (f"demo-{stamp}-ada", "ada@example.test", "Ada Lovelace", "Analytical Engines", "Europe/London"),
        (f"demo-{stamp}-grace", "grace@example.test", "Grace Hopper", "Compilers Inc", "America/New_York"),
        (f"demo-{stamp}-alan", "alan@example.test", "Alan Turing", "Bletchley Labs", "Europe/London"),
    ]
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
        for cid, email, name, company, tz in people:
            r = http.post(
                "/v1/events/signup",
                json={"customer_id": cid, "email": email, "name": name, "company": company, "timezone": tz},
            )
            print(f"demo: signed up {cid}: {r.status_code} {r.json().get('stage', r.text)}")
        http.post(f"/v1/customers/{people[0][0]}/payment-method", json={"payment_method_id": "pm_card_visa"})
        print(f"demo: {people[0][0]} added a payment method (will convert)")
        http.post("/v1/events/activation", json={"customer_id": people[1][0], "fact": "created_first_project"})
        print(f"demo: {people[1][0]} created a first project (its tip is skipped)")
        print(f"demo: {people[2][0]} does nothing (trial will expire)")
        print("demo: watch the Temporal UI and `lifecycle customer show <id>`; the outbox fills as days pass")
