// Package server is the central ingest API (`fredtel serve`): POST /v1/batch
// with API keys, validateBatch derived from the schema declaration,
// idempotent commits through package store, limits and metrics.
//
// It arrives with issue 4; until then the package holds only this contract.
package server
