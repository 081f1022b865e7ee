"""Every ``workflow.patched`` id, in one place: why, since when, and when it can go.

A patch walks the samples' ``patching/`` stages: ``patched(ID)`` (new and old code
paths) -> ``deprecate_patch(ID)`` (new path only, still marked) -> removed. It may be
deprecated once no workflow whose history predates it is still running (its old path
is never replayed again), and removed once no running history carries its marker; the
histories under tests/histories/ recorded before it then go too.

The entity (``customer-{id}``) is long-lived, but continue-as-new starts a fresh
history: a run that began after the deploy has every marker it needs. So for an entity
patch the condition is "every open CustomerWorkflow run started after the deploy": the
visibility query ``WorkflowType="CustomerWorkflow" AND ExecutionStatus="Running" AND
StartTime < "<deploy date>"`` finds none.
"""

# --- CustomerWorkflow -------------------------------------------------------------------

# A trial that ends "converted" starts a real Stripe subscription (before: the stage just
# moved to active). Since 2026-11-25. Deprecate when no CustomerWorkflow run started
# before 2026-11-25 is open.
STRIPE_TRIAL_CONVERSION = "stripe-trial-conversion"

# The change_subscription update waits for a signup's trial stage to be recorded first,
# so a subscription answered meanwhile is not overwritten by "trialing". Since
# 2026-11-25. Deprecate when no CustomerWorkflow run started before 2026-11-25 is open.
BILLING_WAIT_UNTIL_BEGUN = "billing-wait-until-begun"

# The update re-checks its request under the billing lock (the validator ran before the
# request waited): a concurrent second create is refused (SubscriptionConflict, 409).
# Since 2026-11-25. Deprecate when no CustomerWorkflow run started before 2026-11-25 is open.
BILLING_RECHECK_UNDER_LOCK = "billing-recheck-under-lock"

# Reactivating a cancel-pending subscription on another tier or interval moves to it, as
# a PATCH would. Since 2026-11-25. Deprecate when no CustomerWorkflow run started before
# 2026-11-25 is open.
BILLING_REACTIVATE_TO_PLAN = "billing-reactivate-to-plan"

# A subscription that turns live while the trial campaign runs signals the trial
# ("subscribed": no more reminders). Since 2026-11-25. Deprecate when no CustomerWorkflow
# run started before 2026-11-25 is open.
BILLING_TELL_TRIAL_SUBSCRIBED = "billing-tell-trial-subscribed"

# A subscription ended by webhook cancels the pending downgrade's child. Since
# 2026-11-25. Deprecate when no CustomerWorkflow run started before 2026-11-25 is open.
BILLING_ENDED_DROPS_PENDING_CHANGE = "billing-ended-drops-pending-change"

# --- CustomerWorkflow and UsageNudgeWorkflow ---------------------------------------------

# A 100 % crossing signals the 80 % nudge of the same metric and period to stand down
# (the entity's side), and an 80 % nudge waiting for quiet hours or the cap listens for it
# (the child's side). Since 2026-11-25. Deprecate when no CustomerWorkflow run and no
# UsageNudgeWorkflow started before 2026-11-25 is open (nudges end within days).
USAGE_NUDGE_SUPERSEDE = "usage-nudge-supersede"

# --- CustomerWorkflow: dunning -----------------------------------------------------------

# A failed payment (invoice.payment_failed, invoice.payment_action_required) starts the
# dunning child customer-{id}/dunning/{invoice} or joins the running one; a subscription
# turned past_due without a failure starts one from the mirror's open invoices. Since
# 2026-12-02. Deprecate when no CustomerWorkflow run started before 2026-12-02 is open.
DUNNING_CAMPAIGN = "dunning-campaign"

# The entity tells its running dunning of every payment method added or made the default
# (``payment_method_added`` with a card id: the ``card_changed`` signal), sent only then.
# Since 2026-12-07. Deprecate when no CustomerWorkflow run started before 2026-12-07 is open.
DUNNING_HEARS_NEW_CARD = "dunning-hears-new-card"

# The entity tells its running dunning when Stripe itself ends the subscription
# (customer.subscription.deleted: canceled, customer.subscription.updated to unpaid): the
# ``subscription_ended`` signal, sent only then. Since 2026-12-07. Deprecate when no
# CustomerWorkflow run started before 2026-12-07 is open.
DUNNING_HEARS_SUBSCRIPTION_END = "dunning-hears-subscription-end"
# --- CustomerWorkflow: pre-dunning ---------------------------------------------------------

