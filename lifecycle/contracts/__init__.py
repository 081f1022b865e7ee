"""What crosses Temporal, and all that workflow code may import: workflow inputs and
state, events and their payloads, activity payloads, the policy, the catalog, the pure rules.
Nothing here does I/O."""
