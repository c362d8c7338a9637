package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// forEachBackend runs fn once per backend and table set, each on a fresh,
// migrated database.
func forEachBackend(t *testing.T, fn func(t *testing.T, s Store)) {
	forEachSet(t, func(t *testing.T, be testdb.Backend, set schema.Set) { fn(t, openStore(t, be.URL(t), set)) })
}

// forEachSet runs fn for each backend and set, in parallel.
func forEachSet(t *testing.T, fn func(t *testing.T, be testdb.Backend, set schema.Set)) {
	for _, be := range testdb.Backends {
		for _, set := range schema.Sets() {
			t.Run(be.Name+"/"+set.String(), func(t *testing.T) {
				t.Parallel()
				fn(t, be, set)
			})
		}
	}
}

// forEachCentral runs fn on a central store of each backend, in parallel.
func forEachCentral(t *testing.T, fn func(t *testing.T, s Store)) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		fn(t, openStore(t, be.URL(t), schema.CentralSet))
	})
}

func openStore(t testing.TB, url string, set schema.Set) Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Set: set, Migrate: true})
	if err != nil {
		t.Fatalf("Open(%s): %v", MaskURL(url), err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// count runs a SELECT count(*) on the store's own connection.
func count(t testing.TB, s Store, from string, args ...any) int {
	t.Helper()
	q := "SELECT count(*) FROM " + from
	var n int
	var err error
	switch x := s.(type) {
	case *pgStore:
		q = rebindPG(q)
		err = x.pool.QueryRow(context.Background(), q, args...).Scan(&n)
	case *sqliteStore:
		err = x.db.QueryRowContext(context.Background(), q, args...).Scan(&n)
	}
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// rebindPG turns ? placeholders into $n.
func rebindPG(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sampleBatch is a session with turns, tool calls and events.
func sampleBatch(g *fixture.Gen, turns, callsPerTurn, events int) *Batch {
	b := &Batch{UserID: "user-1", Batch: g.Batch(1, turns, callsPerTurn, events)}
	for i := range b.Turns {
		b.Turns[i].UserInput, b.Turns[i].AssistantText = "what does main.go do?", "It starts the server."
	}
	return b
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		url := be.URL(t)
		var wg sync.WaitGroup
		applied := make([][]int, 4)
		errs := make([]error, 4)
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(context.Background(), url, Options{Set: schema.CentralSet})
				if err != nil {
					errs[i] = err
					return
				}
				defer s.Close()
				applied[i], errs[i] = s.Migrate(context.Background())
			}()
		}
		wg.Wait()
		total := 0
		for i := range 4 {
			if errs[i] != nil {
				t.Fatalf("migrator %d: %v", i, errs[i])
			}
			total += len(applied[i])
		}
		if total != schema.Version {
			t.Fatalf("4 concurrent migrators applied %d migrations in all, want %d (each exactly once)", total, schema.Version)
		}
		s := openStore(t, url, schema.CentralSet)
		again, err := s.Migrate(context.Background())
		if err != nil || len(again) != 0 {
			t.Fatalf("second Migrate = %v, %v; want nothing applied", again, err)
		}
	})
}

// TestColumnsMatchDeclaration: every column of every table in a migrated
// database is declared, and every declared column exists, on both backends
// and both sets. A hand edit of a migration, or a declaration change without
// `go generate`, fails here. Order is not compared: a column a later
// version added comes last in a migrated table, and the stores name their
// columns.
func TestColumnsMatchDeclaration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		got, err := s.Describe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{migrationsTable(s.Set()): {"applied_at", "checksum", "name", "version"}}
		for _, r := range s.Set().Tables() {
			var cols []string
			for _, f := range s.Set().Columns(r) {
				cols = append(cols, f.Name())
			}
			slices.Sort(cols)
			want[s.Set().TableName(r)] = cols
		}
		for _, ru := range schema.Rollups() {
			cols := append([]string(nil), ru.Keys...)
			for _, c := range ru.Counts {
				cols = append(cols, c.Name)
			}
			slices.Sort(cols)
			want[ru.TableName(s.Set())] = cols
		}
		for _, hr := range schema.HourRollups() {
			if dialectOf(s) != schema.Postgres { // PostgreSQL only
				break
			}
			want[hr.TableName(s.Set())] = slices.Sorted(slices.Values(hr.Columns()))
			want[hr.StateTable(s.Set())] = []string{"below", "one"}
			for _, r := range []*schema.Record{hr.Source, schema.Sessions()} { // the writer's transaction id
				tbl := s.Set().TableName(r)
				want[tbl] = slices.Sorted(slices.Values(append(want[tbl], schema.FoldColumn)))
			}
		}
		for tbl, cols := range got {
			slices.Sort(cols)
			w, ok := want[tbl]
			if !ok {
				t.Errorf("table %s exists but the declaration does not know it", tbl)
				continue
			}
			if !slices.Equal(cols, w) {
				t.Errorf("table %s columns\n got %v\nwant %v", tbl, cols, w)
			}
		}
		for tbl := range want {
			if _, ok := got[tbl]; !ok {
				t.Errorf("declared table %s is missing from the database", tbl)
			}
		}
	})
}

func TestWriteStoresEveryRecordOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		g := fixture.New(1, time.Now())
		b := sampleBatch(g, 3, 4, 5)
		// A payload cannot choose its owner: server fields come from the batch.
		b.Turns[0].UserID = "mallory"
		res, err := s.Write(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != b.Len() || res.Duplicates != 0 {
			t.Fatalf("first write = %+v, want %d accepted", res, b.Len())
		}
		for _, c := range []struct {
			r    *schema.Record
			want int
		}{{schema.Sessions(), 1}, {schema.Turns(), 3}, {schema.ToolCalls(), 12}, {schema.Events(), 5}} {
			if n := count(t, s, s.Set().TableName(c.r)); n != c.want {
				t.Errorf("%s has %d rows, want %d", s.Set().TableName(c.r), n, c.want)
			}
		}
		if s.Set() == schema.CentralSet {
			if n := count(t, s, s.Set().TableName(schema.Turns())+" WHERE user_id = ?", "user-1"); n != 3 {
				t.Errorf("%d turns owned by user-1, want 3 (user_id must come from the batch)", n)
			}
		} else {
			if n := count(t, s, s.Set().TableName(schema.Turns())+" WHERE user_input = ?", "what does main.go do?"); n != 3 {
				t.Errorf("%d self-hosted turns kept their user_input, want 3", n)
			}
		}
		res, err = s.Write(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 0 || res.Duplicates != b.Len() {
			t.Fatalf("retry = %+v, want 0 accepted, %d duplicates", res, b.Len())
		}
		if n := count(t, s, s.Set().TableName(schema.ToolCalls())); n != 12 {
			t.Fatalf("after a retry %d tool calls, want 12", n)
		}
	})
}

func TestRetryWithSomeNewRecords(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		g := fixture.New(2, time.Now())
		b := sampleBatch(g, 2, 3, 2)
		if _, err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		more := sampleBatch(g, 1, 5, 0)
		b.ToolCalls = append(b.ToolCalls, more.ToolCalls...)
		res, err := s.Write(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 5 || res.Duplicates != b.Len()-5 {
			t.Fatalf("mixed retry = %+v, want 5 accepted, %d duplicates", res, b.Len()-5)
		}
		if n := count(t, s, s.Set().TableName(schema.ToolCalls())); n != 11 {
			t.Fatalf("%d tool calls, want 11", n)
		}
	})
}

func TestSessionEndUpdatesTheOneRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		g := fixture.New(3, time.Now())
		sess := g.Session()
		start := &Batch{UserID: "u1", Batch: schema.Batch{Sessions: []schema.Session{sess}}}
		if _, err := s.Write(ctx, start); err != nil {
			t.Fatal(err)
		}
		ended := sess
		ended.EndedAt = schema.TimeOf(sess.StartedAt.Add(90 * time.Second))
		res, err := s.Write(ctx, &Batch{UserID: "u1", Batch: schema.Batch{Sessions: []schema.Session{ended}}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 1 {
			t.Fatalf("end write = %+v, want 1 accepted", res)
		}
		// A late retry of the start must not erase the end.
		if _, err := s.Write(ctx, start); err != nil {
			t.Fatal(err)
		}
		tbl := s.Set().TableName(schema.Sessions())
		if n := count(t, s, tbl); n != 1 {
			t.Fatalf("%d session rows, want 1", n)
		}
		if n := count(t, s, tbl+" WHERE ended_at IS NOT NULL"); n != 1 {
			t.Fatalf("ended_at was lost")
		}
		// Start and end in one batch: one row, ended.
		other := g.Session()
		both := other
		both.EndedAt = schema.TimeOf(other.StartedAt.Add(time.Second))
		res, err = s.Write(ctx, &Batch{UserID: "u1", Batch: schema.Batch{Sessions: []schema.Session{other, both}}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 2 || res.Duplicates != 0 {
			t.Fatalf("start+end in one batch = %+v, want 2 accepted", res)
		}
		if n := count(t, s, tbl+" WHERE ended_at IS NOT NULL"); n != 2 {
			t.Fatalf("%d ended sessions, want 2", n)
		}
	})
}

func TestBatchIsAllOrNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		g := fixture.New(4, time.Now())
		b := sampleBatch(g, 2, 3, 2)
		// The last record breaks a CHECK constraint: nothing may remain.
		b.Events[1].Name = "not_an_event"
		_, err := s.Write(ctx, b)
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("Write = %v, want ErrRejected", err)
		}
		for _, r := range schema.Records() {
			if n := count(t, s, s.Set().TableName(r)); n != 0 {
				t.Errorf("%s has %d rows after a rejected batch", s.Set().TableName(r), n)
			}
		}
	})
}

