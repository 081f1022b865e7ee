"""Dunning (payment recovery): ``DunningWorkflow`` and the modules it is made of.

- ``workflow``: the workflow (its signals, updates, queries and main loop, the stages);
- ``state``: the run's state and the views every step reads (snapshot, next step);
- ``retry``: the retry step (scheduled, asked by ops, or a new card);
- ``end_action``: the end action and its confirmation loop, or the recovery.

What is due when is ``workflows/dunning_schedule.py``; what it tells,
``workflows/dunning_effects.py``; the entity's side, ``workflows/dunning_link.py``.
"""

from workflows.dunning.workflow import DunningWorkflow

__all__ = ["DunningWorkflow"]
