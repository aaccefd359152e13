"""The ledger: a hash-chained double-entry journal of fills, positions and cash on Postgres."""
