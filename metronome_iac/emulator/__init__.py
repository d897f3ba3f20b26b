"""A local Metronome API emulator, behaving as the official `metronome-sdk` client sees the real API.

Run: `metronome-iac emulator [--host 127.0.0.1] [--port 8787] [--db FILE|:memory:] [--token TOKEN]
[--latency-ms N] [--fail-rate F] [--seed N] [--stripe-connected]`.

Layout: `app.py` (FastAPI app: bearer auth, fault/latency knobs, statistics), `store.py` (SQLite: JSON
documents plus uniqueness-key, custom-field-key, event and settings tables), `common.py` (errors, document
look-up and archiving, field validation, pagination), `routers/<family>.py` (one per API family: its paths,
shapes and rules) and `routers/admin.py`.

Conventions:
- Errors are `{"message": "..."}` naming the field; 400 bad input, 401 auth, 404 unknown id, 409 reused
  uniqueness key / ingest alias / Idempotency-Key (with no `x-should-retry` hint, as the real API).
- A POST with an `Idempotency-Key` header that begins executing has its answer kept (a 500 included) and
  given again to every later request with that key and the same parameters, for `idempotency_ttl_s`
  (default 24 h, Metronome's guarantee); the key with other parameters, or while it is still executing,
  answers 409.
- Archiving an archived metric, product, rate card, customer, contract, package or credit type answers
  400 "already archived"; re-archiving an alert succeeds.
- `/v1/customFields/addKey` for a key that already exists answers 400 "Duplicate custom field key: ...".
- A product's `current` is its initial state with every update applied in `starting_at` order.
- As reported of the real API: setCustomerBillingProviderConfigurations for an unknown customer answers 500;
  ingest aliases stay held by an archived customer until cleared; Stripe configurations are refused (400)
  until Stripe is connected on the account.

Test knobs (no auth, never counted or failed): `GET /_emulator/health`, `GET /_emulator/stats`
(`{"total", "by_route": {"METHOD /path/{template}": n}, "seconds", "seconds_by_route": {...: s},
"injected_failures", "idempotent_replays", "events"}`; seconds are the emulator's own answering time,
injected latency left out), `POST /_emulator/reset`, `GET|POST /_emulator/config` (`fail_rate`,
`latency_ms`, `seed`, `idempotency_ttl_s`),
`POST /_emulator/billing-providers` (`{"billing_provider": "stripe", "connected": bool}`).
With a fail rate, a request fails as 429 (`Retry-After: 0`, `retry-after-ms: 20`), 500 before processing,
or 500 after processing (the object exists but the client sees an error).
"""
