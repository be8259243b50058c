"""The built-in Alegra: a stateful fake of the Alegra API for tests, `make run` and benchmarks.

It imports nothing of the product. It serves many accounts (`accounts.py`: each e-mail/token
pair is its own company, with its own `SimState`). Modules, in the order a request meets them:
`gate.py` (the account of the credentials, faults, rate limit, auth, request log) → `api.py`
(routes) → the rules of each resource (`contacts.py`, `categories.py`, `bills.py`,
`webhooks.py`; taxes are read-only seed data) on that account's data in `state.py` →
`deliveries.py` (webhook handshakes and deliveries). `control.py` is the `/_sim/` API that
drives a simulator running in another process; `app.py` wires it all.
"""
