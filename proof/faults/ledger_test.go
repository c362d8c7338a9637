package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// kind is a record type, and the table its rows go to.
type kind uint8

const (
	kSession kind = iota
	kTurn
	kCall
	kEvent
	nKinds
)

var tables = [nKinds]struct{ name, id string }{
	{"telemetry_sessions", "session_id"},
	{"telemetry_turns", "turn_id"},
	{"telemetry_tool_calls", "call_id"},
	{"telemetry_events", "event_id"},
}

// counts is a number of records per kind.
type counts [nKinds]int

func (c counts) total() int { return c[kSession] + c[kTurn] + c[kCall] + c[kEvent] }

func (c counts) String() string {
	return fmt.Sprintf("sessions %d, turns %d, tool calls %d, events %d", c[kSession], c[kTurn], c[kCall], c[kEvent])
}

// recSink is the session's real central sender with a window on it: it
// notes the id of every record the session hands over, to send or to
// spool, and passes everything through unchanged. Embedding keeps the
// sender's SendBacklog and Purge, so the session sees the same interfaces.
type recSink struct {
	*central.Sender
	mu        sync.Mutex
	seen      map[uuid.UUID]kind // every record handed over
	spooled   map[uuid.UUID]kind // in a batch Spool took
	unspooled map[uuid.UUID]kind // in a batch Spool refused: gone
	// Records (not ids: a session's start and end are two records of one
	// id) in batches Spool took and refused, and whether the session's
	// end was among those it took.
	spooledRecs, unspooledRecs int
	spooledEnd                 bool
	closed                     chan struct{} // the session called Close: it is done with the sink
	trace                      []string      // the last calls, for a failure's message
}

func (r *recSink) traced(format string, args ...any) {
	if len(r.trace) == 8 {
		r.trace = r.trace[1:]
	}
	r.trace = append(r.trace, fmt.Sprintf(format, args...))
}

// newCentral is a telemetry NewCentral function; got receives each sink.
func newCentral(got chan<- *recSink) func(telemetry.CentralConfig) (telemetry.CentralSink, error) {
	return func(cfg telemetry.CentralConfig) (telemetry.CentralSink, error) {
		r := &recSink{Sender: central.NewSender(cfg), seen: map[uuid.UUID]kind{}, spooled: map[uuid.UUID]kind{},
			unspooled: map[uuid.UUID]kind{}, closed: make(chan struct{})}
		got <- r
		return r, nil
	}
}

// noteIDs puts the id and kind of every record of b into each map.
func noteIDs(b *telemetry.RemoteBatch, into ...map[uuid.UUID]kind) {
	add := func(id uuid.UUID, k kind) {
		for _, m := range into {
			m[id] = k
		}
	}
	for i := range b.Sessions {
		add(b.Sessions[i].SessionID, kSession)
	}
	for i := range b.Turns {
		add(b.Turns[i].TurnID, kTurn)
	}
	for i := range b.ToolCalls {
		add(b.ToolCalls[i].CallID, kCall)
	}
	for i := range b.Events {
		add(b.Events[i].EventID, kEvent)
	}
}

func (r *recSink) Send(ctx context.Context, b *telemetry.RemoteBatch) error {
	r.mu.Lock()
	noteIDs(b, r.seen)
	r.mu.Unlock()
	t0 := time.Now()
	err := r.Sender.Send(ctx, b)
	r.mu.Lock()
	r.traced("send %d at %s took %v: %v", b.Len(), t0.Format("05.000"), time.Since(t0).Round(time.Microsecond), err)
	r.mu.Unlock()
	return err
}

func (r *recSink) Spool(ctx context.Context, b *telemetry.RemoteBatch) error {
	t0 := time.Now()
	err := r.Sender.Spool(ctx, b)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.traced("spool %d at %s took %v: %v", b.Len(), t0.Format("05.000"), time.Since(t0).Round(time.Microsecond), err)
	if err == nil {
		noteIDs(b, r.seen, r.spooled)
		r.spooledRecs += b.Len()
		for i := range b.Sessions {
			r.spooledEnd = r.spooledEnd || !b.Sessions[i].EndedAt.IsZero()
		}
	} else {
		noteIDs(b, r.seen, r.unspooled)
		r.unspooledRecs += b.Len()
	}
	return err
}

