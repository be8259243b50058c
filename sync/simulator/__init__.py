"""The built-in Alegra: a stateful fake of the Alegra API for tests, `make run` and benchmarks.

It imports nothing of the product. Modules, in the order a request meets them:
`gate.py` (faults, rate limit, auth, request log) → `api.py` (routes) → the rules of each
resource (`contacts.py`, `categories.py`, `taxes.py`, `bills.py`, `webhooks.py`) on the data in
`state.py` → `deliveries.py` (webhook handshakes and deliveries). `control.py` is the `/_sim/`
API that drives a simulator running in another process; `app.py` wires it all.
"""
