"""The Python rules: one module per rule family, each with one `rulekit.Rule` subclass (found by
`rulekit.registry()`; nothing else lists them)."""
