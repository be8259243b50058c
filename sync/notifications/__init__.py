"""Partner notifications: signed (Standard Webhooks 1.0) events about a partner's receipts.

`records` (pure: event types, states, the retry schedule, the body), `outbox` (the events and
deliveries as rows, written in the transaction of the change they report), `endpoints` (a
partner's endpoints), `signer` (secrets and signatures), `addresses` (which URLs may be called),
`delivery` (the worker's notifier: worker side only, the web process never imports it).
Design: docs/notifications.md.
"""
