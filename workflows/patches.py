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

# The trial conversion charges the customer's default payment method: the card the entity
# heard last (payment_method.attached, the payment-method route) is attached if need be but
# made the default only for a customer with none (StartSubscriptionInput.keep_default;
# before: it always became the default, overriding the one the customer chose). Since
# 2026-12-07. Deprecate when no CustomerWorkflow run started before 2026-12-07 is open.
TRIAL_CONVERSION_KEEPS_DEFAULT = "trial-conversion-keeps-default"

# A billing period other than one month or one year (a weekly or daily price, a quarterly
# one: month x3) is reckoned by the year (lifecycle/contracts/catalog.per_year_cents) and
# the entity keeps the price's interval_count; before, annual_cents raised inside the
# change_subscription update and the workflow task failed over and over. Decided where
# such a period meets a comparison (the old path raised there). Since 2026-12-07.
# Deprecate when no CustomerWorkflow run started before 2026-12-07 is open.
PRICE_PERIODS = "price-periods"

# Annual to monthly billing on the same tier is a change of interval applied at the end of
# the paid year (the downgrade's PlanChangeWorkflow), not an upgrade invoiced now (a
# month's twelve times costing more than the annual price read it as one). Since
# 2026-12-07. Deprecate when no CustomerWorkflow run started before 2026-12-07 is open.
BILLING_INTERVAL_AT_PERIOD_END = "billing-interval-at-period-end"

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

# After each event and each subscription request the entity asks workflows/growth/entity.py:
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

# A campaign child's reports name its run: its end (``campaign_finished``) carries the run
# id in the payload and in the event id (``{workflow id}:finished:{run id}``), and its
# ``campaign_wait`` reports the run id, so a campaign started again under the same workflow
# id (a renewal for the same date, a dunning for the same invoice) is heard ending each
# time instead of being dropped as an event id already seen; the entity keeps reports by
# (workflow id, run id) and an older run's end never unlists the newer run. Decided when
# the child reports (no earlier history carries a run-keyed report). Since 2026-12-07.
# Deprecate when no campaign child and no CustomerWorkflow run started before 2026-12-07
# is open.
CAMPAIGN_REPORTS_BY_RUN = "campaign-reports-by-run"

# Data a workflow cannot decide on (a tier its snapshot of the catalog lacks, a billing
# period it cannot reckon) is recorded on the timeline (``workflow_data_error``, naming
# what was unknown) and the step it was for is skipped; before, the lookup raised inside
# workflow code and the workflow task failed over and over (the entity stalled). The
# entity (expansion offer, team promotion, reactivation), the usage nudge and the renewal
# reminders. Decided where the data turns out unknown (the old path raised there, so no
# history goes on past it). Since 2026-12-07. Deprecate when no CustomerWorkflow run,
# UsageNudgeWorkflow or RenewalWorkflow started before 2026-12-07 is open.
DATA_ERRORS_RECORDED = "data-errors-recorded"

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

# A save offer holds the cancellation in Stripe: ``cancel_at_period_end`` is set when the
# request arrives (before: Stripe heard nothing, so a renewal inside the 7-day window
# charged another month, a year on annual) and cleared when the offer is accepted; a
# decline or expiry finds it set. Since 2026-12-07. Deprecate when no CustomerWorkflow run
# started before 2026-12-07 is open.
RETENTION_OFFER_HOLDS_CANCEL = "retention-offer-holds-cancel"

# While a save offer holds the cancellation (``cancel_at_period_end`` set by the offer, not
# yet the customer's choice) the renewal reminders go on (before: dropped as "the customer
# canceled", a reminder due inside the window lost, the campaign restarted on accept), and
# a plan change is refused until the offer is answered (before: a prorated change charged
# at once while Stripe still ended the subscription at the period end). Since 2026-12-07.
# Deprecate when no CustomerWorkflow run started before 2026-12-07 is open.
RETENTION_HOLD_KEEPS_RENEWAL = "retention-hold-keeps-renewal"
RETENTION_HOLD_REFUSES_CHANGE = "retention-hold-refuses-change"

# Offer and win-back coupons mean what the email says on every interval
# (lifecycle/contracts/coupons.py): the Stripe activity makes the terms from the price it
# discounts (before: ``repeating`` N months, on an annual plan P % off a whole year); the
# win-back emails get the interval's price and the offer's words. Since 2026-12-07.
# Deprecate when no CustomerWorkflow run started before 2026-12-07 is open.
RETENTION_COUPON_BY_INTERVAL = "retention-coupon-by-interval"

# An accepted pause limits access as the policy says (``save_offers.pause_access``: keep,
# read_only, none; default none): the entity records it for the usage check and the
# entitlements (``access_pauses``) and tells the product (customer.entitlements_changed),
# and the resume restores both (before: pause_collection with behavior void kept every
# entitlement, the service given away). Since 2026-12-07. Deprecate when no
# CustomerWorkflow run started before 2026-12-07 is open.
RETENTION_PAUSE_ACCESS = "retention-pause-access"

# A stage change to canceled or expired starts the win-back child
# (customer-{id}/winback/{n}); what follows from it (telling it of an unsubscribe, "lost"
# when it ends) is reachable only through that child. Since 2026-12-02. Deprecate when no
# CustomerWorkflow run started before 2026-12-02 is open.
RETENTION_WINBACK = "retention-winback"

# --- CustomerWorkflow: policy versions ------------------------------------------------------

# The entity decides on a published policy version (lifecycle/contracts/policy_versions.py)
# instead of the policy and tiers its first input carried: at each continue-as-new it loads
# the latest through the policy_latest activity and continues with the version id only
# (the next run loads it by id first); a policy_version signal makes it load the latest at
# once. An entity of the previous release (a full policy in its input) converts at its next
# continue-as-new or on the signal. Since 2026-12-07. Deprecate when no CustomerWorkflow run
# started before 2026-12-07 is open.
POLICY_VERSIONS = "policy-versions"


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

# Retry mode engine: a new card's retry answered card_hard_declined (its last attempt on the
# invoice hard-declined and it has not changed: nothing charged) neither marks the card as
# retried nor counts as an attempt; the same card heard again (after a real update) is
# retried, under new keys (``…/card_update/{card}/again_{k}/…``). Decided when such an
# answer comes. Since 2026-12-07. Deprecate when no DunningWorkflow started before
# 2026-12-07 is open.
DUNNING_CARD_HARD_DECLINED_NOT_COUNTED = "dunning-card-hard-declined-not-counted"

# --- RenewalWorkflow ----------------------------------------------------------------------

# The reminder's context carries the renewal instant (``renewal.at``, ISO 8601), so the
# email shows the renewal date in the customer's time zone (lifecycle/email/amounts.py;
# before: the UTC date, formatted by the workflow). Asked when a reminder goes out. Since
# 2026-12-07. Deprecate when no RenewalWorkflow started before 2026-12-07 is open.
RENEWAL_DATE_IN_CUSTOMER_ZONE = "renewal-date-in-customer-zone"

# --- UsageNudgeWorkflow ---------------------------------------------------------------------

# The usage email's context carries the period's end as an instant (``usage.period_end_at``),
# so the email says when the count starts afresh on the customer's calendar
# (lifecycle/email/amounts.py; before: the UTC date). Asked at the start of a nudge. Since
# 2026-12-07. Deprecate when no UsageNudgeWorkflow started before 2026-12-07 is open.
USAGE_PERIOD_END_IN_CUSTOMER_ZONE = "usage-period-end-in-customer-zone"
