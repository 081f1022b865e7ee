"""The retention part of ``lifecycle customer show``: cancellation requests, save offers
and reactivations as recorded (newest first)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from lifecycle.retention.records import summary
from starter.cli.text import safe


def print_winback(console: Console, session: Session, customer_id: str) -> None:
    facts = summary(session, customer_id)
    if not any(facts.values()):
        console.print("retention: no cancellation request, save offer or reactivation")
        return
    table = Table(title="retention")
    for col in ("when (UTC)", "what", "detail"):
        table.add_column(col)
    for r in facts["cancellation_requests"]:
        table.add_row(r["requested_at"][:19], "cancellation request",
                      safe(f"reason={r['reason']} outcome={r['outcome']} offer={r['offer_id'] or '-'}"))
    for o in facts["save_offers"]:
        what = {"pause": f"pause {o['months']} months", "coupon": f"{o['percent_off']:g}% off {o['months']} months",
                "downgrade": f"downgrade to {o['plan']}"}.get(o["kind"], o["kind"])
        table.add_row(o["expires_at"][:19], f"save offer {safe(o['offer_id'])}",
                      safe(f"{what} for {o['reason']}: {o['status']} (window ends at the time shown)"))
    for w in facts["reactivations"]:
        offer = f", {w['percent_off']:g}% off (coupon {w['coupon_id']})" if w["coupon_id"] else ""
        table.add_row(w["at"][:19], "reactivated (won back)",
                      safe(f"{w['plan']} {w['interval']}ly, MRR ${w['mrr_cents'] / 100:,.2f}{offer}, win-back #{w['winback']}"))
    console.print(table)
