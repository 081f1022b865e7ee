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

# --- CustomerWorkflow: retention ---------------------------------------------------------

# A cancellation request with a reason may be answered with a save offer (policy
# [save_offers]) instead of canceling at once; the offer's window and a pause's end are
# timers of the entity. Requests without a reason (every one before) cancel as before.
# Since 2026-12-02. Deprecate when no CustomerWorkflow run started before 2026-12-02 is open.
RETENTION_SAVE_OFFERS = "retention-save-offers"

# A stage change to canceled or expired starts the win-back child
# (customer-{id}/winback/{n}); what follows from it (telling it of an unsubscribe, "lost"
# when it ends) is reachable only through that child. Since 2026-12-02. Deprecate when no
# CustomerWorkflow run started before 2026-12-02 is open.
RETENTION_WINBACK = "retention-winback"