# The entity acts on ``billing.default_card`` (before: an unknown kind, logged and
# ignored): it keeps the default card and starts, replaces or cancels its expiry reminders
# (CardExpiryWorkflow). Since 2026-12-02. Deprecate when no CustomerWorkflow run started
# before 2026-12-02 is open.
CARD_EXPIRY_REMINDERS = "card-expiry-reminders"
# --- CustomerWorkflow (retention) ----------------------------------------------------------

# After each event and each subscription request the entity asks workflows/retention.py:
# renewal reminders for annual plans (customer-{id}/renewal/{date}, moved or dropped with
# the subscription), the expansion offer after high-usage periods, the team promotion
# (activation reports counted, the first-report de-duplication for onboarding unchanged).
# Since 2026-12-02. Deprecate when no CustomerWorkflow run started before 2026-12-02 is open.
RETENTION_CAMPAIGNS = "retention-campaigns"
# --- CustomerWorkflow (webhooks to the product) ------------------------------------------

# The entity publishes webhook events for the product (customer.stage_changed,
# customer.entitlements_changed on a plan change, usage.threshold_crossed,
# subscription.changed, campaign.finished): one publish_webhook activity each, after the
# change it reports. One id for every call site: the SDK memoizes the first answer per run,
# so an entity run started before the deploy publishes nothing until it continues as new
# (then every site publishes). Since 2026-12-02. Deprecate when no CustomerWorkflow run
# started before 2026-12-02 is open.
WEBHOOKS_PUBLISH = "webhooks-publish"
# --- every controlled campaign (trial, onboarding, usage nudge, plan change) --------------

# Ops controls (workflows/controls.py): the campaign upserts its Campaign / WaitingFor /
# NextStepAt search attributes as it moves, and pause, resume and skip-step act on it.
# Decided once at the start of a campaign run: one started before the deploy answers the
# ``waiting`` query but ignores the controls. Since 2026-12-02. Deprecate when no campaign
# child started before 2026-12-02 is open (the longest, the trial, ends within its length).
CAMPAIGN_CONTROLS = "campaign-controls"

# A retention campaign (renewal reminders, expansion offer, team promotion) that the entity
# starts while ops has marketing paused is told to pause at once, as the campaigns started
# through the entity's own start already were. Since 2026-12-02. Deprecate when no
# CustomerWorkflow run started before 2026-12-02 is open.
OPS_PAUSE_RETENTION_STARTS = "ops-pause-retention-starts"

# A controlled campaign, and dunning, tells its entity what it waits for (the
# ``campaign_wait`` signal, one each time its WaitingFor / NextStepAt change, and
# ``nothing`` when it has no step left), so the entity can carry Waits and NextStepAt
# (workflows/controls.EntityReports). Decided once at the start of a campaign run. Since 2026-12-02. Deprecate when no campaign child started before
# 2026-12-02 is open.
CAMPAIGN_REPORTS_WAITS = "campaign-reports-waits"

# An offer (expansion, team promotion) made while ops has marketing paused starts paused
# by its input (OfferInput.paused), since its step is due at once and the pause signal
# after the start came after the email had gone out; one resumed while it was starting is
# told to resume. Since 2026-12-02. Deprecate when no CustomerWorkflow run started before
# 2026-12-02 is open.
OPS_OFFERS_START_PAUSED = "ops-offers-start-paused"

# --- CustomerWorkflow -------------------------------------------------------------------

# The entity upserts its Campaigns search attribute (the campaigns running now) when one
# starts, ends or is cancelled, for `lifecycle customers list --campaign`. Since 2026-12-02.
# Deprecate when no CustomerWorkflow run started before 2026-12-02 is open.
OPS_CAMPAIGNS_ATTRIBUTE = "ops-campaigns-attribute"

# The entity keeps its campaigns' reports (``campaign_wait``) and upserts its Waits and
# NextStepAt search attributes from them, and drops a report once its campaign no longer
# runs, for `lifecycle customers list --waiting-for / --next-step-before` in one query.
# Since 2026-12-02. Deprecate when no CustomerWorkflow run started before 2026-12-02 is open.
ENTITY_WAITS = "entity-waits"
# --- CustomerWorkflow: retention ---------------------------------------------------------

# A cancellation request with a reason may be answered with a save offer (policy
# [save_offers]) instead of canceling at once; the offer's window and a pause's end are
# timers of the entity. Requests without a reason (every one before) cancel as before.
# Since 2026-12-02. Deprecate when no CustomerWorkflow run started before 2026-12-02 is open.
RETENTION_SAVE_OFFERS = "retention-save-offers"

