"""The audit: replay the streams and check signatures, chains, the ledger and its balances.

Modules are imported by what they are (`ops.audit.trail`, `ops.audit.verify`, ...): the package
imports nothing, so looking up one intent does not load the ledger checks and asyncpg.
"""
