"""Database models (SQLAlchemy 2.0 typed ORM). The database owns facts; Temporal owns decisions.

Every table the engine needs is defined in this package, one module per domain (customers,
billing, usage, email, timeline, dunning, webhooks, retention); importing the package
registers them all on ``Base.metadata``. Alembic migrations under ``lifecycle/migrations``
create them, and ``tests/test_db.py`` proves the two agree on SQLite and on PostgreSQL.
"""

from lifecycle.models.base import NAMING, Base, Quantity, UTCDateTime, utcnow
from lifecycle.models.billing import (
    CustomerCard,
    Invoice,
    Payment,
    StripeEvent,
    StripeObject,
    StripePaymentMethod,
    StripePrice,
    StripeProduct,
    Subscription,
    SubscriptionChange,
)
from lifecycle.models.customers import Customer, PlanPrice, PlanRow
from lifecycle.models.dunning import DunningCase, DunningRun, ManualPayment
from lifecycle.models.email import EmailMessage, Suppression, TemplateVersion
from lifecycle.models.idempotency import IdempotencyKey
from lifecycle.models.policy import PolicyPublicationRow, PolicyVersionRow
from lifecycle.models.retention import AccessPause, CancellationRequest, Reactivation, SaveOfferRow
from lifecycle.models.timeline import AuditEntry, LifecycleEvent
from lifecycle.models.usage import SignalOutbox, UsageCounter, UsageEvent, UsageSignal
from lifecycle.models.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEventRow

__all__ = [
    "AuditEntry",
    "Base",
    "AccessPause",
    "CancellationRequest",
    "Customer",
    "CustomerCard",
    "DunningCase",
    "DunningRun",
    "EmailMessage",
    "IdempotencyKey",
    "Invoice",
    "LifecycleEvent",
    "ManualPayment",
    "NAMING",
    "Payment",
    "PlanPrice",
    "PlanRow",
    "PolicyPublicationRow",
    "PolicyVersionRow",
    "Quantity",
    "Reactivation",
    "SaveOfferRow",
    "SignalOutbox",
    "StripeEvent",
    "StripeObject",
    "StripePaymentMethod",
    "StripePrice",
    "StripeProduct",
    "Subscription",
    "SubscriptionChange",
    "Suppression",
    "TemplateVersion",
    "UTCDateTime",
    "UsageCounter",
    "UsageEvent",
    "UsageSignal",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEventRow",
    "utcnow",
]
