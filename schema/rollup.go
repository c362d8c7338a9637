package schema

import (
	"fmt"
	"slices"
	"strings"
)

// Rollup is a table the database keeps from a record table as rows come:
// counts per key, kept by triggers for the rows a statement really
// inserts (not the duplicates a retried batch skips), updates or deletes,
// so every writer (the stores, COPY, a hand-made INSERT) keeps it exact.
// The insights read it instead of the records: per session a few rows
// instead of a hundred calls.
type Rollup struct {
	Table  string // without the set prefix
	Source *Record
	Keys   []string // the source's columns it groups by (its primary key)
	Counts []Count
	// Indexes of the rollup table (name without the set prefix).
	Indexes []Index
	Since   int
	Doc     string
}

// Count is a column of a rollup: how many of the key's source rows have
// Column equal to Equals, or null when Null, or pass Where (SQL over the
// source's columns, each written %[1]sname, %[1]s being the row's prefix), or all of them; or, with Sum,
// the sum of that column over them.
type Count struct {
	Name, Column, Equals string
	Null                 bool
	Where                string
	Sum                  string
	Doc                  string
}

// toolCounts: the calls of each session by tool and permission, and those
// without a run mark (clients before schema version 3), whose loops the
// insights find by sorting.
var toolCounts = &Rollup{
	Table: "tool_counts", Source: toolCalls, Keys: []string{"session_id", "tool_name"}, Since: 3,
	Doc: "tool calls per session and tool, kept by triggers on tool_calls (the permissions and calls per tool of the insights)",
	Counts: []Count{
		{Name: "calls", Doc: "calls"},
		{Name: "auto_allowed", Column: "permission", Equals: "auto_allowed", Doc: "calls permitted without asking"},
		{Name: "user_allowed", Column: "permission", Equals: "user_allowed", Doc: "calls the user allowed"},
		{Name: "denied", Column: "permission", Equals: "denied", Doc: "calls the user denied"},
		{Name: "unmarked", Column: "run_len", Null: true, Doc: "calls without a run mark (clients before version 3)"},
	},
	// The sessions whose loops are found by sorting: none once every
	// client marks its runs.
	Indexes: []Index{{Name: "tool_counts_unmarked_idx", Columns: []string{"session_id"}, Where: "unmarked > 0"}},
}

// turnCounts: the turns of each session by model, finish reason and mode:
// the models of a window, their turns, sessions and finish reasons, and the
// sessions that planned, without reading the turns.
var turnCounts = &Rollup{
	Table: "turn_counts", Source: turns, Keys: []string{"session_id", "model"}, Since: 3,
	Doc: "turns per session and model, kept by triggers on turns (the models, finish reasons and plan turns of the insights)",
	Counts: append([]Count{
		{Name: "turns", Doc: "turns"},
		{Name: "plan_turns", Column: "mode", Equals: "plan", Doc: "turns in plan mode"},
		{Name: "struggles", Where: fmt.Sprintf("%%[1]sfinish_reason IN ('length', 'error') OR %%[1]snum_tool_calls >= %d", StruggleToolCalls),
			Doc: "turns that struggled by the default rule: ended in length or error, or asked for 8 tool calls or more"},
		{Name: "prompt_tokens", Sum: "prompt_tokens", Doc: "input tokens"},
		{Name: "completion_tokens", Sum: "completion_tokens", Doc: "output tokens"},
		{Name: "duration_ms", Sum: "duration_ms", Doc: "wall time in milliseconds"},
	}, finishCounts()...),
}

// StruggleToolCalls is the default rule's tool calls that make a turn
// struggle (rules.StruggleToolCalls; schema imports nothing of ours).
const StruggleToolCalls = 8

func finishCounts() []Count {
	var out []Count
	for _, f := range enumFinishReason {
		out = append(out, Count{Name: "finish_" + f, Column: "finish_reason", Equals: f, Doc: "turns that ended in " + f})
	}
	for _, e := range enumAPIError {
		out = append(out, Count{Name: "error_" + e, Column: "api_error_type", Equals: e, Doc: "turns ended by an API error of class " + e})
	}
	return out
}

// rollupList lists the rollup tables, in both sets.
var rollupList = []*Rollup{toolCounts, turnCounts}

