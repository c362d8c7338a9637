// Package telemetry is the client library that Fred's agent loop embeds: it
// records sessions, turns, tool calls and named events, reduces them to
// remote-safe records (fingerprints and lengths, never text), and routes
// them to the central ingest API, to the user's own database, or nowhere.
//
// This package imports the schema declaration only: no database driver and
// no server code reaches a program that embeds it. The self-hosted writer,
// which does need a driver, lives in a subpackage.
//
// The recorder API arrives with issue 3; until then the package holds only
// this contract. The record types it will emit are declared in
// [github.com/fredcode/fredtel/schema].
package telemetry
