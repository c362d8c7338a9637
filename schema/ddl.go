package schema

import (
	"fmt"
	"slices"
	"strings"
)

// Dialect is a SQL database family.
type Dialect string

// The two dialects the stores speak.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Dialects lists both dialects.
func Dialects() [2]Dialect { return [...]Dialect{Postgres, SQLite} }

// SQLType is the column type of a field of kind k in dialect d.
func (k Kind) SQLType(d Dialect) string {
	if d == SQLite {
		switch k {
		case KindInt, KindBool:
			return "INTEGER"
		default:
			return "TEXT"
		}
	}
	switch k {
	case KindUUID:
		return "uuid"
	case KindTime:
		return "timestamptz"
	case KindInt:
		return "bigint"
	case KindBool:
		return "boolean"
	case KindList, KindProps:
		return "jsonb"
	default:
		return "text"
	}
}

// checks returns the CHECK expressions of a column: the last line of defence
// behind the validator, so even a validator bug cannot put a sentence into a
// name column of the central tables.
func (f *Field) checks(d Dialect) []string {
	c := f.name
	var out []string
	switch f.kind {
	case KindInt:
		out = append(out, fmt.Sprintf("%s BETWEEN %d AND %d", c, f.min, f.max))
	case KindBool:
		if d == SQLite {
			out = append(out, c+" IN (0, 1)")
		}
	case KindString:
		if f.enum != nil {
			q := make([]string, len(f.enum))
			for i, v := range f.enum {
				q[i] = "'" + v + "'"
			}
			out = append(out, fmt.Sprintf("%s IN (%s)", c, strings.Join(q, ", ")))
		} else {
			out = append(out, fmt.Sprintf("%s(%s) <= %d", lengthFn(d), c, f.max))
			if d == Postgres && f.pattern != nil {
				if p := f.pattern; p.first != "" {
					out = append(out, fmt.Sprintf("%s ~ '^[%s]' AND %s !~ '[^%s]'", c, p.first, c, p.rest))
				} else {
					out = append(out, fmt.Sprintf("%s ~ '%s'", c, f.pattern.re.String()))
				}
			}
		}
	case KindHash:
		if d == Postgres {
			// Same as ~ '^[0-9a-f]{64}$', several times cheaper to check.
			out = append(out, fmt.Sprintf("octet_length(%s) = 64 AND %s !~ '[^0-9a-f]'", c, c))
		} else {
			out = append(out, fmt.Sprintf("length(%s) = 64", c))
		}
	case KindUUID:
		if d == SQLite {
			out = append(out, fmt.Sprintf("length(%s) = 36", c))
		}
	case KindTime:
		if d == SQLite {
			out = append(out, fmt.Sprintf("length(%s) = %d", c, len(TimeLayout)))
		}
	case KindList:
		if d == Postgres {
			out = append(out, fmt.Sprintf("jsonb_typeof(%s) = 'array'", c))
		} else {
			out = append(out, fmt.Sprintf("json_type(%s) = 'array'", c))
		}
	case KindProps:
		if d == Postgres {
			out = append(out, fmt.Sprintf("jsonb_typeof(%s) = 'object'", c))
		} else {
			out = append(out, fmt.Sprintf("json_type(%s) = 'object'", c))
		}
	}
	return out
}

func lengthFn(d Dialect) string {
	if d == Postgres {
		return "char_length"
	}
	return "length"
}

// columnDef is the full definition of f's column.
func (f *Field) columnDef(d Dialect) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", f.name, f.kind.SQLType(d))
	if f.key {
		b.WriteString(" PRIMARY KEY")
	} else if !f.nullable && f.scope != SelfHosted {
		b.WriteString(" NOT NULL")
	}
	for _, c := range f.checks(d) {
		fmt.Fprintf(&b, " CHECK (%s)", c)
	}
	return b.String()
}

// Index is one secondary index of a table.
type Index struct {
	Name    string
	Columns []string
	// Include: columns an index-only scan reads besides the key
	// (PostgreSQL's INCLUDE; SQLite has none and appends them to the key).
	Include []string
	// Where makes a partial index: only the rows an analysis looks for,
	// so the others cost ingest nothing but the test.
	Where string
	// Since is the version that made the index (0: the table's own).
	Since int
}

