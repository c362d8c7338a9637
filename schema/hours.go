package schema

import (
	"fmt"
	"slices"
	"strings"
)

// HourRollup is a rollup of a record table by the hour its session
// started: for each (hour, group, kind, bucket), how many source rows
// there are. A report over a window of sessions sums the hours wholly
// inside it (a few rows per hour, whatever the fleet) and reads the
// records only for the sessions of the two partial hours at its edges.
// The hour comes from the session row, so the triggers sit on both
// tables: a record counts once its session is there, under the hour its
// session started, whichever of the two was written first, and moves
// when the session's start does (an update, a deletion).
type HourRollup struct {
	Table   string // without the set prefix
	Source  *Record
	Group   string // the source column kept as a key
	Buckets []Bucket
	Since   int
	Doc     string
}

// Bucket is a measure of an HourRollup: each source row counts once under
// Kind, at the integer Expr (SQL over the source's columns, each written
// %[1]sname).
type Bucket struct {
	Kind string // one letter
	Expr string
	Doc  string
}

// turnHours: the turns by the hour their session started, model, tool
// calls (exact) and duration (DurationBucket): the percentiles of the
// model table of the insights. A duration percentile reads its exact value
// from the turns of one bucket, through the index on (model, duration_ms).
var turnHours = &HourRollup{
	Table: "turn_hours", Source: turns, Group: "model", Since: 4,
	Doc: "turns by the hour their session started (hours since 1970, UTC), model, tool calls and duration bucket, kept by triggers on turns and sessions (the model table's percentiles of the insights)",
	Buckets: []Bucket{
		{Kind: "n", Expr: "%[1]snum_tool_calls", Doc: "tool calls of the turn, exact"},
		{Kind: "d", Expr: DurationBucket("%[1]sduration_ms"), Doc: "duration of the turn in ms, rounded down to two significant digits (exact below 100)"},
	},
}

// hourRollups lists the hour rollups, in both sets.
var hourRollups = []*HourRollup{turnHours}

// HourRollups lists the hour rollups, in both sets: copies, so that no
// caller changes the declaration.
func HourRollups() []*HourRollup {
	out := make([]*HourRollup, len(hourRollups))
	for i, hr := range hourRollups {
		c := *hr
		c.Buckets = slices.Clone(hr.Buckets)
		out[i] = &c
	}
	return out
}

// DurationBucket is the SQL of the bucket of the integer e (≥ 0): e below
// 100, e rounded down to two significant digits below durationExact (3072
// → 3000, 18731 → 18000), e again from there (beyond a valid duration),
// integer arithmetic that PostgreSQL and SQLite compute alike. A bucket
// holds values within 10% of each other: the one a percentile falls in is
// a short range of an index.
func DurationBucket(e string) string {
	var b strings.Builder
	b.WriteString("CASE WHEN " + e + " < 100 THEN " + e)
	for p := int64(10); p*100 <= durationExact; p *= 10 {
		fmt.Fprintf(&b, " WHEN %s < %d THEN %s / %d * %d", e, p*100, e, p, p)
	}
	return b.String() + " ELSE " + e + " END"
}

// durationExact is where DurationBucket stops rounding: above the longest
// valid duration.
const durationExact = 1_000_000_000

// DurationBucketEnd is the first value after bucket lo's.
func DurationBucketEnd(lo int64) int64 {
	if lo >= durationExact {
		return lo + 1
	}
	w := int64(1)
	for v := lo; v >= 100; v /= 10 {
		w *= 10
	}
	return lo + w
}

// HourOf is the SQL of the hour, since 1970 in UTC, of the timestamp
// column e.
func HourOf(d Dialect, e string) string {
	if d == SQLite {
		return "(unixepoch(" + e + ") / 3600)"
	}
	return "CAST(floor(EXTRACT(EPOCH FROM " + e + ") / 3600) AS bigint)"
}

// TableName is the rollup's table in the set.
func (hr *HourRollup) TableName(s Set) string { return s.Prefix() + hr.Table }

// Keys are the rollup's key columns, in primary key order.
func (hr *HourRollup) Keys() []string { return []string{"hour", hr.Group, "kind", "bucket"} }

