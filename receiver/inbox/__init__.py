"""The webhook inbox's write path, owned by the web process: `writer.py` batches deliveries,
`channel.py` starts and talks to the committer process, `committer.py` writes each batch in one
transaction (SQLite); on PostgreSQL `pg_channel.py` writes each batch through the pool instead.
The flow is in docs/webhooks.md."""
