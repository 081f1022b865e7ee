"""Email: the sending service, suppressions, templates, providers, rules and results."""
