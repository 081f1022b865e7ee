"""Dunning (payment recovery): ``DunningWorkflow`` and the modules it is made of.

- ``workflow``: the workflow (its signals, updates, queries and main loop, the stages);
- ``state``: the run's state and the views every step reads (snapshot, next step);
- ``retry``: the retry step (scheduled, asked by ops, or a new card);
- ``end_action``: the end action and its confirmation loop, or the recovery;
- ``schedule``: what is due when;
- ``effects``: what each step tells (emails, the product's webhooks, the stage);
- ``entity``: :class:`~workflows.dunning.entity.DunningSide`, the entity's side (starts the
  run, forwards failures and payments, hears how it ended).
"""

from workflows.dunning.workflow import DunningWorkflow

__all__ = ["DunningWorkflow"]
