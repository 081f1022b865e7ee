"""Fixtures for the Stripe tests (registered in tests/conftest.py with ``pytest_plugins``).

One localstripe per test session on a free port, its state in memory only (the launcher
in starter.dev.localstripe keeps it away from the shared /tmp/localstripe.pickle). Tests
do not share customers: each makes its own ids, so they can share the server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from activities.stripe import StripeActivities
from lifecycle.billing.catalog_sync import SyncReport, sync_catalog
from lifecycle.billing.client import make_stripe_client
from lifecycle.settings import Settings
from starter.dev.localstripe import LocalStripe, start_localstripe
from tests.support.stripe import WEBHOOK_SECRET, RecordingStripe


@pytest.fixture(scope="session")
def localstripe() -> Iterator[LocalStripe]:
    with start_localstripe() as handle:
        yield handle


@pytest.fixture
def stripe_settings(settings: Settings, localstripe: LocalStripe) -> Settings:
    return settings.model_copy(
        update={
            "stripe_api_key": SecretStr("sk_test_lifecycle"),
            "stripe_api_base": localstripe.url,
            "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "stripe_localstripe_compat": True,
        }
    )


@pytest.fixture
def stripe_client(stripe_settings: Settings) -> stripe.StripeClient:
    return make_stripe_client(stripe_settings)


@pytest.fixture
def synced(stripe_client: stripe.StripeClient, session_factory: sessionmaker[Session]) -> SyncReport:
    """The catalog synced into localstripe and recorded in this test's database."""
    return sync_catalog(stripe_client, session_factory)


@pytest.fixture
def stripe_acts(
    stripe_client: stripe.StripeClient, session_factory: sessionmaker[Session], synced: SyncReport
) -> StripeActivities:
    return StripeActivities(stripe_client, session_factory, localstripe_compat=True)


@pytest.fixture
def recording(localstripe: LocalStripe) -> Iterator[RecordingStripe]:
    rec = RecordingStripe(localstripe.url).start()
    try:
        yield rec
    finally:
        rec.stop()