// def is the CREATE INDEX statement of ix on table t.
func (ix Index) def(d Dialect, t string) string {
	cols := ix.Columns
	var b strings.Builder
	if d == SQLite {
		cols = append(append([]string(nil), cols...), ix.Include...)
	}
	fmt.Fprintf(&b, "CREATE INDEX IF NOT EXISTS %s ON %s (%s)", ix.Name, t, strings.Join(cols, ", "))
	if d == Postgres && len(ix.Include) > 0 {
		fmt.Fprintf(&b, " INCLUDE (%s)", strings.Join(ix.Include, ", "))
	}
	if ix.Where != "" {
		b.WriteString(" WHERE " + ix.Where)
	}
	return b.String()
}

// since is the version that made ix on r's table.
func (ix Index) since(r *Record) int {
	if ix.Since > r.since {
		return ix.Since
	}
	return r.since
}

// Indexes returns the secondary indexes of r's table in the set: the ones the
// insights read by (session_id, time) and (time), and centrally the
// sessions' (user_id, time), which finds a user's sessions and through them
// the rest of their rows.
//
// The record tables have no (user_id, time) index of their own: every batch
// inserts into it at its user's place instead of at the end, as the other
// indexes do with time-ordered ids and times, and that made it cost about
// 40% of a tool call row's COPY; nothing reads records by user without their
// session ids.
func (s Set) Indexes(r *Record) []Index {
	t := s.TableName(r)
	if r.batch == "" { // a server table: looked up by key, listed by user
		return []Index{{Name: t + "_user_idx", Columns: []string{"user_id", r.timeField}}}
	}
	var out []Index
	if !r.Key().Equal("session_id") {
		out = append(out, Index{Name: t + "_session_time_idx", Columns: []string{"session_id", r.timeField}})
	}
	out = append(out, Index{Name: t + "_time_idx", Columns: []string{r.timeField}})
	if s == CentralSet && r.Key().Equal("session_id") {
		out = append(out, Index{Name: t + "_user_time_idx", Columns: []string{"user_id", r.timeField}})
	}
	for _, ix := range r.indexes { // copies: the declaration's stay as they are
		ix.Name, ix.Columns, ix.Include = t+"_"+ix.Name, slices.Clone(ix.Columns), slices.Clone(ix.Include)
		out = append(out, ix)
	}
	return out
}

// Equal reports whether the field is named name.
func (f *Field) Equal(name string) bool { return f.name == name }

// Declaration is the whole schema at one version. [Current] is this build's;
// tests make others ([Declaration.WithEnumValue]) to prove that a database
// survives the path from one to the next.
type Declaration struct {
	Version      int
	Records      []*Record // the batch records, in write order
	ServerTables []*Record // central tables that hold no records
	Rollups      []*Rollup // tables the database keeps from the records
	Retired      []RetiredIndex
}

// RetiredIndex is an index an earlier build made that this one does not:
// the migration of Version drops it where it exists.
type RetiredIndex struct {
	Version int
	Set     Set
	Name    string
}

// Current returns the declaration of this build: a copy, so that changing
// it changes neither the build's nor the next caller's.
func Current() *Declaration {
	return &Declaration{Version: Version, Records: slices.Clone(records[:]), ServerTables: slices.Clone(serverTables[:]), Rollups: Rollups(), Retired: slices.Clone(retiredIndexes)}
}

// WithEnumValue is a copy of dc at version v in which field of rec accepts
// one more value: the smallest schema change that rewrites a CHECK.
func (dc *Declaration) WithEnumValue(rec, field, value string, v int) *Declaration {
	out := *dc
	out.Version, out.Records = v, slices.Clone(dc.Records)
	for i, r := range out.Records {
		if r.name == rec {
			c := *r
			c.fields = slices.Clone(r.fields)
			for j, f := range c.fields {
				if f.name == field {
					nf := *f
					nf.changed = v
					c.fields[j] = nf.withEnum(append(slices.Clone(f.enum), value))
				}
			}
			out.Records[i] = &c
		}
	}
	return &out
}

