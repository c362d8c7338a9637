package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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
// what counting the records gives.
func checkHourRollups(t *testing.T, s Store, set schema.Set, step string) {
	t.Helper()
	if dialectOf(s) != schema.Postgres {
		return
	}
	for _, hr := range schema.HourRollups() {
		want := strings1(t, s, hourCounts(hr, set, dialectOf(s)))
		// A count is the sum over its shards.
		got := strings1(t, s, "SELECT "+csv([]string{"hour", "g", "kind", "bucket", "sum(n)"})+" FROM ("+hr.Counts(set, "")+") c GROUP BY hour, g, kind, bucket HAVING sum(n) <> 0")
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) || len(want) == 0 {
			t.Fatalf("%s: %s has %d rows, the records give %d:\n%s", step, hr.TableName(set), len(got), len(want), diff(want, got))
		}
	}
}

// TestTurnHoursFromVersion4: a database made by the version 4 that
// shipped (turn_hours a row per bucket, on SQLite too) and filled by it
// migrates to version 5: PostgreSQL's turn_hours is counted again in its new
// shape and kept from then on; SQLite's table and row triggers are gone.
func TestTurnHoursFromVersion4(t *testing.T) {
	forEachSet(t, func(t *testing.T, be testdb.Backend, set schema.Set) {
		ctx := context.Background()
		s := openBare(t, be.URL(t), set)
		if got, err := migrateFrom(s, frozenUpTo(t, 4)); err != nil || !slices.Equal(got, []int{1, 2, 3, 4}) {
			t.Fatalf("migrate with the frozen files 1 to 4 = %v, %v", got, err)
		}
		insertAsVersion(t, s, v1Batch(1), 1)
		if got, err := s.Migrate(ctx); err != nil || !slices.Equal(got, []int{5}) {
			t.Fatalf("Migrate = %v, %v; want [5]", got, err)
		}
		if dialectOf(s) == schema.SQLite {
			if n := count(t, s, "sqlite_master WHERE name LIKE '%turn_hours%'"); n != 0 {
				t.Fatalf("%d turn_hours tables or triggers left on SQLite", n)
			}
		}
		checkHourRollups(t, s, set, "migrated from version 4")
		b := v1Batch(2)
		b.UserID = "bob"
		if _, err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		checkHourRollups(t, s, set, "written after the migration")
	})
}

// hourCounts is the hour rollup hr computed from the records and their
// sessions.
func hourCounts(hr *schema.HourRollup, set schema.Set, d schema.Dialect) string {
	var parts []string
	for _, b := range hr.Buckets {
		parts = append(parts, fmt.Sprintf("SELECT %s AS hour, r.%s AS g, '%s' AS kind, %s AS bucket FROM %s r JOIN %s ss ON ss.session_id = r.session_id",
			schema.HourOf(d, "ss.started_at"), hr.Group, b.Kind, b.Of("r."), set.TableName(hr.Source), set.TableName(schema.Sessions())))
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
