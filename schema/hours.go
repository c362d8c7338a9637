package schema

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// HourRollup is a rollup of a record table by the hour its session
// started: for each (hour, group, kind, bucket), how many source rows
// there are (Counts). A row holds ten buckets, of the same leading digits
// (n0 … n9: lead + i·step): a batch updates a row per decade it touches
// instead of one per bucket, and each update is most of what the rollup
// costs ingest. A report over a window of sessions sums the hours wholly
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
	// Replaces is the version that made the table in an earlier shape:
	// the migration of Since drops it (and its SQLite triggers) first.
	Replaces int
	// Folded is the version from which the rollup is no longer kept by
	// triggers at ingest but folded in the background (see Fold).
	Folded int
	Doc    string
}

// Bucket is a measure of an HourRollup: each source row counts once under
// Kind, in the bucket of the integer Expr (SQL over the source's columns,
// each written %[1]sname, ≥ 0): Expr rounded down to a multiple of Step,
// the SQL of a power of ten for the value %[1]s (1: every value is its own
// bucket).
type Bucket struct {
	Kind string // one letter
	Expr string
	Step string
	Doc  string
}

// turnHours: the turns by the hour their session started, model, tool
// calls (exact) and duration (two significant digits): the percentiles of the
// model table of the insights. A duration percentile reads its exact value
// from the turns of one bucket, through the index on (model, duration_ms).
var turnHours = &HourRollup{
	// Version 4 kept a row per bucket, and on SQLite too (row triggers
	// that made its writers four times slower); version 5 keeps ten
	// buckets a row, a shard per connection, on PostgreSQL only.
	// Version 6 folds it in the background: its triggers at ingest cost
	// the ingest ratio 15% (docs/insights.md, "What ingest pays").
	Table: "turn_hours", Source: turns, Group: "model", Since: 5, Replaces: 4, Folded: 6,
	Doc: "turns by the hour their session started (hours since 1970, UTC), model, tool calls and duration bucket, folded in the background from the turns and sessions committed (fold_xid below turn_hours_folded.below), on PostgreSQL only (the model table's percentiles of the insights)",
	Buckets: []Bucket{
		{Kind: "n", Expr: "%[1]snum_tool_calls", Step: "1", Doc: "tool calls of the turn, exact"},
		{Kind: "d", Expr: "%[1]sduration_ms", Step: durationStep("%[1]s"), Doc: "duration of the turn in ms, rounded down to two significant digits (exact below 100)"},
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

// Bucket is the measure of kind kind.
func (hr *HourRollup) Bucket(kind string) Bucket {
	i := slices.IndexFunc(hr.Buckets, func(b Bucket) bool { return b.Kind == kind })
	return hr.Buckets[i]
}

// Of is the SQL of the bucket of a source row (prefix row, "r." or "").
func (b Bucket) Of(row string) string {
	v := fmt.Sprintf(b.Expr, row)
	st := b.stepOf(v)
	return "(" + v + " / " + st + " * " + st + ")"
}

// stepOf is the SQL of the step of the value v (Step names it %[1]s, or
// is a constant).
func (b Bucket) stepOf(v string) string {
	if !strings.Contains(b.Step, "%") {
		return b.Step
	}
	return fmt.Sprintf(b.Step, v)
}

// durationStep is the SQL of the step of a duration e (≥ 0): 1 below 100,
// then the power of ten that keeps two significant digits (3072 → 3000,
// 18731 → 18000), 1 again from durationExact (beyond a valid duration).
// Integer arithmetic that PostgreSQL and SQLite compute alike. A bucket
// holds values within 10% of each other: the one a percentile falls in is
// a short range of an index.
func durationStep(e string) string {
	var b strings.Builder
	b.WriteString("CASE WHEN " + e + " < 100 THEN 1")
	for p := int64(10); p*100 <= durationExact; p *= 10 {
		fmt.Fprintf(&b, " WHEN %s < %d THEN %d", e, p*100, p)
	}
	return b.String() + " ELSE 1 END"
}

// durationExact is where durationStep stops rounding: above the longest
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
// The last, shard, is the writing connection (its backend's pid mod 16):
// concurrent batches of the same hour
// then add to rows of their own instead of queueing on each other's row
// locks until commit (that cost ingest a third of its throughput). A
// count is the sum over the shards: at most one row per connection of the
// server's pool.
func (hr *HourRollup) Keys() []string { return []string{"hour", hr.Group, "kind", "lead", "shard"} }

// Columns are the rollup table's columns.
func (hr *HourRollup) Columns() []string { return append(append(hr.Keys(), "step"), digits()...) }

// digits are the count columns, n0 … n9.
func digits() []string {
	out := make([]string, 10)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i)
	}
	return out
}

