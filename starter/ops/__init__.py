"""What support does with one customer, shared by the HTTP API and the CLI: why-waiting,
the actions, the Stripe cross-check and the customers list."""