func (r *recSink) Close(ctx context.Context) error {
	defer close(r.closed)
	return r.Sender.Close(ctx)
}

// kinds counts distinct ids by kind.
func kinds(m map[uuid.UUID]kind) counts {
	var c counts
	for _, k := range m {
		c[k]++
	}
	return c
}

// wait waits, bounded, until the session is done with its sink: after
// Close returns, the session's goroutine may still be spooling.
func (r *recSink) wait(d time.Duration) bool {
	select {
	case <-r.closed:
		return true
	case <-time.After(d):
		return false
	}
}

// ledger is every record id that must be in the database exactly once.
type ledger struct {
	mu  sync.Mutex
	ids map[uuid.UUID]kind
	by  counts
}

func newLedger() *ledger { return &ledger{ids: map[uuid.UUID]kind{}} }

func (l *ledger) add(m map[uuid.UUID]kind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, k := range m {
		if _, ok := l.ids[id]; !ok {
			l.ids[id] = k
			l.by[k]++
		}
	}
}

// verdict compares the ledger with the rows.
type verdict struct {
	want, stored counts
	lost         int      // in the ledger, not in the database
	duplicated   int      // an id stored more than once, or in the wrong table
	unknown      int      // rows the ledger does not know: an id made up on the way
	open         int      // sessions without their end
	examples     []string // a few of the above
}

func (v verdict) String() string {
	return fmt.Sprintf("%s records in the ledger, %s stored, %d lost, %d duplicated, %d unknown",
		thousands(v.want.total()), thousands(v.stored.total()), v.lost, v.duplicated, v.unknown)
}

// check reads every id of the four tables (streamed: the full-size load
// stores millions) and compares the sets, not just the totals.
func (l *ledger) check(t testing.TB, db string) verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatalf("ledger: %v", err)
	}
	defer conn.Close(context.Background())
	l.mu.Lock()
	defer l.mu.Unlock()
	v := verdict{want: l.by}
	found := make(map[uuid.UUID]struct{}, len(l.ids))
	example := func(format string, args ...any) {
		if len(v.examples) < 5 {
			v.examples = append(v.examples, fmt.Sprintf(format, args...))
		}
	}
	for k := kSession; k < nKinds; k++ {
		tb := tables[k]
		rows, err := conn.Query(ctx, "SELECT "+tb.id+" FROM "+tb.name)
		if err != nil {
			t.Fatalf("ledger: %v", err)
		}
		var id uuid.UUID
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			v.stored[k]++
			want, ok := l.ids[id]
			switch _, again := found[id]; {
			case !ok:
				v.unknown++
				example("%s %s: not in the ledger", tb.name, id)
			case again || want != k:
				v.duplicated++
				example("%s %s: stored again (first in %s)", tb.name, id, tables[want].name)
			default:
				found[id] = struct{}{}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ledger: %s: %v", tb.name, err)
		}
	}
	for id, k := range l.ids {
		if _, ok := found[id]; !ok {
			v.lost++
			example("%s %s: lost", tables[k].name, id)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM telemetry_sessions WHERE ended_at IS NULL").Scan(&v.open); err != nil {
		t.Fatalf("ledger: %v", err)
	}
	return v
}

// mustMatch fails t unless the database holds exactly the ledger, with
// open sessions lacking their end (the spool checks lose some ends on
// purpose; everywhere else it is 0).
func (v verdict) mustMatch(t testing.TB, open int) {
	t.Helper()
	if v.lost != 0 || v.duplicated != 0 || v.unknown != 0 || v.open != open {
		t.Errorf("ledger against the rows: %v, %d sessions without their end (want %d); ledger %v, rows %v; e.g. %s",
			v, v.open, open, v.want, v.stored, strings.Join(v.examples, "; "))
	}
	if v.want.total() == 0 {
		t.Errorf("the ledger is empty: nothing was checked")
	}
}
