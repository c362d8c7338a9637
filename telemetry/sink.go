package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fredcode/fredtel/schema"
)

// RemoteBatch is what the central route hands to its sink: remote-safe
// records only. The types have no field that could hold text (they are
// generated from the Central fields of the declaration), so nothing else can
// reach the queue, the spool or the network. The generated Remote methods
// (schema.Session.Remote and the others), applied to each record before it
// is queued, are the client's enforcement point of SPEC §4: a field off the
// central allowlist has nowhere to go.
type RemoteBatch = schema.RemoteBatch

// LocalBatch is what the self-hosted route hands to its sink: whole records,
// text included unless DSC_TELEMETRY_NO_TEXT is set.
type LocalBatch = schema.Batch

// CentralSink receives the central route's batches: telemetry/central's
// sender implements it; a sink that keeps no spool embeds NoSpool. The
// session calls it from its one background goroutine, never concurrently,
// except Purge (/telemetry off); no call may keep a batch after it returns.
type CentralSink interface {
	// Send delivers b. An error keeps the batch for a later retry (within
	// the queue's byte bound); a *SendError can say otherwise.
	Send(ctx context.Context, b *RemoteBatch) error
	// SendBacklog delivers a few batches of earlier sessions (the spool):
	// at once when the session starts, then step after step between its own
	// batches, and at Close with what the budget has left. It reports done
	// when nothing is left to deliver. A batch it could not deliver (ctx
	// ended, the server failed) stays in the spool.
	SendBacklog(ctx context.Context) (done bool, err error)
	// Spool keeps for the next session a batch that Close could not
	// deliver. It should stop (returning ctx's error) once ctx is done: the
	// close budget is over. An error counts the batch as dropped.
	Spool(ctx context.Context, b *RemoteBatch) error
	// Purge deletes the spool: telemetry was turned off.
	Purge() error
	// Close is called once, after the last Send, within the close budget.
	Close(ctx context.Context) error
}

// NoSpool is the spool of a central sink that keeps nothing on disk, to
// embed: nothing undelivered is kept (Close counts it as dropped), there is
// no backlog, and nothing to purge.
type NoSpool struct{}

func (NoSpool) Spool(context.Context, *RemoteBatch) error { return errNoSpool }
func (NoSpool) SendBacklog(context.Context) (bool, error) { return true, nil }
func (NoSpool) Purge() error                              { return nil }

var errNoSpool = errors.New("this sink keeps no spool")

// LocalSink receives the self-hosted route's batches (package
// telemetry/selfhost writes them to the user's database). Same rules as
// CentralSink.
type LocalSink interface {
	Write(ctx context.Context, b *LocalBatch) error
	Close() error
}

// LocalOpener opens the self-hosted sink for a database URL. It is called in
// the background, never on the agent's goroutine.
type LocalOpener func(ctx context.Context, url string) (LocalSink, error)

// SendError is how a sink says what the session should do with a batch it
// could not deliver. Any other error means: keep it, retry with backoff.
type SendError struct {
	Err error
	// RetryAfter: wait at least this long before trying again (429, 503).
	RetryAfter time.Duration
	// Drop: the batch can never be delivered (400); drop it, never retry.
	Drop bool
	// Stop: send nothing more this session (401, 422, 426); what is queued
	// is kept for the spool at Close.
	Stop bool
}

func (e *SendError) Error() string {
	switch {
	case e.Drop:
		return fmt.Sprintf("dropped: %v", e.Err)
	case e.Stop:
		return fmt.Sprintf("stopped: %v", e.Err)
	}
	return e.Err.Error()
}

func (e *SendError) Unwrap() error { return e.Err }

func asSendError(err error) *SendError {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	return &SendError{Err: err}
}

// CentralConfig is what a central sink needs to know about the session.
type CentralConfig struct {
	APIURL      string
	APIKey      string
	ConfigDir   string
	FredVersion string
	Stderr      interface{ Write([]byte) (int, error) }
	Getenv      func(string) string
}
