"""Retention: keeping a customer who is leaving or has left.

- ``entity``: :class:`~workflows.retention.entity.RetentionSide`, the entity's side of the
  cancellation save (the save offers) and of win-back;
- ``winback``: ``WinbackWorkflow``, the win-back campaign.

The records live in ``lifecycle/retention/``; renewal and expansion are ``workflows/growth/``.
"""
