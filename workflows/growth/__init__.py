"""Growth: the campaigns that keep and grow paying customers, decided by the entity.

- ``entity``: :class:`~workflows.growth.entity.Growth`, the plain object CustomerWorkflow
  owns that decides when each starts (renewal reminders, the expansion offer, the team
  promotion);
- ``renewal``: ``RenewalWorkflow``, the renewal reminders of an annual plan;
- ``offer``: ``OfferWorkflow``, the expansion offer and the team promotion.

"Retention" means the save offers and win-back (``workflows/retention/``). The entity's
state field ``retention`` and the ``retention-*`` patch ids keep the names they were recorded
under: running histories and the API's view carry them.
"""