// Counts is the SQL of the rollup's counts, one row (hour, g, kind,
// bucket, n) per bucket and shard, of the rows that pass where (SQL over
// the rollup's columns).
func (hr *HourRollup) Counts(s Set, where string) string {
	var cases []string
	for i, c := range digits() {
		cases = append(cases, fmt.Sprintf("WHEN %d THEN %s", i, c))
	}
	return fmt.Sprintf(`SELECT hour, g, kind, bucket, n FROM (SELECT h.hour, h.%s AS g, h.kind, h.lead + i.i * h.step AS bucket, CASE i.i %s END AS n
		FROM %s h CROSS JOIN (%s) i WHERE %s) q WHERE n <> 0`, hr.Group, strings.Join(cases, " "), hr.TableName(s), digitValues(), cmp.Or(where, "1 = 1"))
}

// digitValues is a relation of one column i, 0 … 9.
func digitValues() string {
	var out []string
	for i := range 10 {
		out = append(out, fmt.Sprintf("SELECT %d AS i", i))
	}
	return strings.Join(out, " UNION ALL ")
}

// shard is the SQL of the writing connection's shard (see Keys).
const shard = "pg_backend_pid() % 16"

// statements are the rollup's statements of version v (see rollups):
// PostgreSQL only. On SQLite (one user's own records, a few thousand turns)
// the insights count the turns, and its row triggers cost its writers four
// times their time (store.TestConcurrentProcessesExactlyOnce: 5 s → 24 s
// with them).
func (hr *HourRollup) statements(d Dialect, s Set, v int, whole bool) []string {
	var out []string
	if !whole && v == hr.Since && hr.Replaces > 0 {
		out = hr.dropEarlier(d, s)
	}
	if d != Postgres {
		return out
	}
	folded := hr.Folded > 0 && hr.Folded <= v
	switch {
	case whole && hr.Since <= v:
		out = append(out, hr.create(d, s))
		if !folded {
			out = append(out, hr.triggers(s)...)
		}
	case hr.Since == v:
		out = append(out, hr.create(d, s))
		out = append(out, hr.triggers(s)...)
		out = append(out, hr.upsert(s, hr.aggregate(s.TableName(hr.Source)+" r JOIN "+s.TableName(sessions)+" ss ON ss.session_id = r.session_id", "", "r.", HourOf(d, "ss.started_at"), "")))
	}
	if folded && (whole || hr.Folded == v) {
		out = append(out, hr.folding(s)...)
	}
	return out
}

// dropEarlier drops the table of version Replaces: its rows, of another
// shape, are counted again by the backfill. PostgreSQL's triggers keep
// their names and get the new functions; SQLite's go.
func (hr *HourRollup) dropEarlier(d Dialect, s Set) []string {
	t := hr.TableName(s)
	var out []string
	if d == SQLite {
		for _, tr := range []string{"ins", "upd", "del", "sessions_ins", "sessions_upd", "sessions_del"} {
			out = append(out, "DROP TRIGGER IF EXISTS "+t+"_"+tr)
		}
	}
	return append(out, "DROP TABLE IF EXISTS "+t)
}

