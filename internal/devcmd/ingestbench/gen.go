package main

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/google/uuid"
)

// mix is how a batch's records divide between the four kinds: per 500, one
// session, 60 turns, 380 tool calls and 59 events (about 6 tool calls per
// turn, one event per turn), the shape of a busy agent session.
type mix struct{ sessions, turns, toolCalls, events int }

func mixOf(n int) mix {
	m := mix{sessions: 1, turns: max(1, n*60/500), events: n * 59 / 500}
	m.toolCalls = n - m.sessions - m.turns - m.events
	return m
}

func (m mix) String() string {
	return fmt.Sprintf("%d session, %d turns, %d tool calls, %d events", m.sessions, m.turns, m.toolCalls, m.events)
}

// batch is one pre-built request: its gzip body, ready to send, and its
// records, for the COPY ceiling of the same rows.
type batch struct {
	body     []byte // gzip of the JSON
	rawLen   int    // JSON bytes before gzip
	records  int
	sessions []schema.Session
	turns    []schema.Turn
	calls    []schema.ToolCall
	events   []schema.Event
}

type wireClient struct {
	FredVersion    string `json:"fred_version"`
	RuntimeVersion string `json:"runtime_version"`
}

// wireBatch is the body of POST /v1/batch.
type wireBatch struct {
	SchemaVersion int                     `json:"schema_version"`
	BatchID       uuid.UUID               `json:"batch_id"`
	SentAt        string                  `json:"sent_at"`
	Client        wireClient              `json:"client"`
	Sessions      []schema.RemoteSession  `json:"sessions"`
	Turns         []schema.RemoteTurn     `json:"turns"`
	ToolCalls     []schema.RemoteToolCall `json:"tool_calls"`
	Events        []schema.RemoteEvent    `json:"events"`
}

func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }

// makeBatch builds batch number i: fixture records with fresh UUIDv7 ids
// (no id repeats within or across batches), encoded and gzipped.
func makeBatch(seed uint64, n int, now time.Time) (*batch, error) {
	m := mixOf(n)
	g := fixture.New(seed, now)
	b := &batch{records: n}
	s := g.Session()
	s.SessionID = newID()
	b.sessions = []schema.Session{s}
	b.turns = make([]schema.Turn, m.turns)
	for i := range b.turns {
		t := g.Turn(s.SessionID, i)
		t.TurnID = newID()
		b.turns[i] = t
	}
	b.calls = make([]schema.ToolCall, m.toolCalls)
	for i := range b.calls {
		c := g.ToolCall(s.SessionID, b.turns[i%m.turns].TurnID, i/m.turns)
		c.CallID = newID()
		b.calls[i] = c
	}
	b.events = make([]schema.Event, m.events)
	for i := range b.events {
		e := g.Event(s.SessionID)
		e.EventID = newID()
		b.events[i] = e
	}

	w := wireBatch{SchemaVersion: schema.WireVersion, BatchID: newID(), SentAt: now.UTC().Format(schema.TimeLayout),
		Client:   wireClient{FredVersion: "1.4.2", RuntimeVersion: "go1.26.8"},
		Sessions: make([]schema.RemoteSession, len(b.sessions)), Turns: make([]schema.RemoteTurn, len(b.turns)),
		ToolCalls: make([]schema.RemoteToolCall, len(b.calls)), Events: make([]schema.RemoteEvent, len(b.events))}
	for i := range b.sessions {
		w.Sessions[i] = b.sessions[i].Remote()
	}
	for i := range b.turns {
		w.Turns[i] = b.turns[i].Remote()
	}
	for i := range b.calls {
		w.ToolCalls[i] = b.calls[i].Remote()
	}
	for i := range b.events {
		w.Events[i] = b.events[i].Remote()
	}
	raw, err := json.Marshal(&w)
	if err != nil {
		return nil, err
	}
	b.rawLen = len(raw)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b.body = buf.Bytes()
	return b, nil
}

// makeBatches builds count batches on every core, before any clock starts.
func makeBatches(count, size int, seed uint64) ([]*batch, error) {
	out := make([]*batch, count)
	now := time.Now()
	err := inParallel(runtime.GOMAXPROCS(0), count, func(_, i int) (err error) {
		out[i], err = makeBatch(seed^uint64(i)*0x9e3779b97f4a7c15, size, now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("building batches: %w", err)
	}
	return out, nil
}

// inParallel calls do(w, i) for every i below n from workers goroutines
// (w: the worker's number), each taking the next i, and returns the first
// error; a worker stops at its own.
func inParallel(workers, n int, do func(w, i int) error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for w := range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := do(w, i); err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// rowsOf returns the rows of b for the central set as the server would
// store them (user "bench", received now, no clock offset), one table per
// record kind in schema.Records() order, each sorted by id like the store
// sorts them, with values converted to what pgx's binary COPY encodes.
func rowsOf(b *batch, user string, now time.Time) [][][]any {
	at := schema.TimeOf(now)
	return [][][]any{rowsOfType(b.sessions, user, at), rowsOfType(b.turns, user, at),
		rowsOfType(b.calls, user, at), rowsOfType(b.events, user, at)}
}

// rowsOfType is one table of rowsOf.
func rowsOfType[T any, P interface {
	*T
	schema.Row
}](recs []T, user string, at schema.Time) [][]any {
	type row struct {
		id   uuid.UUID
		vals []any
	}
	rows := make([]row, len(recs))
	for i := range recs {
		rec := recs[i] // a copy: the batch itself stays unstamped
		r := P(&rec)
		r.Stamp(user, at, 0)
		rows[i] = row{r.ID(), r.AppendValues(schema.CentralSet, nil)}
	}
	slices.SortFunc(rows, func(a, b row) int { return bytes.Compare(a.id[:], b.id[:]) })
	out := make([][]any, len(rows))
	for i, r := range rows {
		out[i] = store.CopyValues(r.vals)
	}
	return out
}