// statements are the rollup's statements of version v (see rollups).
func (hr *HourRollup) statements(d Dialect, s Set, v int, whole bool, rebuilt func(*Record) bool) []string {
	switch {
	case whole && hr.Since <= v, hr.Since == v:
		out := []string{hr.create(d, s)}
		out = append(out, hr.triggers(d, s)...)
		if !whole {
			out = append(out, hr.upsert(s, hr.aggregate(d, s.TableName(hr.Source)+" r JOIN "+s.TableName(sessions)+" ss ON ss.session_id = r.session_id", "", "r.", "ss.", "")))
		}
		return out
	case hr.Since < v && d == SQLite && (rebuilt(hr.Source) || rebuilt(sessions)):
		return hr.triggers(d, s)
	}
	return nil
}

// unhook drops, before a SQLite migration rebuilds a table an hour rollup
// reads, the triggers that name it: SQLite refuses to rename the new table
// into place while a trigger names a missing one. statements makes them
// again after the rebuild.
func (dc *Declaration) unhook(d Dialect, s Set, v int) []string {
	var out []string
	for _, hr := range hourRollups {
		if d == SQLite && hr.Since < v && (dc.rebuildsNamed(hr.Source, s, v) || dc.rebuildsNamed(sessions, s, v)) {
			for _, tr := range []string{"ins", "upd", "del", "sessions_ins", "sessions_upd", "sessions_del"} {
				out = append(out, "DROP TRIGGER IF EXISTS "+hr.TableName(s)+"_"+tr)
			}
		}
	}
	return out
}

// rebuildsNamed is rebuilds of dc's own record named as r (a test's
// declaration holds copies of the records).
func (dc *Declaration) rebuildsNamed(r *Record, s Set, v int) bool {
	for _, x := range dc.Records {
		if x.name == r.name {
			return dc.rebuilds(x, s, v)
		}
	}
	return false
}