func TestForeignSessionIsNeverTouched(t *testing.T) {
	forEachCentral(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		g := fixture.New(5, time.Now())
		alice := sampleBatch(g, 1, 1, 0)
		alice.UserID = "alice"
		if _, err := s.Write(ctx, alice); err != nil {
			t.Fatal(err)
		}
		sid := alice.Sessions[0].SessionID
		ended := alice.Sessions[0]
		ended.EndedAt = schema.TimeOf(time.Now())
		fresh := g.Session()
		cases := []struct {
			name string
			b    *Batch
			path string
		}{
			{"end alice's session", &Batch{UserID: "bob", Batch: schema.Batch{Sessions: []schema.Session{fresh, ended}}}, "sessions[1].session_id"},
			{"add a turn", &Batch{UserID: "bob", Batch: schema.Batch{Turns: []schema.Turn{g.Turn(fresh.SessionID, 0), g.Turn(sid, 1)}}}, "turns[1].session_id"},
			{"add a tool call", &Batch{UserID: "bob", Batch: schema.Batch{ToolCalls: []schema.ToolCall{g.ToolCall(sid, g.ID(), 0)}}}, "tool_calls[0].session_id"},
			{"add an event", &Batch{UserID: "bob", Batch: schema.Batch{Events: []schema.Event{g.Event(sid)}}}, "events[0].session_id"},
		}
		for _, c := range cases {
			_, err := s.Write(ctx, c.b)
			var ce *ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, ErrForeignSession) || ce.Path != c.path {
				t.Errorf("%s: Write = %v, want ConflictError at %s", c.name, err, c.path)
			}
		}
		tbl := "telemetry_sessions"
		if n := count(t, s, tbl+" WHERE ended_at IS NULL AND user_id = ?", "alice"); n != 1 {
			t.Errorf("alice's session changed")
		}
		if n := count(t, s, tbl); n != 1 {
			t.Errorf("%d sessions, want 1: bob's rejected batch wrote something", n)
		}
		for _, r := range []*schema.Record{schema.Turns(), schema.ToolCalls(), schema.Events()} {
			if n := count(t, s, "telemetry_"+r.Table()+" WHERE user_id = ?", "bob"); n != 0 {
				t.Errorf("bob has %d rows in %s", n, r.Table())
			}
		}
	})
}

// mixedBatches makes n batches over a few sessions: starts, ends, and
// children spread across batches, as a fleet's retries would interleave.
func mixedBatches(seed uint64, n int) (batches []*Batch, ids map[string]map[uuid.UUID]bool) {
	// A fixed clock: helper processes must make the very same ids.
	g := fixture.New(seed, time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	ids = map[string]map[uuid.UUID]bool{}
	for _, r := range schema.Records() {
		ids[r.Table()] = map[uuid.UUID]bool{}
	}
	var sessions []schema.Session
	for i := 0; i < n/5+1; i++ {
		sessions = append(sessions, g.Session())
	}
	for i := 0; i < n; i++ {
		s := sessions[i%len(sessions)]
		b := sampleBatch(g, 2, 3, 2)
		b.UserID = "fleet"
		// Re-home the children on one of the shared sessions.
		b.Sessions = []schema.Session{s}
		for j := range b.Turns {
			b.Turns[j].SessionID = s.SessionID
		}
		for j := range b.ToolCalls {
			b.ToolCalls[j].SessionID = s.SessionID
		}
		for j := range b.Events {
			b.Events[j].SessionID = s.SessionID
		}
		if i >= n-len(sessions) { // the last batch of each session ends it
			e := s
			e.EndedAt = schema.TimeOf(s.StartedAt.Add(time.Hour))
			b.Sessions = append(b.Sessions, e)
		}
		for _, r := range b.Sessions {
			ids["sessions"][r.SessionID] = true
		}
		for _, r := range b.Turns {
			ids["turns"][r.TurnID] = true
		}
		for _, r := range b.ToolCalls {
			ids["tool_calls"][r.CallID] = true
		}
		for _, r := range b.Events {
			ids["events"][r.EventID] = true
		}
		batches = append(batches, b)
	}
	return batches, ids
}

// TestConcurrentWritersExactlyOnce: 8 writers send the same 50 mixed batches,
// each in its own order; every id ends up exactly once and every session ended.
func TestConcurrentWritersExactlyOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Store) {
		batches, ids := mixedBatches(6, 50)
		var wg sync.WaitGroup
		errs := make(chan error, 8*len(batches))
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				order := rand.New(rand.NewPCG(uint64(w), 7)).Perm(len(batches))
				for _, i := range order {
					if _, err := s.Write(context.Background(), batches[i]); err != nil {
						errs <- fmt.Errorf("writer %d batch %d: %w", w, i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, r := range schema.Records() {
			if n := count(t, s, s.Set().TableName(r)); n != len(ids[r.Table()]) {
				t.Errorf("%s: %d rows, want %d distinct ids", s.Set().TableName(r), n, len(ids[r.Table()]))
			}
		}
		if n := count(t, s, s.Set().TableName(schema.Sessions())+" WHERE ended_at IS NULL"); n != 0 {
			t.Errorf("%d sessions lost their end time", n)
		}
	})
}