// retiredIndexes: early builds of migration 1 indexed the record tables by
// (user_id, time); a later one of the same migration did not (the index
// cost 40% of a tool call row's COPY). Migration 2 drops them from the
// databases those builds made.
var retiredIndexes = []RetiredIndex{
	{2, CentralSet, "telemetry_turns_user_time_idx"},
	{2, CentralSet, "telemetry_tool_calls_user_time_idx"},
	{2, CentralSet, "telemetry_events_user_time_idx"},
}

// Tables lists every table of the set in dc: the record tables, and the
// server tables in the central set.
func (dc *Declaration) Tables(s Set) []*Record {
	if s == CentralSet {
		return append(append([]*Record(nil), dc.Records...), dc.ServerTables...)
	}
	return dc.Records
}

// ValidateMarker separates, in a PostgreSQL migration, the statements that
// change the schema from the VALIDATE CONSTRAINT statements that scan the
// tables: the runner commits the first part before it runs the second, so
// the scan holds no lock that stops writes.
const ValidateMarker = "-- fredtel:validate"

// DDL returns the statements of migration version v of the set in dialect d
// for the current declaration (see [Declaration.DDL]).
func DDL(d Dialect, s Set, v int) []string { return Current().DDL(d, s, v) }

// MigrationSQL is the text of the migration file for version v of the
// current declaration.
func MigrationSQL(d Dialect, s Set, v int) string { return Current().MigrationSQL(d, s, v) }

