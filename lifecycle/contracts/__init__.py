"""What crosses Temporal, and all that workflow code may import. Nothing here does I/O.

- ``ids``: workflow ids (the entity, its campaigns, the usage emails)
- ``customer``: the entity's event, state and input
- ``events``: the kinds of event and one payload dataclass per kind
- ``campaigns``: the campaign children's inputs and status
- ``billing``: Stripe activity inputs and results, subscription requests, billing state
- ``email``: the email activity's input and result
- ``timeline``: the store activity's input (a timeline entry)
- ``search_attributes``: the keys ops filter on
- ``policy``: the campaign policy; ``catalog``: the tiers; ``stages``: the stage rule
"""