# A cancellation without a reason while a save offer is open closes the offer as
# ``withdrawn`` (before: it stayed open, could still be accepted, and its window's end
# carried the first cancellation out again). Asked only while an offer is open. Since
# 2026-12-02. Deprecate when no CustomerWorkflow run started before 2026-12-02 is open.
RETENTION_CANCEL_WITHDRAWS_OFFER = "retention-cancel-withdraws-offer"

# A stage change to canceled or expired starts the win-back child
# (customer-{id}/winback/{n}); what follows from it (telling it of an unsubscribe, "lost"
# when it ends) is reachable only through that child. Since 2026-12-02. Deprecate when no
# CustomerWorkflow run started before 2026-12-02 is open.
RETENTION_WINBACK = "retention-winback"


# --- DunningWorkflow: webhooks to the product -----------------------------------------------

# Every dunning state change publishes dunning.state_changed, and a suspension or its lift
# customer.entitlements_changed (workflows/notify.publish: one activity each). Since
# 2026-12-02. Deprecate when no DunningWorkflow started before 2026-12-02 is open.
DUNNING_WEBHOOKS = "dunning-webhooks"

# --- DunningWorkflow: a new card --------------------------------------------------------------

# Retry mode engine: a ``card_changed`` signal retries every open invoice at once (hard
# declines and 3-D Secure too: the card is new) when the card is the one Stripe charges
# it with, once per card (keys ``…/card_update/{pm}/{invoice}``); the outcome is the usual
# one. Decided when the signal is handled (no earlier history carries the signal). Since
# 2026-12-07. Deprecate when no DunningWorkflow started before 2026-12-07 is open.
DUNNING_NEW_CARD_RETRY = "dunning-new-card-retry"

# --- DunningWorkflow: by Stripe's rules (issue 18) --------------------------------------------

# retry-now and extend-grace that arrive while a payment (or the end action) ends the
# dunning answer the actual outcome ("already recovered") instead of waiting for a retry
# or a save the finished run never makes (before: the handler waited forever and the run
# waited for it). Decided when the update is handled. Since 2026-12-07. Deprecate when no
# DunningWorkflow started before 2026-12-07 is open.
DUNNING_HANDLERS_ANSWER_THE_END = "dunning-handlers-answer-the-end"

# Retry mode stripe: a failure without ``next_payment_attempt`` (3-D Secure, a hard decline
# Stripe will not retry) no longer means "Stripe gave up" and brings the end action at once;
# the dunning waits for the customer, Stripe's own end of the subscription, a payment, a
# void, or the policy's end day. Decided once, when the dunning begins (stripe mode only).
# Since 2026-12-07. Deprecate when no DunningWorkflow started before 2026-12-07 is open.
DUNNING_STRIPE_WAITS = "dunning-stripe-waits"

# A ``subscription_ended`` signal (Stripe canceled the subscription or made it unpaid)
# ends the dunning as Stripe did: canceled (no cancel call of ours) or unpaid (suspended,
# waiting to be paid). Decided when the signal is handled (no earlier history carries the
# signal). Since 2026-12-07. Deprecate when no DunningWorkflow started before 2026-12-07 is open.
DUNNING_ENDS_WITH_THE_SUBSCRIPTION = "dunning-ends-with-the-subscription"

# Every key of a dunning (emails, charges, the timeline, the product's webhooks, the
# cancel) carries the run (its first-execution run id) and its rows in dunning_runs /
# dunning_cases are the run's: a second dunning for the same invoice after one ended sends,
# charges and records again instead of finding the first run's keys. Decided once, when the
# dunning begins. Since 2026-12-07. Deprecate when no DunningWorkflow started before
# 2026-12-07 is open.
DUNNING_KEYS_BY_RUN = "dunning-keys-by-run"

# The end action cancel is recorded (state canceled, dunning_ended, the entity told) only
# after Stripe confirms it; a call failing beyond its activity retries is tried again with
# backoff (5 min doubling to 1 h) for as long as it fails, the run meanwhile "canceling"
# with the error saved (metrics, ops digest, customer view). Decided when the end action
# is taken. Since 2026-12-07. Deprecate when no DunningWorkflow started before 2026-12-07 is open.
DUNNING_END_CONFIRMED = "dunning-end-confirmed"

# Retry mode engine: a scheduled retry whose every Stripe call failed (StripeUnavailable
# beyond the activity's retries) does not use up its number: it runs again a tenth of a
# policy day later, under new keys (``…/retry_{n}/again_{k}/…``), until Stripe answers.
# Decided when such a retry fails. Since 2026-12-07. Deprecate when no DunningWorkflow
# started before 2026-12-07 is open.
DUNNING_OUTAGE_KEEPS_RETRY = "dunning-outage-keeps-retry"