func (hr *HourRollup) create(d Dialect, s Set) string {
	it := KindInt.SQLType(d)
	cols := []string{"hour " + it, hr.Group + " " + hr.Source.Field(hr.Group).kind.SQLType(d), "kind " + KindString.SQLType(d), "lead " + it, "shard " + it, "step " + it}
	for _, c := range digits() {
		cols = append(cols, c+" "+it)
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n    %s NOT NULL,\n    PRIMARY KEY (%s)\n)", hr.TableName(s), strings.Join(cols, " NOT NULL,\n    "), strings.Join(hr.Keys(), ", "))
}

// aggregate is the SELECT of the rollup's rows (keys, step, then the
// counts times sign) of the source rows in from (prefix row: a source row;
// hour: the SQL of its session's hour), that pass where: each row once per
// bucket, in one pass. v is a row's value, st its step: its bucket is
// v / st · st, the row's lead v / (10·st) · 10·st, its digit v / st mod 10.
// The measures come from a LATERAL VALUES list, so each is computed once,
// for its own kind: a join with a list of kinds made the planner compute
// every measure's CASE for every kind (the trigger cost 1.3 times more).
func (hr *HourRollup) aggregate(from, where, row, hour, sign string) string {
	var values, counts []string
	for _, b := range hr.Buckets {
		v := fmt.Sprintf(b.Expr, row)
		values = append(values, fmt.Sprintf("('%s', %s, %s)", b.Kind, v, b.stepOf(v)))
	}
	for i := range 10 {
		counts = append(counts, fmt.Sprintf("%scount(*) FILTER (WHERE k.v / k.st %% 10 = %d)", sign, i))
	}
	return fmt.Sprintf(`SELECT %s AS hour, %s%s AS g, k.kind, k.v / k.st / 10 * k.st * 10 AS lead, %s AS sh, k.st, %s
		FROM %s CROSS JOIN LATERAL (VALUES %s) k(kind, v, st) WHERE %s
		GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5`,
		hour, row, hr.Group, shard, strings.Join(counts, ", "), from, strings.Join(values, ", "), cmp.Or(where, "1 = 1"))
}

// upsert adds the rows of src to the rollup.
func (hr *HourRollup) upsert(s Set, src string) string {
	t := hr.TableName(s)
	var set []string
	for _, c := range digits() {
		set = append(set, fmt.Sprintf("%s = %s.%s + excluded.%s", c, t, c, c))
	}
	return fmt.Sprintf("INSERT INTO %s (%s, step, %s)\n        %s\n        ON CONFLICT (%s) DO UPDATE SET %s",
		t, strings.Join(hr.Keys(), ", "), strings.Join(digits(), ", "), src, strings.Join(hr.Keys(), ", "), strings.Join(set, ", "))
}

// drop deletes the rows left at zero of the hours hours (a SELECT of them).
func (hr *HourRollup) drop(s Set, hours string) string {
	return fmt.Sprintf("DELETE FROM %s WHERE %s = 0 AND hour IN (%s)", hr.TableName(s), strings.Join(digits(), " = 0 AND "), hours)
}