// DDL returns the statements of migration version v of the set in dialect d:
// the tables and columns declared with Since == v, the checks of columns
// whose Changed == v made anew, and the indexes retired in v. On
// PostgreSQL a check added to an existing table is added NOT VALID and
// validated after [ValidateMarker]. Every statement can run twice without
// harm (IF [NOT] EXISTS; SQLite's ADD COLUMN, which has no such clause, is
// guarded by the migration table and the transaction).
func (dc *Declaration) DDL(d Dialect, s Set, v int) []string {
	var out, validate []string
	for _, r := range dc.Tables(s) {
		t := s.TableName(r)
		cols := s.Columns(r)
		if r.since == v {
			out = append(out, createTable(d, s, r, v))
			continue
		}
		if r.since > v {
			continue
		}
		if d == SQLite && dc.rebuilds(r, s, v) {
			// SQLite cannot change a column's CHECK: the table is made
			// anew with every column of version v and its rows copied.
			out = append(out, rebuildTable(s, r, v)...)
			continue
		}
		for _, f := range cols {
			switch {
			case f.since == v:
				if !f.nullable {
					panic(fmt.Sprintf("schema: %s.%s added in version %d must be Nullable", r.name, f.name, v))
				}
				if d == SQLite {
					out = append(out, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s", t, f.columnDef(d)))
					continue
				}
				out = append(out, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", t, f.name, f.kind.SQLType(d)))
			case f.since < v && f.changed == v:
			default:
				continue
			}
			if d == Postgres {
				add, val := replaceChecks(t, f, f.since < v)
				out = append(out, add...)
				validate = append(validate, val...)
			}
		}
		out = append(out, indexDefs(d, s, r, v, v)...)
	}
	out = append(out, dc.rollups(d, s, v, false)...)
	for _, ri := range dc.Retired {
		if ri.Version == v && ri.Set == s {
			out = append(out, "DROP INDEX IF EXISTS "+ri.Name)
		}
	}
	if len(validate) > 0 {
		out = append(out, ValidateMarker)
		out = append(out, validate...)
	}
	return out
}

// checkName is the name PostgreSQL gives the i-th CHECK of a column
// declared inline (t_col_check, t_col_check1, ...): migrations name the
// checks they add the same way, so a migrated table and one created whole
// have the same constraints, and a later change finds them by name.
func checkName(t string, f *Field, i int) string {
	n := t + "_" + f.name + "_check"
	if i > 0 {
		n += fmt.Sprint(i)
	}
	if len(n) > 63 {
		panic("schema: constraint name " + n + " is longer than PostgreSQL's 63 bytes")
	}
	return n
}

// maxChecks bounds the checks a column ever had, so the names a change
// drops cover them all.
const maxChecks = 4

// replaceChecks returns the statements that give f's column its declared
// checks, NOT VALID, and the statements that validate them. dropOld also
// drops the checks an earlier version named.
func replaceChecks(t string, f *Field, dropOld bool) (add, validate []string) {
	checks := f.checks(Postgres)
	n := len(checks)
	if dropOld {
		n = maxChecks
	}
	if len(checks) > maxChecks {
		panic(fmt.Sprintf("schema: %s has more than %d checks", f.name, maxChecks))
	}
	var parts []string
	for i := 0; i < n; i++ {
		parts = append(parts, "DROP CONSTRAINT IF EXISTS "+checkName(t, f, i))
	}
	for i, c := range checks {
		parts = append(parts, fmt.Sprintf("ADD CONSTRAINT %s CHECK (%s) NOT VALID", checkName(t, f, i), c))
		validate = append(validate, fmt.Sprintf("ALTER TABLE %s VALIDATE CONSTRAINT %s", t, checkName(t, f, i)))
	}
	if len(parts) == 0 {
		return nil, nil
	}
	return []string{fmt.Sprintf("ALTER TABLE %s\n    %s", t, strings.Join(parts, ",\n    "))}, validate
}

// Whole is the set's tables created in one go at dc.Version, as no
// database is: the reference a database migrated step by step must equal
// (store's TestMigratedSchemaIsTheDeclaration).
func (dc *Declaration) Whole(d Dialect, s Set) []string {
	var out []string
	for _, r := range dc.Tables(s) {
		out = append(out, tableDef(d, s, r, dc.Version, s.TableName(r)))
		out = append(out, indexDefs(d, s, r, 0, dc.Version)...)
	}
	return append(out, dc.rollups(d, s, dc.Version, true)...)
}

// createTable is the CREATE TABLE of r with its columns of versions up to v,
// and its indexes.
func createTable(d Dialect, s Set, r *Record, v int) string {
	return strings.Join(append([]string{tableDef(d, s, r, v, s.TableName(r))}, indexDefs(d, s, r, 0, v)...), ";\n\n")
}

func tableDef(d Dialect, s Set, r *Record, v int, name string) string {
	var defs []string
	for _, f := range s.Columns(r) {
		if f.since <= v {
			defs = append(defs, "    "+f.columnDef(d))
		}
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n%s\n)", name, strings.Join(defs, ",\n"))
}

// indexDefs are the CREATE INDEX statements of r's indexes made by
// versions from..to.
func indexDefs(d Dialect, s Set, r *Record, from, to int) []string {
	var out []string
	for _, ix := range s.Indexes(r) {
		if v := ix.since(r); v >= from && v <= to {
			out = append(out, ix.def(d, s.TableName(r)))
		}
	}
	return out
}

// rebuildTable makes r's SQLite table anew with the columns and checks of
// version v, keeping its rows. The indexes go with the old table and are
// made again on the new one.
func rebuildTable(s Set, r *Record, v int) []string {
	t := s.TableName(r)
	var names []string
	for _, f := range s.Columns(r) {
		if f.since < v { // columns new in v have no rows to copy
			names = append(names, f.name)
		}
	}
	cols := strings.Join(names, ", ")
	out := []string{
		"DROP TABLE IF EXISTS " + t + "__new",
		tableDef(SQLite, s, r, v, t+"__new"),
		fmt.Sprintf("INSERT INTO %s__new (%s) SELECT %s FROM %s", t, cols, cols, t),
		"DROP TABLE " + t,
		fmt.Sprintf("ALTER TABLE %s__new RENAME TO %s", t, t),
	}
	return append(out, indexDefs(SQLite, s, r, 0, v)...)
}

// MigrationSQL is the text of the migration file for version v.
func (dc *Declaration) MigrationSQL(d Dialect, s Set, v int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Code generated by go generate ./schema from schema/records.go; DO NOT EDIT.\n")
	fmt.Fprintf(&b, "-- Schema version %d, %s tables, %s. Frozen once version %d exists: a\n", v, s, d, v+1)
	fmt.Fprintf(&b, "-- database records this file's checksum and refuses an edited one.\n")
	for _, st := range dc.DDL(d, s, v) {
		b.WriteString("\n")
		b.WriteString(st)
		if st != ValidateMarker {
			b.WriteString(";")
		}
		b.WriteString("\n")
	}
	return b.String()
}