// Rollups lists the rollup tables, in both sets: copies, so that no
// caller changes the declaration.
func Rollups() []*Rollup {
	out := make([]*Rollup, len(rollupList))
	for i, ru := range rollupList {
		c := *ru
		c.Keys, c.Counts, c.Indexes = slices.Clone(ru.Keys), slices.Clone(ru.Counts), slices.Clone(ru.Indexes)
		for j, ix := range c.Indexes {
			c.Indexes[j].Columns, c.Indexes[j].Include = slices.Clone(ix.Columns), slices.Clone(ix.Include)
		}
		out[i] = &c
	}
	return out
}

// TableName is the rollup's table in the set.
func (ru *Rollup) TableName(s Set) string { return s.Prefix() + ru.Table }

// rollups returns the statements of version v for the rollups: the
// tables and triggers of those made in v, with the counts of the rows
// already there (unless whole: the declaration made in one go, with no
// rows); on SQLite also the triggers of a source table v rebuilt, since
// they went with the old table.
func (dc *Declaration) rollups(d Dialect, s Set, v int, whole bool) []string {
	var out []string
	for _, ru := range dc.Rollups {
		switch {
		case whole && ru.Since <= v, ru.Since == v:
			out = append(out, ru.create(d, s))
			for _, ix := range ru.Indexes {
				ix.Name = s.Prefix() + ix.Name
				out = append(out, ix.def(d, ru.TableName(s)))
			}
			out = append(out, ru.triggers(d, s)...)
			if !whole {
				out = append(out, ru.backfill(s))
			}
		case ru.Since < v && d == SQLite && dc.rebuilds(ru.Source, s, v):
			out = append(out, ru.triggers(d, s)...)
		}
	}
	for _, hr := range hourRollups {
		out = append(out, hr.statements(d, s, v, whole)...)
	}
	return out
}

// rebuilds reports whether migration v makes r's SQLite table anew.
func (dc *Declaration) rebuilds(r *Record, s Set, v int) bool {
	if r.since >= v {
		return false
	}
	for _, f := range s.Columns(r) {
		if f.since < v && f.changed == v {
			return true
		}
	}
	return false
}

func (ru *Rollup) create(d Dialect, s Set) string {
	var defs []string
	for _, k := range ru.Keys {
		defs = append(defs, fmt.Sprintf("    %s %s NOT NULL", k, ru.Source.Field(k).kind.SQLType(d)))
	}
	for _, c := range ru.Counts {
		defs = append(defs, fmt.Sprintf("    %s %s NOT NULL", c.Name, KindInt.SQLType(d)))
	}
	defs = append(defs, fmt.Sprintf("    PRIMARY KEY (%s)", strings.Join(ru.Keys, ", ")))
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n%s\n)", ru.TableName(s), strings.Join(defs, ",\n"))
}

// match is the SQL test of c on a row of the source named row ("" for
// bare columns), or "" when c counts every row.
func (c Count) match(row string) string {
	prefix := ""
	if row != "" {
		prefix = row + "."
	}
	switch {
	case c.Where != "":
		return "(" + fmt.Sprintf(c.Where, prefix) + ")"
	case c.Column == "":
		return ""
	case c.Null:
		return prefix + c.Column + " IS NULL"
	}
	return fmt.Sprintf("%s%s = '%s'", prefix, c.Column, c.Equals)
}

// value is c over the rows of an aggregate (sign "-" subtracts them).
func (c Count) value(sign string) string {
	m := c.match("")
	switch {
	case c.Sum != "" && m == "":
		return fmt.Sprintf("%scoalesce(sum(%s), 0)", sign, c.Sum)
	case c.Sum != "":
		return fmt.Sprintf("%scoalesce(sum(%s) FILTER (WHERE %s), 0)", sign, c.Sum, m)
	case m == "":
		return sign + "count(*)"
	}
	return fmt.Sprintf("%scount(*) FILTER (WHERE %s)", sign, m)
}

// rowValue is c for the one row named row (a SQLite row trigger).
func (c Count) rowValue(row, sign string) string {
	v := sign + "1"
	if c.Sum != "" {
		v = fmt.Sprintf("%scoalesce(%s.%s, 0)", sign, row, c.Sum)
	}
	if m := c.match(row); m != "" {
		return fmt.Sprintf("CASE WHEN %s THEN %s ELSE 0 END", m, v)
	}
	return v
}

func (ru *Rollup) columns() string {
	cols := append([]string(nil), ru.Keys...)
	for _, c := range ru.Counts {
		cols = append(cols, c.Name)
	}
	return strings.Join(cols, ", ")
}