// triggers keep the rollup from both tables, by statement triggers with
// transition tables (see Rollup.triggers). Records count under their session's hour: written,
// they join the sessions there; a session written brings in the records
// already there; one deleted, or whose start moved to another hour, takes
// its records out of the old hour (and a move puts them in the new one).
func (hr *HourRollup) triggers(s Set) []string {
	const d = Postgres
	t, src, sessions := hr.TableName(s), s.TableName(hr.Source), s.TableName(sessions)
	hour := func(e string) string { return HourOf(d, e+"started_at") }
	// change adds (sign "") or subtracts ("-") the rows of from.
	change := func(from, where, row, hour, sign string) string {
		return hr.upsert(s, hr.aggregate(from, where, row, hour, sign))
	}
	// Each record's session, and each session's records, by an index
	// probe (a scalar subquery, or LATERAL … OFFSET 0, which the
	// planner keeps as they are): a join lets it, knowing nothing of a
	// transition table's size, scan the whole other table once per
	// statement.
	// A statement's records mostly share a session: its hour is
	// computed once (a scalar subquery per distinct session, not a
	// join; and not per record: numeric arithmetic). OFFSET 0 keeps the
	// planner from pulling the subquery up into the join, where it
	// probed the session again for every record.
	recs := func(rel string) string {
		return fmt.Sprintf("%[1]s r JOIN (SELECT u.session_id, (SELECT %[3]s FROM %[2]s s WHERE s.session_id = u.session_id) AS hour FROM (SELECT DISTINCT session_id FROM %[1]s) u OFFSET 0) ss ON ss.session_id = r.session_id AND ss.hour IS NOT NULL", rel, sessions, hour("s."))
	}
	records := " CROSS JOIN LATERAL (SELECT x.* FROM " + src + " x WHERE x.session_id = ss.session_id OFFSET 0) r"
	of := func(rel string) string { return rel + " ss" + records }
	moved := func(rel, other string) string {
		return fmt.Sprintf("%s ss JOIN %s o ON o.session_id = ss.session_id AND %s <> %s%s", rel, other, hour("o."), hour("ss."), records)
	}
	fn := func(name, body string) string {
		// Sorting a statement's rows is cheaper than the hash table
		// the planner sizes for a transition table of unknown size:
		// without it a batch's triggers cost ingest 20% more.
		return fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SET enable_hashagg = off AS $fn$\nBEGIN\n%s\n    RETURN NULL;\nEND\n$fn$", name, body)
	}
	oldHours := func(from string) string { return "SELECT " + hour("ss.") + " FROM " + from }
	out := []string{
		fn(t+"_keep", fmt.Sprintf(`    IF TG_OP <> 'INSERT' THEN
        %s;
        %s;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        %s;
    END IF;`, change(recs("old_rows"), "", "r.", "ss.hour", "-"), hr.drop(s, "SELECT ss.hour FROM "+recs("old_rows")), change(recs("new_rows"), "", "r.", "ss.hour", ""))),
		// Sessions come before their records, and keep their start: a
		// cheap probe each (is there a record? did an hour change?)
		// spares the statements that would find nothing.
		fn(t+"_keep_sessions", fmt.Sprintf(`    IF TG_OP = 'INSERT' THEN
        IF EXISTS (SELECT 1 FROM new_rows ss CROSS JOIN LATERAL (SELECT 1 FROM %s x WHERE x.session_id = ss.session_id LIMIT 1) x) THEN
            %s;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        %s;
        %s;
    ELSIF EXISTS (SELECT 1 FROM old_rows ss JOIN new_rows o ON o.session_id = ss.session_id AND %s <> %s) THEN
        %s;
        %s;
        %s;
    END IF;`, src, change(of("new_rows"), "", "r.", hour("ss."), ""),
			change(of("old_rows"), "", "r.", hour("ss."), "-"), hr.drop(s, oldHours("old_rows ss")), hour("o."), hour("ss."),
			change(moved("old_rows", "new_rows"), "", "r.", hour("ss."), "-"), hr.drop(s, oldHours("old_rows ss")), change(moved("new_rows", "old_rows"), "", "r.", hour("ss."), ""))),
	}
	out = append(out, statementTriggers(src, t+"_keep", "ins", "upd", "del")...)
	return append(out, statementTriggers(sessions, t+"_keep_sessions", "ins", "upd", "del")...)
}

