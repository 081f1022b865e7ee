"""Activity timeouts and retry policies, one definition each (the calls pass them on).

Changing a value here changes how new activity attempts are scheduled, not the order of
commands: running histories still replay.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.email import NON_RETRYABLE_TYPES

# --- the store (timeline entries, stage changes) ----------------------------------------

STORE_TIMEOUT = timedelta(seconds=30)
STORE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))

# --- email ------------------------------------------------------------------------------

# Provider outages (429/5xx, SMTP 4xx) and template errors are waited out: retries back
# off to every 10 minutes and never give up, so no email is lost; ops see the pending
# activity and its error in the Web UI. Final refusals (unknown customer, provider 4xx)
# are non-retryable.
SEND_TIMEOUT = timedelta(seconds=60)
EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# --- Stripe -----------------------------------------------------------------------------

STRIPE_TIMEOUT = timedelta(seconds=60)
# Calls someone waits on (the subscription update): transient failures (network, 429,
# 5xx) retry with backoff; a refusal (other 4xx) is non-retryable and fails at once with
# Stripe's message.
STRIPE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=6,
)
# A dunning's end action (the cancel) that fails beyond STRIPE_RETRY is tried again by the
# workflow after this wait, doubling up to DUNNING_END_RETRY_MAX, for as long as it fails
# (workflows/dunning/end_action.py: the run shows the failure meanwhile).
DUNNING_END_RETRY_FIRST = timedelta(minutes=5)
DUNNING_END_RETRY_MAX = timedelta(hours=1)
# The trial conversion has no one waiting on an answer and must not give up on an outage:
# transient failures retry with backoff up to every 10 minutes, without an attempt cap
# (like the email activity); only a refusal (non-retryable) ends in past_due.
CONVERSION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
# A downgrade applied at the period end: nobody waits, it may take a while to get through.
PLAN_CHANGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=20,
)
