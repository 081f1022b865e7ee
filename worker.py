"""The Temporal worker: registers every workflow and activity on the engine's task queue.

Run it with ``lifecycle worker`` (or ``python worker.py``). Workers are stateless; run
as many replicas as load needs, all on the same task queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.dunning import DunningActivities
from activities.email import EmailActivities
from activities.ops import OpsActivities
from activities.policy import PolicyActivities
from activities.renewal import RenewalActivities
from activities.store import StoreActivities
from activities.stripe import StripeActivities
from activities.stripe.previews import RenewalPreviews
from activities.webhooks import WebhookActivities
from activities.winback import WinbackActivities
from lifecycle.db import make_engine, make_session_factory
from lifecycle.email.providers import make_provider
from lifecycle.settings import Settings, get_settings, refuse_unsafe_start
from lifecycle.temporal import connect, ensure_search_attributes
from workflows.card_expiry import CardExpiryWorkflow
from workflows.customer import CustomerWorkflow
from workflows.dunning import DunningWorkflow
from workflows.growth.offer import OfferWorkflow
from workflows.growth.renewal import RenewalWorkflow
from workflows.onboarding import OnboardingWorkflow
from workflows.plan_change import PlanChangeWorkflow
from workflows.retention.winback import WinbackWorkflow
from workflows.trial import TrialWorkflow
from workflows.usage_nudge import UsageNudgeWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

WORKFLOWS: Sequence[type] = (
    CustomerWorkflow,
    TrialWorkflow,
    OnboardingWorkflow,
    UsageNudgeWorkflow,
    PlanChangeWorkflow,
    DunningWorkflow,
    CardExpiryWorkflow,
    RenewalWorkflow,
    OfferWorkflow,
    WebhookDeliveryWorkflow,
    WinbackWorkflow,
)


def build_activities(settings: Settings, session_factory: sessionmaker[Session]) -> list[Callable[..., Any]]:
    """Every activity, bound to its clients (built once per worker)."""
    store = StoreActivities(session_factory)
    email = EmailActivities(session_factory, settings, make_provider(settings))
    stripe_acts = StripeActivities.from_settings(settings, session_factory)
    dunning = DunningActivities(session_factory, settings)
    retention = RenewalActivities(session_factory, RenewalPreviews(stripe_acts.stripe_client))
    webhooks = WebhookActivities(session_factory, settings)
    ops = OpsActivities(session_factory)
    winback = WinbackActivities(session_factory)
    policy = PolicyActivities(session_factory)
    return [store.record_event, email.send_email, email.resend_email, *stripe_acts.all(), *dunning.all(),
            retention.renewal_terms, *webhooks.all(), ops.record_action,
            *winback.all(), policy.latest, policy.version]


def build_worker(
    client: Client,
    settings: Settings,
    session_factory: sessionmaker[Session],
    *,
    task_queue: str | None = None,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=build_activities(settings, session_factory),
        max_concurrent_activities=50,
    )


async def publish_at_start(client: Client, settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Deployed files never published (a deploy without ``lifecycle policy publish``) become
    the latest version, and the running entities hear of it; a failure is logged, not fatal."""
    from starter.signals.policy import announce, publish_current

    log = logging.getLogger(__name__)
    try:
        published = await asyncio.to_thread(publish_current, settings, sessions, who="worker", reinstate=False)
        if published.changed:
            log.info("published policy version %s (the deployed files)", published.version.version_id)
            await announce(client, published.version.version_id)
    except Exception as exc:  # the files are checked again by `lifecycle policy publish`
        log.error("policy not published at start: %s", exc)


async def run_worker(settings: Settings) -> None:
    """Check the settings (before connecting to anything), connect, and run until cancelled."""
    refuse_unsafe_start(settings, who="the worker")
    client = await connect(settings)
    try:
        await ensure_search_attributes(client)
    except Exception as exc:  # Temporal Cloud: attributes are registered in the namespace UI
        logging.getLogger(__name__).warning("could not register search attributes: %s", exc)
    engine = make_engine(settings.database_url)
    try:
        sessions = make_session_factory(engine)
        worker = build_worker(client, settings, sessions)
        publishing = asyncio.create_task(publish_at_start(client, settings, sessions))
        logging.getLogger(__name__).info(
            "worker on task queue %r at %s (namespace %s)",
            settings.task_queue,
            settings.temporal_address,
            settings.temporal_namespace,
        )
        await worker.run()
        await publishing
    finally:
        engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("stripe").setLevel(logging.WARNING)  # request URLs can carry customer emails
    asyncio.run(run_worker(get_settings()))
