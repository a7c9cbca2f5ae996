"""The SQLite store: the usage ledger, conversation memory, and state that outlives a restart."""
