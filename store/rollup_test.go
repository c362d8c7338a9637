package store

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

// TestRollupsAreExact: whatever writes the tool calls (a batch, the same
// batch again, a batch that meets some of its rows, an UPDATE, a DELETE),
// each rollup equals the counts of the records it is kept from. A trigger
// that counted the rows a retried batch skipped, or forgot a deletion,
// fails here.
func TestRollupsAreExact(t *testing.T) {
	forEachSet(t, func(t *testing.T, be testdb.Backend, set schema.Set) {
		ctx := context.Background()
		s := openStore(t, be.URL(t), set)
		g := fixture.New(7, time.Now().UTC())
		var batches []*Batch
		for i := 0; i < 4; i++ {
			b := &Batch{UserID: "alice", Batch: g.Batch(3, 1, 12, 0)}
			for k := range b.ToolCalls {
				if k%3 == 0 { // some marked, some not
					c := &b.ToolCalls[k]
					c.RunStart, c.RunLen = schema.OptUUID{UUID: c.CallID}, schema.IntOf(1)
				}
			}
			batches = append(batches, b)
		}
		check := func(step string) {
			t.Helper()
			for _, ru := range schema.Rollups() {
				src := set.TableName(ru.Source)
				want := strings1(t, s, "SELECT "+csv(append(slices.Clone(ru.Keys), countsOf(ru)...))+" FROM "+src+" GROUP BY "+strings.Join(ru.Keys, ", "))
				got := strings1(t, s, "SELECT "+csv(append(slices.Clone(ru.Keys), countNames(ru)...))+" FROM "+ru.TableName(set))
				slices.Sort(want)
				slices.Sort(got)
				if !slices.Equal(got, want) || len(want) == 0 {
					t.Fatalf("%s: %s has %d rows, the records give %d:\n%s", step, ru.TableName(set), len(got), len(want), diff(want, got))
				}
			}
			checkHourRollups(t, s, set, step)
		}
		for _, b := range batches[:3] {
			if _, err := s.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		check("three batches")
		if _, err := s.Write(ctx, batches[1]); err != nil { // sent again
			t.Fatal(err)
		}
		check("a batch sent twice")
		mixed := *batches[3]
		mixed.ToolCalls = append(slices.Clone(mixed.ToolCalls), batches[0].ToolCalls[:5]...)
		if _, err := s.Write(ctx, &mixed); err != nil { // new rows and rows already stored
			t.Fatal(err)
		}
		check("a batch meeting some of its rows")
		calls := set.TableName(schema.ToolCalls())
		if err := execSQL(s, "UPDATE "+calls+" SET permission = 'denied', run_len = NULL WHERE seq < 4"); err != nil {
			t.Fatal(err)
		}
		if err := execSQL(s, "UPDATE "+set.TableName(schema.Turns())+" SET mode = 'plan', finish_reason = 'length' WHERE seq = 0"); err != nil {
			t.Fatal(err)
		}
		check("an update")
		for _, tb := range []string{calls, set.TableName(schema.Turns())} {
			if err := execSQL(s, "DELETE FROM "+tb+" WHERE session_id = ?", batches[0].Sessions[0].SessionID.String()); err != nil {
				t.Fatal(err)
			}
		}
		check("a deletion")
		if n := count(t, s, set.Prefix()+"tool_counts"+" WHERE session_id = ?", batches[0].Sessions[0].SessionID.String()); n != 0 {
			t.Errorf("a deleted session keeps %d rollup rows", n)
		}
		// The hour rollups go by the session row: records written before
		// their session count once it comes; a session whose start moves
		// to another hour takes its records along; a deleted one takes
		// them out.
		late := &Batch{UserID: "alice", Batch: g.Batch(2, 3, 2, 0)}
		early := *late
		early.Sessions = nil
		if _, err := s.Write(ctx, &early); err != nil {
			t.Fatal(err)
		}
		check("records before their session")
		if _, err := s.Write(ctx, late); err != nil {
			t.Fatal(err)
		}
		check("their session after them")
		sessions := set.TableName(schema.Sessions())
		moved := late.Sessions[0].SessionID.String()
		if err := execSQL(s, "UPDATE "+sessions+" SET started_at = ? WHERE session_id = ?", time.Now().UTC().Add(-50*time.Hour).Format(schema.TimeLayout), moved); err != nil {
			t.Fatal(err)
		}
		check("a session moved to another hour")
		if err := execSQL(s, "DELETE FROM "+sessions+" WHERE session_id = ?", late.Sessions[1].SessionID.String()); err != nil {
			t.Fatal(err)
		}
		check("a session deleted before its records")
	})
}

// checkHourRollups fails t unless each hour rollup (PostgreSQL only) holds
// what counting the records gives: before a fold, the pairs (record,
// session) below the fold's horizon; after one, every pair.
func checkHourRollups(t *testing.T, s Store, set schema.Set, step string) {
	t.Helper()
	if dialectOf(s) != schema.Postgres {
		return
	}
	for _, hr := range schema.HourRollups() {
		// A count is the sum over its shards.
		held := "SELECT " + csv([]string{"hour", "g", "kind", "bucket", "sum(n)"}) + " FROM (" + hr.Counts(set, "") + ") c GROUP BY hour, g, kind, bucket HAVING sum(n) <> 0"
		below := fmt.Sprintf("greatest(r.%[1]s, ss.%[1]s) < (SELECT below FROM %[2]s)", schema.FoldColumn, hr.StateTable(set))
		for _, when := range []string{"before the fold", "after the fold"} {
			where := below
			if when == "after the fold" {
				foldAll(t, s, hr, set)
				where = ""
			}
			want, got := strings1(t, s, hourCounts(hr, set, dialectOf(s), where)), strings1(t, s, held)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) || (len(want) == 0 && where == "") {
				t.Fatalf("%s, %s: %s has %d rows, the records give %d:\n%s", step, when, hr.TableName(set), len(got), len(want), diff(want, got))
			}
		}
	}
}