// statementTriggers are the statements that give table the statement
// triggers of function fn (fn_ins, fn_upd, fn_del) of the events named,
// and drop those of the others.
func statementTriggers(table, fn string, events ...string) []string {
	var out []string
	for _, tr := range []struct{ name, event, ref string }{
		{"ins", "INSERT", "NEW TABLE AS new_rows"},
		{"upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"},
		{"del", "DELETE", "OLD TABLE AS old_rows"},
	} {
		name := fn + "_" + tr.name
		out = append(out, fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", name, table))
		if slices.Contains(events, tr.name) {
			out = append(out, fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", name, tr.event, table, tr.ref, fn))
		}
	}
	return out
}

// FoldColumn is the column of the source and session tables that holds the
// id of the transaction that wrote the row (PostgreSQL, from version
// Folded; 0 for the rows written before, which the triggers had counted).
const FoldColumn = "fold_xid"

// xidNow is the SQL of the writing transaction's id, as a bigint (a BRIN
// index has no operator class for xid8).
const xidNow = "CAST(CAST(pg_current_xact_id() AS text) AS bigint)"

// horizon is the SQL of the oldest transaction id still running: every
// transaction below it has committed or aborted, and none will write again.
const horizon = "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS bigint)"

// StateTable is the one-row table of the fold: below, the horizon the
// rollup holds every pair (record, session) under. A pair is folded when
// the greater of its two fold_xid is below it.
func (hr *HourRollup) StateTable(s Set) string { return hr.TableName(s) + "_folded" }

// FoldFunction is the SQL function that folds the pairs committed since
// the last fold and returns the new horizon: SELECT FoldFunction().
func (hr *HourRollup) FoldFunction(s Set) string { return hr.TableName(s) + "_fold" }

// FoldSQL is the one statement that folds every hour rollup of the set:
// what fredtel serve runs every few seconds and a report before its
// snapshot.
func FoldSQL(s Set) string {
	var calls []string
	for _, hr := range hourRollups {
		calls = append(calls, hr.FoldFunction(s)+"()")
	}
	return "SELECT " + strings.Join(calls, ", ")
}

// folding are the statements of version Folded: the rollup stops being
// kept at ingest and is folded by FoldFunction instead.
//
// Every row of the source and session tables carries the id of the
// transaction that wrote it (FoldColumn, a column default: nothing to do for
// the writers, and in the COPY ceiling of the ingest benchmark too). A
// pair (record, session) is folded once the greater of its two ids is
// below the horizon: both rows are committed then, and no transaction that
// could still write one is older. The fold adds the pairs between the last
// horizon and the new one (a record new since then with a session older
// than the new horizon; a session new since then with a record older than
// the last horizon), through BRIN indexes on the ids, and moves the horizon,
// in one transaction. A report adds the pairs at or above the horizon it
// reads in the same snapshot: exact, whenever the fold last ran.
//
// Updates and deletions (rare: an operator's, never ingest's) still go
// through triggers, which take out and put back only folded pairs. They
// and the fold lock the state row, so that a fold and a deletion never
// both count or both miss a pair: whichever waits sees the other's work
// once it is committed.
func (hr *HourRollup) folding(s Set) []string {
	const d = Postgres
	t, src, sess, state := hr.TableName(s), s.TableName(hr.Source), s.TableName(sessions), hr.StateTable(s)
	var out []string
	for _, tb := range []string{src, sess} {
		out = append(out,
			fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s bigint NOT NULL DEFAULT 0", tb, FoldColumn),
			fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s", tb, FoldColumn, xidNow),
			// autosummarize: the ranges filled since the last vacuum are
			// summarised as they fill, so that a fold reads the rows
			// written since the last one, not since the last vacuum.
			fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s_fold_idx ON %s USING brin (%s) WITH (autosummarize = on)", tb, tb, FoldColumn))
	}
	out = append(out,
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n    one boolean PRIMARY KEY DEFAULT true CHECK (one),\n    below bigint NOT NULL\n)", state),
		// The rows written before this version have 0 (counted by the
		// triggers); those written after, the id of a transaction that
		// was still running, or not yet begun, when this one began.
		fmt.Sprintf("INSERT INTO %s (one, below) VALUES (true, %s) ON CONFLICT (one) DO NOTHING", state, horizon))

	hour := func(e string) string { return HourOf(d, e+"started_at") }
	change := func(from, where, hr0, sign string) string {
		return hr.upsert(s, hr.aggregate(from, where, "r.", hr0, sign))
	}
	const folded = "greatest(r." + FoldColumn + ", ss." + FoldColumn + ") < w"
	lock := "SELECT below INTO w FROM " + state + " WHERE one FOR UPDATE"
	// A statement's records with their session's hour and id (see
	// triggers: one probe per distinct session).
	recs := func(rel string) string {
		return fmt.Sprintf("%[1]s r JOIN (SELECT u.session_id, x.hour, x.%[4]s FROM (SELECT DISTINCT session_id FROM %[1]s) u CROSS JOIN LATERAL (SELECT %[3]s AS hour, s.%[4]s FROM %[2]s s WHERE s.session_id = u.session_id) x OFFSET 0) ss ON ss.session_id = r.session_id", rel, sess, hour("s."), FoldColumn)
	}
	records := " CROSS JOIN LATERAL (SELECT x.* FROM " + src + " x WHERE x.session_id = ss.session_id OFFSET 0) r"
	moved := func(rel, other string) string {
		return fmt.Sprintf("%s ss JOIN %s o ON o.session_id = ss.session_id AND %s <> %s%s", rel, other, hour("o."), hour("ss."), records)
	}
	oldHours := "SELECT " + hour("ss.") + " FROM old_rows ss"
	fn := func(name, decl, settings, ret, body string) string {
		return fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS %s LANGUAGE plpgsql%s AS $fn$\nDECLARE\n    %s\nBEGIN\n%s\nEND\n$fn$", name, ret, settings, decl, body)
	}
	// Sorting a statement's rows: see triggers.
	const sorted = " SET enable_hashagg = off"
	out = append(out,
		fn(t+"_keep", "w bigint;", sorted, "trigger", fmt.Sprintf(`    %s;
    %s;
    %s;
    IF TG_OP = 'UPDATE' THEN
        %s;
    END IF;
    RETURN NULL;`, lock, change(recs("old_rows"), folded, "ss.hour", "-"), hr.drop(s, "SELECT ss.hour FROM "+recs("old_rows")), change(recs("new_rows"), folded, "ss.hour", ""))),
		// The sessions' insert has nothing to do (the fold pairs a new
		// session with its records); an update that moves no start
		// (every update from a client: its end) costs a probe.
		fn(t+"_keep_sessions", "w bigint;", sorted, "trigger", fmt.Sprintf(`    IF TG_OP = 'DELETE' THEN
        %s;
        %s;
        %s;
    ELSIF EXISTS (SELECT 1 FROM old_rows ss JOIN new_rows o ON o.session_id = ss.session_id AND %s <> %s) THEN
        %s;
        %s;
        %s;
        %s;
    END IF;
    RETURN NULL;`, lock, change("old_rows ss"+records, folded, hour("ss."), "-"), hr.drop(s, oldHours),
			hour("o."), hour("ss."),
			lock, change(moved("old_rows", "new_rows"), folded, hour("ss."), "-"), hr.drop(s, oldHours), change(moved("new_rows", "old_rows"), folded, hour("ss."), ""))),
		// The fold's aggregate is small (hours × models × buckets): a
		// hash, not a sort of every row folded.
		fn(hr.FoldFunction(s), "lo bigint;\n    hi bigint;", "", "bigint", fmt.Sprintf(`    SELECT below INTO lo FROM %s WHERE one FOR UPDATE;
    hi := %s;
    IF hi > lo THEN
        %s;
        %s;
        UPDATE %s SET below = hi;
    END IF;
    RETURN greatest(hi, lo);`, state, horizon,
			change(src+" r JOIN "+sess+" ss ON ss.session_id = r.session_id", "r."+FoldColumn+" >= lo AND r."+FoldColumn+" < hi AND ss."+FoldColumn+" < hi", hour("ss."), ""),
			change(sess+" ss JOIN "+src+" r ON r.session_id = ss.session_id", "ss."+FoldColumn+" >= lo AND ss."+FoldColumn+" < hi AND r."+FoldColumn+" < lo", hour("ss."), ""),
			state)),
	)
	out = append(out, statementTriggers(src, t+"_keep", "upd", "del")...)
	return append(out, statementTriggers(sess, t+"_keep_sessions", "upd", "del")...)
}
