package schema

import (
	"fmt"
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
var Dialects = []Dialect{Postgres, SQLite}

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
	c := f.Name
	var out []string
	switch f.Kind {
	case KindInt:
		out = append(out, fmt.Sprintf("%s BETWEEN %d AND %d", c, f.Min, f.Max))
	case KindBool:
		if d == SQLite {
			out = append(out, c+" IN (0, 1)")
		}
	case KindString:
		if f.Enum != nil {
			q := make([]string, len(f.Enum))
			for i, v := range f.Enum {
				q[i] = "'" + v + "'"
			}
			out = append(out, fmt.Sprintf("%s IN (%s)", c, strings.Join(q, ", ")))
		} else {
			out = append(out, fmt.Sprintf("%s(%s) <= %d", lengthFn(d), c, f.Max))
			if d == Postgres && f.Pattern != nil {
				if p := f.Pattern; p.First != "" {
					out = append(out, fmt.Sprintf("%s ~ '^[%s]' AND %s !~ '[^%s]'", c, p.First, c, p.Rest))
				} else {
					out = append(out, fmt.Sprintf("%s ~ '%s'", c, f.Pattern.Re.String()))
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
	fmt.Fprintf(&b, "%s %s", f.Name, f.Kind.SQLType(d))
	if f.Key {
		b.WriteString(" PRIMARY KEY")
	} else if !f.Nullable && f.Scope != SelfHosted {
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
	if r.Batch == "" { // a server table: looked up by key, listed by user
		return []Index{{t + "_user_idx", []string{"user_id", r.TimeField}}}
	}
	var out []Index
	if !r.Key().Equal("session_id") {
		out = append(out, Index{t + "_session_time_idx", []string{"session_id", r.TimeField}})
	}
	out = append(out, Index{t + "_time_idx", []string{r.TimeField}})
	if s == CentralSet && r.Key().Equal("session_id") {
		out = append(out, Index{t + "_user_time_idx", []string{"user_id", r.TimeField}})
	}
	return out
}

// Equal reports whether the field is named name.
func (f *Field) Equal(name string) bool { return f.Name == name }

// DDL returns the statements of migration version v of the set in dialect d:
// the tables and columns declared with Since == v, and their indexes. Every
// statement is idempotent (IF NOT EXISTS), so a migration that was applied by
// hand, or by a racing process, does no harm.
func DDL(d Dialect, s Set, v int) []string {
	var out []string
	for _, r := range s.Tables() {
		t := s.TableName(r)
		cols := s.Columns(r)
		if r.Since == v {
			defs := make([]string, 0, len(cols))
			for _, f := range cols {
				if f.Since != v {
					continue
				}
				defs = append(defs, "    "+f.columnDef(d))
			}
			out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n%s\n)", t, strings.Join(defs, ",\n")))
			for _, ix := range s.Indexes(r) {
				out = append(out, fmt.Sprintf("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", ix.Name, t, strings.Join(ix.Columns, ", ")))
			}
			continue
		}
		if r.Since > v {
			continue
		}
		for _, f := range cols {
			if f.Since != v {
				continue
			}
			if !f.Nullable {
				panic(fmt.Sprintf("schema: %s.%s added in version %d must be Nullable", r.Name, f.Name, v))
			}
			ine := " IF NOT EXISTS"
			if d == SQLite {
				ine = "" // SQLite has no ADD COLUMN IF NOT EXISTS; the migration table guards it
			}
			out = append(out, fmt.Sprintf("ALTER TABLE %s ADD COLUMN%s %s", t, ine, f.columnDef(d)))
		}
	}
	return out
}

// MigrationSQL is the text of the migration file for version v.
func MigrationSQL(d Dialect, s Set, v int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Code generated by go generate ./schema from schema/records.go; DO NOT EDIT.\n")
	fmt.Fprintf(&b, "-- Schema version %d, %s tables, %s.\n", v, s, d)
	for _, st := range DDL(d, s, v) {
		b.WriteString("\n")
		b.WriteString(st)
		b.WriteString(";\n")
	}
	return b.String()
}