// aggregate is the SELECT of the counts of the rows of rel by key, each
// count times sign, in key order (so concurrent writers lock rollup rows
// in one order).
func (ru *Rollup) aggregate(rel, sign string) string {
	cols := append([]string(nil), ru.Keys...)
	for _, c := range ru.Counts {
		cols = append(cols, c.value(sign))
	}
	keys := strings.Join(ru.Keys, ", ")
	return fmt.Sprintf("SELECT %s FROM %s GROUP BY %s ORDER BY %s", strings.Join(cols, ", "), rel, keys, keys)
}

// upsert adds the counts of src (a SELECT or VALUES of the rollup's
// columns) to the rollup.
func (ru *Rollup) upsert(s Set, src string) string {
	var set []string
	for _, c := range ru.Counts {
		set = append(set, fmt.Sprintf("%s = %s.%s + excluded.%s", c.Name, ru.TableName(s), c.Name, c.Name))
	}
	return fmt.Sprintf("INSERT INTO %s (%s)\n        %s\n        ON CONFLICT (%s) DO UPDATE SET %s",
		ru.TableName(s), ru.columns(), src, strings.Join(ru.Keys, ", "), strings.Join(set, ", "))
}

// drop deletes the rollup rows of the keys of rel left with no rows.
func (ru *Rollup) drop(s Set, rel, first string) string {
	var on []string
	for _, k := range ru.Keys {
		on = append(on, fmt.Sprintf("%s.%s = %s.%s", ru.TableName(s), k, rel, k))
	}
	return fmt.Sprintf("DELETE FROM %s WHERE %s = 0 AND EXISTS (SELECT 1 FROM %s WHERE %s)",
		ru.TableName(s), first, rel, strings.Join(on, " AND "))
}

func (ru *Rollup) backfill(s Set) string {
	return fmt.Sprintf("INSERT INTO %s (%s)\n%s\nON CONFLICT DO NOTHING", ru.TableName(s), ru.columns(), ru.aggregate(s.TableName(ru.Source), ""))
}

// triggers keeps the rollup: on PostgreSQL one function for statement
// triggers with transition tables (the rows the statement really wrote);
// on SQLite row triggers (which fire only for rows really written).
func (ru *Rollup) triggers(d Dialect, s Set) []string {
	t, src, first := ru.TableName(s), s.TableName(ru.Source), ru.Counts[0].Name
	if d == Postgres {
		fn := t + "_keep"
		body := fmt.Sprintf(`CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        %s;
        %s;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        %s;
    END IF;
    RETURN NULL;
END
$fn$`, fn, ru.upsert(s, ru.aggregate("old_rows", "-")), ru.drop(s, "old_rows", first), ru.upsert(s, ru.aggregate("new_rows", "")))
		out := []string{body}
		for _, tr := range []struct{ name, event, ref string }{
			{"ins", "INSERT", "NEW TABLE AS new_rows"},
			{"upd", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"},
			{"del", "DELETE", "OLD TABLE AS old_rows"},
		} {
			name := t + "_" + tr.name
			out = append(out, fmt.Sprintf("DROP TRIGGER IF EXISTS %s ON %s", name, src),
				fmt.Sprintf("CREATE TRIGGER %s AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %s()", name, tr.event, src, tr.ref, fn))
		}
		return out
	}
	values := func(row, sign string) string {
		vals := make([]string, 0, len(ru.Keys)+len(ru.Counts))
		for _, k := range ru.Keys {
			vals = append(vals, row+"."+k)
		}
		for _, c := range ru.Counts {
			vals = append(vals, c.rowValue(row, sign))
		}
		return "VALUES (" + strings.Join(vals, ", ") + ")"
	}
	var keyOf []string
	for _, k := range ru.Keys {
		keyOf = append(keyOf, fmt.Sprintf("%s = OLD.%s", k, k))
	}
	sub := fmt.Sprintf("%s;\n    DELETE FROM %s WHERE %s AND %s = 0;", ru.upsert(s, values("OLD", "-")), t, strings.Join(keyOf, " AND "), first)
	add := ru.upsert(s, values("NEW", "")) + ";"
	return []string{
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_ins AFTER INSERT ON %s BEGIN\n    %s\nEND", t, src, add),
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_upd AFTER UPDATE ON %s BEGIN\n    %s\n    %s\nEND", t, src, sub, add),
		fmt.Sprintf("CREATE TRIGGER IF NOT EXISTS %s_del AFTER DELETE ON %s BEGIN\n    %s\nEND", t, src, sub),
	}
}
