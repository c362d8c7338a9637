// Package schema is the one declaration of what Fred telemetry records.
//
// Every other view of the records is derived from the tables in this package:
//
//   - the DDL of both table sets (telemetry_* central, dsc_* self-hosted) on
//     PostgreSQL and SQLite (see [DDL] and the generated migrations under
//     store/migrations);
//   - the typed record structs in zz_records.go (written by
//     `go generate ./schema`), the batches that hold them with their
//     per-record loops, and typed handles of every field
//     (SessionFields().Model), so a renamed field fails to compile;
//   - the client's remote allowlist (fields whose [Scope] is [Central]);
//   - the ingest server's validator (bounds, enums and patterns of each field);
//   - docs/schema.md.
//
// So a field added, renamed or tightened here changes all of them at once, and
// the tests in this package and in store fail when a generated artefact or a
// live database disagrees with the declaration.
//
// # Scopes
//
// A field is one of: [Central] (sent by the client, stored in both table sets),
// [SelfHosted] (text columns that only ever reach the user's own dsc_* tables)
// or [Server] (set by the ingest server, never accepted from a payload, stored
// only in the central telemetry_* tables).
//
// # Versions
//
// Each record and field names the schema version that introduced it
// ([Field.Since]). Migration N of a table set creates exactly what was
// introduced in version N, so migrations only ever grow.
package schema