// foldAll folds until the horizon passes every row of the tables: the
// horizon is the cluster's oldest running transaction, which other tests'
// hold back for a moment.
func foldAll(t *testing.T, s Store, hr *schema.HourRollup, set schema.Set) {
	t.Helper()
	q := fmt.Sprintf("(SELECT below FROM %[1]s) > greatest((SELECT max(%[2]s) FROM %[3]s), (SELECT max(%[2]s) FROM %[4]s))",
		hr.StateTable(set), schema.FoldColumn, set.TableName(hr.Source), set.TableName(schema.Sessions()))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := s.(Folder).Fold(context.Background()); err != nil {
			t.Fatal(err)
		}
		if count(t, s, "(SELECT 1) x WHERE "+q) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the fold's horizon did not pass the rows written in 20 s")
		}
	}
}

// TestTurnHoursFromEarlierVersions: a database made by the version 4 that
// shipped (turn_hours a row per bucket, on SQLite too) or by version 5
// (kept by triggers at ingest), and filled by it, migrates to the current
// version: PostgreSQL's turn_hours holds every pair once folded, including
// records written before the migration whose session comes after it;
// SQLite's table and row triggers are gone.
func TestTurnHoursFromEarlierVersions(t *testing.T) {
	for _, from := range []int{4, 5} {
		t.Run(fmt.Sprintf("v%d", from), func(t *testing.T) {
			forEachSet(t, func(t *testing.T, be testdb.Backend, set schema.Set) {
				ctx := context.Background()
				s := openBare(t, be.URL(t), set)
				var upTo, after []int
				for v := 1; v <= schema.Version; v++ {
					if v <= from {
						upTo = append(upTo, v)
					} else {
						after = append(after, v)
					}
				}
				if got, err := migrateFrom(s, frozenUpTo(t, from)); err != nil || !slices.Equal(got, upTo) {
					t.Fatalf("migrate with the frozen files 1 to %d = %v, %v", from, got, err)
				}
				insertAsVersion(t, s, v1Batch(1), 1)
				late := v1Batch(5)
				early := *late
				early.Sessions = nil
				insertAsVersion(t, s, &early, 1) // records whose session is not there yet
				if got, err := s.Migrate(ctx); err != nil || !slices.Equal(got, after) {
					t.Fatalf("Migrate = %v, %v; want %v", got, err, after)
				}
				if dialectOf(s) == schema.SQLite {
					if n := count(t, s, "sqlite_master WHERE name LIKE '%turn_hours%'"); n != 0 {
						t.Fatalf("%d turn_hours tables or triggers left on SQLite", n)
					}
				}
				checkHourRollups(t, s, set, fmt.Sprintf("migrated from version %d", from))
				if _, err := s.Write(ctx, late); err != nil {
					t.Fatal(err)
				}
				checkHourRollups(t, s, set, "their session written after the migration")
				b := v1Batch(2)
				b.UserID = "bob"
				if _, err := s.Write(ctx, b); err != nil {
					t.Fatal(err)
				}
				checkHourRollups(t, s, set, "written after the migration")
			})
		})
	}
}

