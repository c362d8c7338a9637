// Package server is the central ingest API, `fredtel serve`: POST /v1/batch
// (the wire contract is on Server.handleBatch), GET /v1/whoami, /v1/schema,
// /healthz, /readyz and /metrics.
//
// A request goes: key (hashed, cached, constant-time compare; 401) → the
// key's token bucket (429) → content type and encoding (415) → body within
// the compressed and inflated limits (413) → wire.Validate, derived from the
// schema declaration (400, 413, 422, 426; at most MaxValidating at once,
// 503 beyond) → for schema version 2 on, names in their sessions'
// catalogs or fixed words (400; catalogs from the batch, a bounded cache or
// one lookup) → store.Write in one transaction
// (503 when the database cannot) → 200 with the counts, only after the
// commit. user_id always comes from the key. A rejection is counted and
// logged by rule, field path and key prefix: never a value from the payload,
// never an IP address.
package server