import (
	"fmt"
	"iter"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Version is the current schema version: the newest migration the stores
// apply and the insights read.
const Version = 6

// WireVersion is the newest batch schema_version: the client sends it and
// the server accepts 1 to it. It follows Version only when the records
// change: versions 4 to 6 changed what the database keeps (turn_hours),
// not a record, so their clients and a version 3 server still talk, and no
// batch waits in a spool for an upgrade.
const WireVersion = 3

// Kind is the type of a field's value, independent of the database.
type Kind int

// The kinds of field. Each maps to one JSON shape, one PostgreSQL type and one
// SQLite storage class (see [Kind.SQLType]).
const (
	KindUUID   Kind = iota + 1 // canonical lowercase 8-4-4-4-12 string
	KindTime                   // RFC 3339 UTC with milliseconds
	KindString                 // short token: an enum value or a name matching Pattern
	KindText                   // free text; only in SelfHosted fields
	KindInt                    // integer within [Min, Max]
	KindBool                   // true or false
	KindHash                   // 64 lowercase hex characters (SHA-256 or HMAC-SHA-256)
	KindList                   // JSON array of short tokens matching Pattern, at most MaxItems
	KindProps                  // JSON object whose fields depend on the event name
)

var kindNames = map[Kind]string{
	KindUUID: "uuid", KindTime: "time", KindString: "string", KindText: "text",
	KindInt: "int", KindBool: "bool", KindHash: "hash", KindList: "list", KindProps: "props",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Scope says where a field may travel and be stored.
type Scope int

const (
	// Central fields are sent by the client to the ingest API and stored in
	// both table sets. They are the remote allowlist.
	Central Scope = iota + 1
	// SelfHosted fields carry text and only ever reach the user's own dsc_*
	// tables, and only without DSC_TELEMETRY_NO_TEXT=1.
	SelfHosted
	// Server fields are set by the ingest server (never read from a payload)
	// and exist only in the central telemetry_* tables.
	Server
)

func (s Scope) String() string {
	switch s {
	case Central:
		return "central"
	case SelfHosted:
		return "self-hosted"
	case Server:
		return "server"
	}
	return fmt.Sprintf("Scope(%d)", int(s))
}

// Field declares one field of a record (one column of its tables). Only
// this package makes or changes one: the methods of the same names read it.
type Field struct {
	name     string   // JSON key and column name
	kind     Kind     // value type
	scope    Scope    // where it may travel
	key      bool     // the record's id (primary key)
	nullable bool     // may be JSON null / SQL NULL
	enum     []string // allowed values of a KindString field (nil: use Pattern)
	pattern  *Pattern // allowed shape of a KindString field or of each KindList item
	min, max int64    // bounds of a KindInt; Max is also the length bound of strings and text
	maxItems int      // bound of a KindList
	since    int      // schema version that introduced the field
	// changed is the version whose migration last made the field's checks
	// anew (an enum value added, a bound moved); 0 when they are still
	// those of Since. Forgetting it leaves databases with the old check:
	// store's TestMigratedSchemaIsTheDeclaration catches that.
	changed int
	doc     string          // one line for docs/schema.md
	enumSet map[string]bool // enum as a set (clean.go)
}

func (f *Field) Name() string      { return f.name }
func (f *Field) Kind() Kind        { return f.kind }
func (f *Field) Scope() Scope      { return f.scope }
func (f *Field) Key() bool         { return f.key }
func (f *Field) Nullable() bool    { return f.nullable }
func (f *Field) Enum() []string    { return slices.Clone(f.enum) } // a copy
func (f *Field) Pattern() *Pattern { return f.pattern }
func (f *Field) Min() int64        { return f.min }
func (f *Field) Max() int64        { return f.max }
func (f *Field) MaxItems() int     { return f.maxItems }
func (f *Field) Since() int        { return f.since }
func (f *Field) Doc() string       { return f.doc }

// Pattern is a named, anchored regular expression. Names keep error messages
// and docs readable ("does not match tool_name").
type Pattern struct {
	name, doc string
	re        *regexp.Regexp
	// fallback is the value a client records instead of one that does not
	// match, so a record stays valid without carrying what did not fit.
	fallback string
	// first and rest, when set, say the pattern is exactly
	// ^[first][rest]{0,maxLen-1}$ with first within rest: the DDL then
	// checks it with a length and two character classes, which PostgreSQL
	// evaluates several times faster than the bounded repetition.
	first, rest string
	maxLen      int

	// firstSet and restSet are first and rest as byte tables: Match checks
	// a class pattern without the regexp engine, whose bounded repetition
	// makes it slow (a tool name: 30 ns against 1 µs). It matters on the
	// server: the regexp costs BenchmarkValidateBatch/500_tool_calls 1.09×
	// the CPU (the same run, paired medians of 24; 7_records: 1.0×).
	firstSet, restSet *[256]bool
}

func (p *Pattern) Name() string { return p.name }
func (p *Pattern) Doc() string  { return p.doc }
func (p *Pattern) Expr() string { return p.re.String() } // the regular expression

// classPattern is a pattern of one character from first, then up to max-1
// from rest.
func classPattern(name, first, rest string, max int, fallback, doc string) *Pattern {
	p := newPattern(name, fmt.Sprintf("^[%s][%s]{0,%d}$", first, rest, max-1), fallback, doc)
	p.first, p.rest, p.maxLen = first, rest, max
	p.firstSet, p.restSet = byteClass(first), byteClass(rest)
	return p
}

// Match reports whether v matches the pattern. It is the regexp's; a
// class pattern is checked with its tables (the classes are ASCII, so a
// byte outside them fails either way).
func (p *Pattern) Match(v string) bool {
	if p.firstSet == nil {
		return p.re.MatchString(v)
	}
	if len(v) == 0 || len(v) > p.maxLen || !p.firstSet[v[0]] {
		return false
	}
	for i := 1; i < len(v); i++ {
		if !p.restSet[v[i]] {
			return false
		}
	}
	return true
}

// byteClass turns the inside of a regexp character class made of ASCII
// letters, digits, punctuation and ranges ("A-Za-z0-9._-") into a table; a
// '-' first or last is itself.
func byteClass(class string) *[256]bool {
	var t [256]bool
	for i := 0; i < len(class); i++ {
		c := class[i]
		if c == '\\' || c >= 0x80 {
			panic("schema: class " + class + ": escapes and non-ASCII are not supported")
		}
		if i+2 < len(class) && class[i+1] == '-' {
			for x := int(c); x <= int(class[i+2]); x++ {
				t[x] = true
			}
			i += 2
			continue
		}
		t[c] = true
	}
	return &t
}

func newPattern(name, expr, fallback, doc string) *Pattern {
	if !strings.HasPrefix(expr, "^") || !strings.HasSuffix(expr, "$") {
		panic("schema: pattern " + name + " must be anchored")
	}
	p := &Pattern{name: name, re: regexp.MustCompile(expr), doc: doc, fallback: fallback}
	if fallback != "" && !p.re.MatchString(fallback) { // Match is not ready yet for class patterns
		panic("schema: fallback of pattern " + name + " does not match it")
	}
	return p
}

// Record declares one record type and the two tables that hold it. Only
// this package makes or changes one: the methods of the same names read it.
type Record struct {
	name      string   // singular, e.g. "tool_call"
	batch     string   // key of the record array in a wire batch, e.g. "tool_calls"
	table     string   // table name without its set prefix, e.g. "tool_calls"
	timeField string   // the field the (time) indexes use
	fields    []*Field // in column order
	since     int
	doc       string

	// props declares, for a record with a KindProps field, the fields allowed
	// in props for each event name. Keys are the values of the "name" field.
	props map[string][]*Field

	// unprefixed: the table name carries no set prefix (server tables).
	unprefixed bool

	// indexes are the table's indexes beyond the (session_id, time) and
	// (time) every record table has; their names follow the table's.
	indexes []Index
}

func (r *Record) Name() string      { return r.name }
func (r *Record) Batch() string     { return r.batch }
func (r *Record) Table() string     { return r.table }
func (r *Record) TimeField() string { return r.timeField }
func (r *Record) Since() int        { return r.since }
func (r *Record) Doc() string       { return r.doc }
func (r *Record) Unprefixed() bool  { return r.unprefixed }

// Fields yields the record's fields in column order, with their index.
func (r *Record) Fields() iter.Seq2[int, *Field] { return slices.All(r.fields) }

// Props yields the props declared for the event name, with their index
// (none for an unknown name or a record without props).
func (r *Record) Props(name string) iter.Seq2[int, *Field] { return slices.All(r.props[name]) }

// Prop returns the prop key declared for the event name, or nil.
func (r *Record) Prop(name, key string) *Field { return field(r.props[name], key) }

// PropNames lists, sorted, the names with declared props.
func (r *Record) PropNames() []string { return slices.Sorted(maps.Keys(r.props)) }

// Field returns the named field, or nil.
func (r *Record) Field(name string) *Field { return field(r.fields, name) }

// Key returns the record's id field.
func (r *Record) Key() *Field {
	for _, f := range r.fields {
		if f.key {
			return f
		}
	}
	panic("schema: record " + r.name + " has no key")
}

// Set is one of the two families of tables.
type Set int

const (
	// CentralSet is the telemetry_* tables of the central service: Central and
	// Server fields, never text.
	CentralSet Set = iota + 1
	// SelfHostedSet is the dsc_* tables in a user's own database: Central and
	// SelfHosted fields.
	SelfHostedSet
)

// Prefix is the table-name prefix of the set.
func (s Set) Prefix() string {
	if s == CentralSet {
		return "telemetry_"
	}
	return "dsc_"
}

func (s Set) String() string {
	if s == CentralSet {
		return "central"
	}
	return "self-hosted"
}

// Has reports whether fields of scope sc are columns of tables in the set.
func (s Set) Has(sc Scope) bool {
	switch sc {
	case Central:
		return true
	case SelfHosted:
		return s == SelfHostedSet
	case Server:
		return s == CentralSet
	}
	return false
}

// TableName is the full table name of r in the set.
func (s Set) TableName(r *Record) string {
	if r.unprefixed {
		return r.table
	}
	return s.Prefix() + r.table
}

// Tables lists every table of the set: the record tables, and the server
// tables in the central set.
func (s Set) Tables() []*Record {
	if s == CentralSet {
		return append(append([]*Record(nil), records[:]...), serverTables[:]...)
	}
	return append([]*Record(nil), records[:]...)
}

// Columns returns the fields of r stored in the set, in column order.
func (s Set) Columns(r *Record) []*Field {
	out := make([]*Field, 0, len(r.fields))
	for _, f := range r.fields {
		if s.Has(f.scope) {
			out = append(out, f)
		}
	}
	return out
}

// Sets lists both table sets.
func Sets() [2]Set { return [...]Set{CentralSet, SelfHostedSet} }

// RecordByBatch returns the record whose wire batch key is key, or nil.
func RecordByBatch(key string) *Record {
	for _, r := range records {
		if r.batch == key {
			return r
		}
	}
	return nil
}
