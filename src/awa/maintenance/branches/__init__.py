"""The built-in maintenance branches: one module per branch, its stem the branch's ``name``.

Each module holds one ``Branch`` subclass and what only it needs; no branch imports another,
nor the machinery that schedules it (leader, lane, supervisor): import-linter enforces both
(``pyproject.toml``, ADR 017). ``awa.maintenance.builtin`` lists them.
"""