func (hr *HourRollup) create(d Dialect, s Set) string {
	return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
    hour %[2]s NOT NULL,
    %[3]s %[4]s NOT NULL,
    kind %[4]s NOT NULL,
    bucket %[2]s NOT NULL,
    n %[2]s NOT NULL,
    PRIMARY KEY (%[5]s)
)`, hr.TableName(s), KindInt.SQLType(d), hr.Group, hr.Source.Field(hr.Group).kind.SQLType(d), strings.Join(hr.Keys(), ", "))
}

// aggregate is the SELECT of the rollup's rows (keys, then the count times
// sign) of the source rows in from (prefix row: a source row; prefix sess:
// its session), that pass where.
func (hr *HourRollup) aggregate(d Dialect, from, where, row, sess, sign string) string {
	if where != "" {
		where = " WHERE " + where
	}
	var parts []string
	for _, b := range hr.Buckets {
		parts = append(parts, fmt.Sprintf("SELECT %s AS hour, %s%s AS g, '%s' AS kind, %s AS bucket FROM %s%s",
			HourOf(d, sess+"started_at"), row, hr.Group, b.Kind, fmt.Sprintf(b.Expr, row), from, where))
	}
	return fmt.Sprintf("SELECT hour, g, kind, bucket, %scount(*) FROM (%s) q WHERE 1 = 1 GROUP BY hour, g, kind, bucket ORDER BY hour, g, kind, bucket",
		sign, strings.Join(parts, " UNION ALL "))
}

// upsert adds the rows of src to the rollup.
func (hr *HourRollup) upsert(s Set, src string) string {
	t := hr.TableName(s)
	return fmt.Sprintf("INSERT INTO %s (%s, n)\n        %s\n        ON CONFLICT (%s) DO UPDATE SET n = %s.n + excluded.n",
		t, strings.Join(hr.Keys(), ", "), src, strings.Join(hr.Keys(), ", "), t)
}

// drop deletes the rows left at zero of the hours hours (a SELECT of them).
func (hr *HourRollup) drop(s Set, hours string) string {
	return fmt.Sprintf("DELETE FROM %s WHERE n = 0 AND hour IN (%s)", hr.TableName(s), hours)
}

// triggers keep the rollup from both tables: on PostgreSQL statement
// triggers with transition tables, on SQLite row triggers (see
// Rollup.triggers). Records count under their session's hour: written,
// they join the sessions there; a session written brings in the records
// already there; one deleted, or whose start moved to another hour, takes
// its records out of the old hour (and a move puts them in the new one).
func (hr *HourRollup) triggers(d Dialect, s Set) []string {
	t, src, sessions := hr.TableName(s), s.TableName(hr.Source), s.TableName(sessions)
	hour := func(e string) string { return HourOf(d, e+"started_at") }
	// change adds (sign "") or subtracts ("-") the rows of from.
	change := func(from, where, row, sess, sign string) string {
		return hr.upsert(s, hr.aggregate(d, from, where, row, sess, sign))
	}
	if d == Postgres {
		recs := func(rel string) string { return rel + " r JOIN " + sessions + " ss ON ss.session_id = r.session_id" }
		of := func(rel string) string { return rel + " ss JOIN " + src + " r ON r.session_id = ss.session_id" }
		moved := func(rel, other string) string {
			return fmt.Sprintf("%s ss JOIN %s o ON o.session_id = ss.session_id AND %s <> %s JOIN %s r ON r.session_id = ss.session_id",
				rel, other, hour("o."), hour("ss."), src)
		}
		fn := func(name, body string) string {
			return fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $fn$\nBEGIN\n%s\n    RETURN NULL;\nEND\n$fn$", name, body)
		}
		oldHours := func(from string) string { return "SELECT " + hour("ss.") + " FROM " + from }
		out := []string{
			fn(t+"_keep", fmt.Sprintf(`    IF TG_OP <> 'INSERT' THEN
        %s;
        %s;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        %s;
    END IF;`, change(recs("old_rows"), "", "r.", "ss.", "-"), hr.drop(s, oldHours(recs("old_rows"))), change(recs("new_rows"), "", "r.", "ss.", ""))),
			fn(t+"_keep_sessions", fmt.Sprintf(`    IF TG_OP = 'INSERT' THEN
        %s;
    ELSIF TG_OP = 'DELETE' THEN
        %s;
        %s;
    ELSE
        %s;
        %s;
        %s;
    END IF;`, change(of("new_rows"), "", "r.", "ss.", ""),
				change(of("old_rows"), "", "r.", "ss.", "-"), hr.drop(s, oldHours("old_rows ss")),
				change(moved("old_rows", "new_rows"), "", "r.", "ss.", "-"), hr.drop(s, oldHours("old_rows ss")), change(moved("new_rows", "old_rows"), "", "r.", "ss.", ""))),
		}
		for _, tb := range []struct{ table, fn string }{{src, t + "_keep"}, {sessions, t + "_keep_sessions"}} {
			for _, tr := range []struct{ name, event, ref string }{
				{"ins", "INSERT", "NEW TABLE AS new_rows"},
				{"upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"},
				{"del", "DELETE", "OLD TABLE AS old_rows"},
			} {
				name := tb.fn + "_" + tr.name
				out = append(out, fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", name, tb.table),
					fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", name, tr.event, tb.table, tr.ref, tb.fn))
			}
		}
		return out
	}
	// SQLite: a record's session is looked up by its key; a session's
	// records by the index on (session_id, time).
	ofRec := func(row string) (string, string) { return sessions + " ss", "ss.session_id = " + row + ".session_id" }
	recHours := func(row string) string {
		return fmt.Sprintf("SELECT %s FROM %s ss WHERE ss.session_id = %s.session_id", hour("ss."), sessions, row)
	}
	recAdd := func(row, sign string) string {
		from, where := ofRec(row)
		return change(from, where, row+".", "ss.", sign) + ";"
	}
	sessChange := func(row, sign string) string {
		return change(src+" r", "r.session_id = "+row+".session_id", "r.", row+".", sign) + ";"
	}
	return []string{
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_ins AFTER INSERT ON %s BEGIN\n    %s\nEND", t, src, recAdd("NEW", "")),
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_upd AFTER UPDATE ON %s BEGIN\n    %s\n    %s;\n    %s\nEND", t, src,
			recAdd("OLD", "-"), hr.drop(s, recHours("OLD")), recAdd("NEW", "")),
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_del AFTER DELETE ON %s BEGIN\n    %s\n    %s;\nEND", t, src, recAdd("OLD", "-"), hr.drop(s, recHours("OLD"))),
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_sessions_ins AFTER INSERT ON %s BEGIN\n    %s\nEND", t, sessions, sessChange("NEW", "")),
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_sessions_upd AFTER UPDATE OF started_at ON %s WHEN %s <> %s BEGIN\n    %s\n    %s;\n    %s\nEND",
			t, sessions, hour("OLD."), hour("NEW."), sessChange("OLD", "-"), hr.drop(s, "SELECT "+hour("OLD.")), sessChange("NEW", "")),
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_sessions_del AFTER DELETE ON %s BEGIN\n    %s\n    %s;\nEND",
			t, sessions, sessChange("OLD", "-"), hr.drop(s, "SELECT "+hour("OLD."))),
	}
}
