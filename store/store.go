// Package store writes telemetry records into PostgreSQL or an embedded SQLite
// database, behind one small interface.
//
// # Contract
//
// [Store.Write] commits a whole batch in one transaction or nothing of it.
// Writes are idempotent on the record ids: the same batch written any number
// of times, by any number of goroutines or processes at once, leaves exactly
// one row per id. A session written again with ended_at fills in that one row.
// In the central set a session id that belongs to one user_id is never
// changed, nor added to, by another user's batch ([ErrForeignSession]).
//
// Server fields (user_id, received_at, clock_offset_ms) come from the
// [Batch], never from the records in it, so a payload cannot choose its owner.
//
// # Backends
//
// PostgreSQL (postgres:// or postgresql:// URLs) through a pgx pool: records
// go in with COPY inside a savepoint, and only when that meets an id that is
// already there (a retry) with one multi-row INSERT … ON CONFLICT DO NOTHING
// built on unnest; never a round trip per row. The statements keep no session
// state, so a transaction-mode pooler (PgBouncer) in front is fine.
//
// SQLite (sqlite:PATH, sqlite::memory:) through the pure-Go modernc.org/sqlite
// driver: WAL mode, writers serialised inside the process and by BEGIN
// IMMEDIATE with a busy timeout across processes.
//
// # Migrations
//
// Each table set has its own embedded, versioned migrations (generated from
// the schema declaration into migrations/), tracked in
// telemetry_schema_migrations or dsc_schema_migrations and applied under a
// lock, so concurrent first runs are safe.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// Store writes batches into one table set of one database.
type Store interface {
	// Write commits b atomically and reports how many records were new.
	Write(ctx context.Context, b *Batch) (Result, error)
	// Migrate applies the migrations that are missing and returns their
	// versions. It is safe to call concurrently and repeatedly.
	Migrate(ctx context.Context) ([]int, error)
	// Describe lists the tables of the store's set and their columns, as
	// the database reports them.
	Describe(ctx context.Context) (map[string][]string, error)
	// Count returns the number of rows of each record table of the set,
	// keyed by table name.
	Count(ctx context.Context) (map[string]int64, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Location is where the store writes, password masked.
	Location() Location
	// Set is the table set the store writes.
	Set() schema.Set
	// Keys manage the ingest server's API keys (central set only; the
	// self-hosted set answers ErrCentralOnly).
	Keys
	// SessionCatalogs returns the catalogs of the sessions among ids that
	// belong to userID, in one round trip (central set only). A session
	// that is absent, or another user's, is not in the map.
	SessionCatalogs(ctx context.Context, userID string, ids []uuid.UUID) (map[uuid.UUID]Catalogs, error)
	Close() error
}

// Batch is a set of records written together.
type Batch struct {
	// UserID owns every record of a central batch. Ignored in the
	// self-hosted set.
	UserID string
	// ReceivedAt is when the server received the batch; the zero time means
	// now. ClockOffset is the server clock minus the client's sent_at.
	ReceivedAt  time.Time
	ClockOffset time.Duration
	schema.Batch
}

// Result counts the records of a written batch.
type Result struct {
	// Accepted records changed the database: new rows, and sessions whose
	// ended_at was filled in.
	Accepted int
	// Duplicates were already there (a retry, or repeated within the batch).
	Duplicates int
}

// Errors that callers sort failures by, with errors.Is.
var (
	// ErrForeignSession: the batch names a session id that belongs to
	// another user. Nothing of the batch was written. The error is a
	// *ConflictError naming the first offending field.
	ErrForeignSession = errors.New("session belongs to another user")
	// ErrUnavailable: the database could not be reached or is shutting
	// down; the batch was not written and may be retried later.
	ErrUnavailable = errors.New("database unavailable")
	// ErrRejected: the database refused a value (a CHECK or NOT NULL
	// constraint). Nothing was written. Retrying will not help.
	ErrRejected = errors.New("database rejected the batch")
	// ErrNoUser: a central batch without a valid UserID.
	ErrNoUser = errors.New("central batch without a user id")
)

// ConflictError reports the first record of a batch that refers to another
// user's session.
type ConflictError struct {
	Path      string // e.g. "turns[3].session_id"
	SessionID uuid.UUID
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s: %v", e.Path, ErrForeignSession)
}

func (e *ConflictError) Unwrap() error { return ErrForeignSession }

// Options configure [Open].
type Options struct {
	// Set is the table set to write: schema.CentralSet (telemetry_*) or
	// schema.SelfHostedSet (dsc_*). Required.
	Set schema.Set
	// Migrate applies missing migrations on open: the idempotent
	// creation on first use that a self-hosted writer needs.
	Migrate bool
	// MaxConns bounds the PostgreSQL pool (default 8). SQLite ignores it.
	MaxConns int32
}

// Open connects to the database at url, one of the [AcceptedForms].
func Open(ctx context.Context, url string, opts Options) (Store, error) {
	loc, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if opts.Set != schema.CentralSet && opts.Set != schema.SelfHostedSet {
		return nil, fmt.Errorf("store: Options.Set must be schema.CentralSet or schema.SelfHostedSet")
	}
	var s Store
	switch loc.Dialect {
	case schema.Postgres:
		s, err = openPostgres(ctx, loc, opts)
	default:
		s, err = openSQLite(ctx, loc, opts)
	}
	if err != nil {
		return nil, err
	}
	if opts.Migrate {
		if _, err := s.Migrate(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}
