"""One module per trace rule: an Observer subclass with CODE set (see syscall_lint/strace/observer.py).

Modules whose names start with "_" hold what several rules share and define no rule.
"""