// hourCounts is the hour rollup hr computed from the records and their
// sessions, of the pairs that pass where (SQL over r and ss; "": all).
func hourCounts(hr *schema.HourRollup, set schema.Set, d schema.Dialect, where string) string {
	var parts []string
	for _, b := range hr.Buckets {
		parts = append(parts, fmt.Sprintf("SELECT %s AS hour, r.%s AS g, '%s' AS kind, %s AS bucket FROM %s r JOIN %s ss ON ss.session_id = r.session_id WHERE %s",
			schema.HourOf(d, "ss.started_at"), hr.Group, b.Kind, b.Of("r."), set.TableName(hr.Source), set.TableName(schema.Sessions()), cmp.Or(where, "1 = 1")))
	}
	return "SELECT " + csv([]string{"hour", "g", "kind", "bucket", "count(*)"}) + " FROM (" + strings.Join(parts, " UNION ALL ") + ") q GROUP BY hour, g, kind, bucket"
}

func countNames(ru *schema.Rollup) []string {
	var out []string
	for _, c := range ru.Counts {
		out = append(out, c.Name)
	}
	return out
}

// countsOf is each count of ru computed from the records with portable SQL.
func countsOf(ru *schema.Rollup) []string {
	var out []string
	for _, c := range ru.Counts {
		pred := "1 = 1"
		switch {
		case c.Where != "":
			pred = fmt.Sprintf(c.Where, "")
		case c.Column == "":
		case c.Null:
			pred = c.Column + " IS NULL"
		default:
			pred = c.Column + " = '" + c.Equals + "'"
		}
		out = append(out, "sum(CASE WHEN "+pred+" THEN "+cmp.Or(c.Sum, "1")+" ELSE 0 END)")
	}
	return out
}

// csv joins the columns as one text value per row (strings1 reads one).
// It casts them in place: its callers build cols for it.
func csv(cols []string) string {
	for i, c := range cols {
		cols[i] = "CAST(" + c + " AS text)"
	}
	return strings.Join(cols, " || ',' || ")
}

// TestFoldEveryFoldsInTheBackground: the server's folder folds what is
// written while it runs, and returns once its context is done.
func TestFoldEveryFoldsInTheBackground(t *testing.T) {
	s := openStore(t, testdb.Postgres(t), schema.CentralSet)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		FoldEvery(ctx, s.(Folder), 20*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	b := v1Batch(9)
	if _, err := s.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	hr := schema.HourRollups()[0]
	q := fmt.Sprintf("%s WHERE below > (SELECT max(%s) FROM %s)", hr.StateTable(schema.CentralSet), schema.FoldColumn, schema.CentralSet.TableName(hr.Source))
	for deadline := time.Now().Add(20 * time.Second); count(t, s, q) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("nothing folded in 20 s")
		}
	}
	if n := count(t, s, hr.TableName(schema.CentralSet)); n == 0 {
		t.Fatal("the horizon moved but turn_hours is empty")
	}
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("FoldEvery did not return after its context was done")
	}
}

// TestFoldIsExactUnderConcurrentWrites: writers (some sending turns
// before their sessions), a deleter and two folders run at once on
// PostgreSQL; once they stop and a last fold passes every row, turn_hours
// is exactly the pairs that are left. A fold that counted a pair twice
// (both by its turn and its session), or missed one committed behind its
// horizon, or a deletion that took out a pair the fold had not counted,
// fails here.
func TestFoldIsExactUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	url := testdb.Postgres(t)
	s := openStore(t, url, schema.CentralSet)
	set := schema.CentralSet
	hr := schema.HourRollups()[0]
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	stop := make(chan struct{})
	var written sync.Map // session ids
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := fixture.New(uint64(100+w), time.Now().UTC())
			for i := range 25 {
				b := &Batch{UserID: fmt.Sprintf("user%d", w), Batch: g.Batch(2, 4, 2, 0)}
				if i%3 == 0 { // the turns first, their sessions after
					early := *b
					early.Sessions = nil
					if _, err := s.Write(ctx, &early); err != nil {
						errs <- err
						return
					}
				}
				if _, err := s.Write(ctx, b); err != nil {
					errs <- err
					return
				}
				for _, se := range b.Sessions {
					written.Store(se.SessionID.String(), true)
				}
			}
		}()
	}
	var side sync.WaitGroup
	for range 2 {
		side.Add(1)
		go func() {
			defer side.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.(Folder).Fold(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	side.Add(1)
	go func() { // deletes a session, or its turns, now and then
		defer side.Done()
		n := 0
		for {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			written.Range(func(k, _ any) bool {
				q := "DELETE FROM " + set.TableName(schema.Sessions()) + " WHERE session_id = ?"
				if n%2 == 1 {
					q = "DELETE FROM " + set.TableName(hr.Source) + " WHERE session_id = ?"
				}
				if err := execSQL(s, q, k.(string)); err != nil {
					errs <- err
				}
				written.Delete(k)
				n++
				return false
			})
		}
	}()
	wg.Wait()
	close(stop)
	side.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := count(t, s, hr.TableName(set)); n == 0 {
		t.Fatal("nothing folded while the writers ran")
	}
	checkHourRollups(t, s, set, "after concurrent writes, folds and deletions")
}
