// Package selfhost writes a session's records into the user's own database
// (DSC_TELEMETRY_DB_URL): the dsc_* tables, created on first use, through
// package store. It is a separate package so that a program embedding the
// telemetry client links a database driver only if it offers self-hosting:
//
//	sess := telemetry.Start(telemetry.Options{SelfHosted: selfhost.Open, …}, info)
package selfhost

import (
	"context"
	"errors"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/fredcode/fredtel/telemetry"
)

// openTimeout bounds connecting and creating the tables; the session's
// background goroutine retries after it.
const openTimeout = 10 * time.Second

// Open connects to url (postgres://, postgresql://, sqlite:PATH) and creates
// the dsc_* tables if they are missing. It is a telemetry.LocalOpener.
func Open(ctx context.Context, url string) (telemetry.LocalSink, error) {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	s, err := store.Open(ctx, url, store.Options{Set: schema.SelfHostedSet, Migrate: true, MaxConns: 2})
	if err != nil {
		return nil, err
	}
	return &sink{s: s}, nil
}

type sink struct{ s store.Store }

// Write stores b. Text a database refuses (a NUL, invalid UTF-8) is made
// storable first, whoever built the batch (a Session already did, and
// counted it); a batch the database still refuses (a CHECK constraint) can
// never be stored, and is dropped rather than retried forever.
func (k *sink) Write(ctx context.Context, b *telemetry.LocalBatch) error {
	for i := range b.Turns {
		t := &b.Turns[i]
		t.UserInput = telemetry.StorableText(t.UserInput)
		t.AssistantText = telemetry.StorableText(t.AssistantText)
	}
	_, err := k.s.Write(ctx, &store.Batch{Batch: *b})
	if errors.Is(err, store.ErrRejected) {
		return &telemetry.SendError{Err: err, Drop: true}
	}
	return err
}

func (k *sink) Close() error { return k.s.Close() }
