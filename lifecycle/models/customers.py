"""Customers and the plan catalog as the database holds them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lifecycle.models.base import Base, utcnow

# --- customers and the catalog ----------------------------------------------------------


class Customer(Base):
    """A customer of the SaaS product, keyed by the product's own id."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # None: first seen in Stripe on a price that maps to no tier (lifecycle.billing.prices)
    plan_code: Mapped[str | None] = mapped_column(ForeignKey("plans.code"))
    stage: Mapped[str] = mapped_column(String(32), default="trialing", index=True)
    trial_ends_at: Mapped[dt.datetime | None]
    payment_method_on_file: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PlanRow(Base):
    """The catalog as stored (seeded from lifecycle.contracts.catalog)."""

    __tablename__ = "plans"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    rank: Mapped[int] = mapped_column(Integer)
    monthly_price_cents: Mapped[int] = mapped_column(Integer)
    annual_price_cents: Mapped[int] = mapped_column(Integer)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stripe_product_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PlanPrice(Base):
    """A Stripe plan (a price) for a tier and interval. Old prices are kept, marked inactive."""

    __tablename__ = "plan_prices"
    __table_args__ = (UniqueConstraint("stripe_plan_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_code: Mapped[str] = mapped_column(ForeignKey("plans.code"), index=True)
    interval: Mapped[str] = mapped_column(String(8))  # month | year
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="usd")
    stripe_plan_id: Mapped[str] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
