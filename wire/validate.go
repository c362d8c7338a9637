// Package wire is the ingest API's wire protocol (SPEC §5): a strict JSON
// parser for untrusted batches and Validate, the validateBatch of SPEC §4,
// derived from the schema declaration. It depends on nothing but the
// declaration, so it can be fuzzed fast and reused by any server.
package wire

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// Rejection says why a batch was refused. It never holds a value from the
// payload: only the rule (Reason), the field path and a fixed message.
type Rejection struct {
	Status int    // 400, 413, 422 or 426
	Reason string // the rule, also the metrics label
	Field  string // e.g. "turns[3].user_input"
	Msg    string
}

func (r *Rejection) Error() string {
	if r.Field == "" {
		return r.Msg
	}
	return r.Field + ": " + r.Msg
}

func Reject(status int, reason, field, msg string, a ...any) *Rejection {
	return &Rejection{Status: status, Reason: reason, Field: field, Msg: fmt.Sprintf(msg, a...)}
}

// Limits are the bounds validateBatch applies.
type Limits struct {
	MaxRecords int
	// Versions are the schema versions accepted (default
	// SupportedVersions()); a batch of any other gets 422.
	Versions []int
	// MinClient is the oldest client.fred_version accepted ("" for none).
	MinClient string
	// Now is the server clock.
	Now time.Time
	// MaxClockSkew bounds |sent_at - Now|: a client clock hours off is
	// normal, a month off is not a clock.
	MaxClockSkew time.Duration
}

// Record times must fall in [sent_at - pastWindow, sent_at + futureWindow],
// measured against the batch's own sent_at so a wrong client clock loses
// nothing.
const (
	pastWindow   = 30 * 24 * time.Hour
	futureWindow = time.Hour
)

// Batch is a validated batch: the records, typed, and what the server
// learned from the envelope.
type Batch struct {
	SchemaVersion int
	BatchID       uuid.UUID
	SentAt        time.Time
	FredVersion   string
	// ReceivedAt is Limits.Now; ClockOffset is ReceivedAt - SentAt.
	ReceivedAt  time.Time
	ClockOffset time.Duration
	schema.Batch

	// Names are the model, tool and command names of a batch of version 2
	// or later, which CheckNames checks against their sessions' catalogs.
	Names []NameRef
}

// SupportedVersions are the wire schema versions accepted by default:
// every version this build knows, so a server deployed ahead of its
// clients keeps the data of the oldest (each later version only adds
// nullable fields; --schema-versions narrows the list).
func SupportedVersions() []int {
	out := make([]int, 0, schema.WireVersion)
	for v := 1; v <= schema.WireVersion; v++ {
		out = append(out, v)
	}
	return out
}

// The names of a batch's envelope, its members besides the record arrays
// (named by schema.Record.Batch): the client's encoder and the validator
// both spell them from here.
const (
	KeySchemaVersion  = "schema_version"
	KeyBatchID        = "batch_id"
	KeySentAt         = "sent_at"
	KeyClient         = "client" // an object of these two:
	KeyFredVersion    = "fred_version"
	KeyRuntimeVersion = "runtime_version"
)

// topLevel are the members of a batch: the envelope, then the record arrays.
var topLevel = func() []string {
	out := []string{KeySchemaVersion, KeyBatchID, KeySentAt, KeyClient}
	for _, r := range schema.Records() {
		out = append(out, r.Batch())
	}
	return out
}()

// Validate (the validateBatch of SPEC §4) checks a whole batch against the schema declaration and
// decodes it. The first problem rejects everything: unknown or forbidden
// fields at any depth, wrong types, values outside enums, patterns or
// bounds, times outside the window, duplicate keys. The strings of the
// batch point into body, which must not change while the batch is in use.
func Validate(body []byte, lim Limits) (*Batch, *Rejection) {
	maxRecords := lim.MaxRecords
	if maxRecords <= 0 {
		maxRecords = DefaultMaxRecords
	}
	// Pass 1: syntax and every bound, over the whole body, allocating
	// nothing but the records' spans (scan.go).
	sc, rj := scan(body, maxRecords)
	if rj != nil {
		return nil, rj
	}
	// Pass 2: one value at a time into a small tree, reused.
	p := &parser{s: body}
	top := func(name string) (*jval, *Rejection) {
		sp := sc.top[topIndex(name)]
		if sp.end == 0 {
			return nil, nil
		}
		p.reset()
		return p.parseAt(sp, []pstep{{name: name}})
	}
	// The version decides the allowlist, so it is checked first.
	sv, rj := top(KeySchemaVersion)
	if rj != nil {
		return nil, rj
	}
	ver, rj := intOf(sv, at(KeySchemaVersion))
	if rj != nil {
		return nil, rj
	}
	versions := lim.Versions
	if versions == nil {
		versions = SupportedVersions()
	}
	if !slices.Contains(versions, int(ver)) {
		return nil, Reject(http.StatusUnprocessableEntity, "schema_version_unsupported", KeySchemaVersion, "schema_version_unsupported")
	}
	b := &Batch{SchemaVersion: int(ver)}
	client, rj := top(KeyClient)
	if rj != nil {
		return nil, rj
	}
	if client == nil || client.kind != jObj {
		return nil, Reject(http.StatusBadRequest, "type", KeyClient, "want an object with fred_version and runtime_version")
	}
	for _, m := range client.members {
		if m.key != KeyFredVersion && m.key != KeyRuntimeVersion {
			return nil, Reject(http.StatusBadRequest, "unknown_field", KeyClient+"."+declaredName(m.key), "field not allowed")
		}
	}
	fv, rj := stringOf(client.field(KeyFredVersion), at(KeyClient+"."+KeyFredVersion), schema.SessionFields().FredVersion)
	if rj != nil {
		return nil, rj
	}
	if _, rj := stringOf(client.field(KeyRuntimeVersion), at(KeyClient+"."+KeyRuntimeVersion), schema.SessionFields().RuntimeVersion); rj != nil {
		return nil, rj
	}
	if lim.MinClient != "" && semverLess(fv, lim.MinClient) {
		return nil, Reject(http.StatusUpgradeRequired, "client_too_old", KeyClient+"."+KeyFredVersion, "client older than %s", lim.MinClient)
	}
	b.FredVersion = fv
	bid, rj := top(KeyBatchID)
	if rj != nil {
		return nil, rj
	}
	if b.BatchID, rj = uuidOf(bid, at(KeyBatchID)); rj != nil {
		return nil, rj
	}
	sa, rj := top(KeySentAt)
	if rj != nil {
		return nil, rj
	}
	sent, rj := timeOf(sa, at(KeySentAt))
	if rj != nil {
		return nil, rj
	}
	if d := lim.Now.Sub(sent); lim.MaxClockSkew > 0 && (d > lim.MaxClockSkew || d < -lim.MaxClockSkew) {
		return nil, Reject(http.StatusBadRequest, "clock", KeySentAt, "more than %s from the server clock", lim.MaxClockSkew)
	}
	b.SentAt = sent
	b.ReceivedAt = lim.Now
	b.ClockOffset = lim.Now.Sub(sent)

	v := &validator{version: b.SchemaVersion, sent: sent}
	base := make([]pstep, 2)
	for ri, r := range schema.Records() {
		for i, sp := range sc.recs[ri] {
			p.reset()
			base[0], base[1] = pstep{name: r.Batch()}, pstep{idx: i}
			e, rj := p.parseAt(sp, base)
			if rj != nil {
				return nil, rj
			}
			x := b.Add(r, len(sc.recs[ri]))
			if rj := v.record(r, e, loc{top: r.Batch(), idx: i, item: -1}, x); rj != nil {
				return nil, rj
			}
			for _, n := range v.names {
				n.Session = x.SessionRef()
				b.Names = append(b.Names, n)
			}
			v.names = v.names[:0]
		}
	}
	return b, nil
}

// DefaultMaxRecords bounds a batch when Limits.MaxRecords is not set.
const DefaultMaxRecords = 1000

// loc is where a value sits in the batch. The path string is built only when
// something is rejected: accepting a batch builds none.
type loc struct {
	top  string // "sent_at", or a record array such as "turns"
	idx  int    // record index, -1 when top is not an array
	sub  string // "props" for a prop, else ""
	key  string // the field's name ("" for the record itself)
	item int    // list item index, -1 for none
	raw  bool   // key came from the payload: shown only if plain
}

func (l loc) String() string {
	var b strings.Builder
	b.WriteString(l.top)
	if l.idx >= 0 {
		b.WriteString("[" + strconv.Itoa(l.idx) + "]")
	}
	if l.sub != "" {
		b.WriteString("." + l.sub)
	}
	if l.key != "" {
		k := l.key
		if l.raw {
			k = declaredName(k)
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	if l.item >= 0 {
		b.WriteString("[" + strconv.Itoa(l.item) + "]")
	}
	return clampPath(b.String())
}

func at(field string) loc { return loc{key: field, idx: -1, item: -1} }

type validator struct {
	version int
	sent    time.Time
	names   []NameRef // of the record being checked (version 2 on)
}

// allowed reports whether f is on the wire allowlist of the batch's version.
func (v *validator) allowed(f *schema.Field) bool {
	return f.Scope() == schema.Central && f.Since() <= v.version
}

// record checks one record object and sets its fields on rec.
func (v *validator) record(r *schema.Record, e *jval, l loc, rec schema.Row) *Rejection {
	if e.kind != jObj {
		return Reject(http.StatusBadRequest, "type", l.String(), "want an object, got %s", e.kind)
	}
	var seen [64]bool // by index in r.Fields
	var props *jval
	name := ""
	for _, m := range e.members {
		fi, f := -1, (*schema.Field)(nil)
		for i, g := range r.Fields() {
			if g.Name() == m.key {
				fi, f = i, g
				break
			}
		}
		fl := l
		fl.key = m.key
		if fi < 0 { // mutant:unknown-fields-ignored
			fl.raw = true
			return Reject(http.StatusBadRequest, "unknown_field", fl.String(), "field not allowed")
		}
		if !v.allowed(f) { // mutant:forbidden-fields-accepted
			return Reject(http.StatusBadRequest, "forbidden_field", fl.String(), "field not allowed")
		}
		if f.Kind() == schema.KindProps {
			props = m.val
			seen[fi] = true
			continue
		}
		val, rj := v.value(f, m.val, fl)
		if rj != nil {
			return rj
		}
		if f.Name() == "name" {
			name, _ = val.(string)
		}
		if !rec.SetValue(f.Name(), val) {
			panic(fmt.Sprintf("wire: %s.%s: a checked value of type %T does not fit", r.Name(), f.Name(), val))
		}
		seen[fi] = true
	}
	for i, f := range r.Fields() {
		if !v.allowed(f) || f.Nullable() || seen[i] {
			continue
		}
		fl := l
		fl.key = f.Name()
		return Reject(http.StatusBadRequest, "missing_field", fl.String(), "required")
	}
	if props != nil { // the props field is required where there is one
		pl := l
		pl.sub = "props"
		p, rj := v.props(r, name, props, pl)
		if rj != nil {
			return rj
		}
		rec.SetValue("props", p)
	}
	return nil
}

// props checks the props of an event against the fields declared for its
// name and returns them as compact JSON in declaration order.
func (v *validator) props(r *schema.Record, name string, p *jval, l loc) (schema.Props, *Rejection) {
	if p.kind != jObj {
		return nil, Reject(http.StatusBadRequest, "type", l.String(), "want an object, got %s", p.kind)
	}
	for _, m := range p.members {
		if f := r.Prop(name, m.key); f == nil || !v.allowed(f) {
			fl := l
			fl.key, fl.raw = m.key, true
			return nil, Reject(http.StatusBadRequest, "unknown_field", fl.String(), "field not allowed for %s", name)
		}
	}
	// Re-encoded from the checked values, in declaration order: names and
	// enums are plain ASCII, so quoting them is JSON.
	out := make([]byte, 0, 64)
	out = append(out, '{')
	first := true
	for _, f := range r.Props(name) {
		if !v.allowed(f) { // a prop a later version added: not in this batch's
			continue
		}
		fl := l
		fl.key = f.Name()
		fv := p.field(f.Name())
		if fv == nil {
			return nil, Reject(http.StatusBadRequest, "missing_field", fl.String(), "required")
		}
		val, rj := v.value(f, fv, fl)
		if rj != nil {
			return nil, rj
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = strconv.AppendQuote(out, f.Name())
		out = append(out, ':')
		switch x := val.(type) {
		case int64:
			out = strconv.AppendInt(out, x, 10)
		case string:
			out = strconv.AppendQuote(out, x)
		}
	}
	return append(out, '}'), nil
}

// value checks one field's value.
func (v *validator) value(f *schema.Field, j *jval, l loc) (any, *Rejection) {
	if j.kind == jNull {
		if f.Nullable() {
			return nil, nil
		}
		return nil, Reject(http.StatusBadRequest, "type", l.String(), "must not be null")
	}
	switch f.Kind() {
	case schema.KindUUID:
		return uuidOf(j, l)
	case schema.KindTime:
		t, rj := timeOf(j, l)
		if rj != nil {
			return nil, rj
		}
		if t.Before(v.sent.Add(-pastWindow)) || t.After(v.sent.Add(futureWindow)) {
			return nil, Reject(http.StatusBadRequest, "time_window", l.String(), "outside [sent_at - 30 days, sent_at + 1 hour]")
		}
		return t, nil
	case schema.KindString:
		s, rj := stringOf(j, l, f)
		if rj == nil && v.version >= 2 {
			if k, ok := kindOf(f); ok {
				v.names = append(v.names, NameRef{Kind: k, Name: s, at: l})
			}
		}
		return s, rj
	case schema.KindInt:
		n, rj := intOf(j, l)
		if rj != nil {
			return nil, rj
		}
		if n < f.Min() || n > f.Max() {
			return nil, Reject(http.StatusBadRequest, "bounds", l.String(), "outside [%d, %d]", f.Min(), f.Max())
		}
		return n, nil
	case schema.KindBool:
		if j.kind != jBool {
			return nil, Reject(http.StatusBadRequest, "type", l.String(), "want a boolean, got %s", j.kind)
		}
		return j.b, nil
	case schema.KindHash:
		if j.kind != jStr {
			return nil, Reject(http.StatusBadRequest, "type", l.String(), "want a string, got %s", j.kind)
		}
		h, err := schema.ParseHash(j.s)
		if err != nil {
			return nil, Reject(http.StatusBadRequest, "hash", l.String(), "want 64 lowercase hex characters")
		}
		return h, nil
	case schema.KindList:
		if j.kind != jArr {
			return nil, Reject(http.StatusBadRequest, "type", l.String(), "want an array, got %s", j.kind)
		}
		if len(j.elems) > f.MaxItems() {
			return nil, Reject(http.StatusBadRequest, "bounds", l.String(), "more than %d items", f.MaxItems())
		}
		out := make([]string, len(j.elems))
		for i, e := range j.elems {
			il := l
			il.item = i
			if e.kind != jStr {
				return nil, Reject(http.StatusBadRequest, "type", il.String(), "want a string, got %s", e.kind)
			}
			if int64(len(e.s)) > f.Max() || !f.Pattern().Match(e.s) {
				return nil, Reject(http.StatusBadRequest, "pattern", il.String(), "does not match %s", f.Pattern().Name())
			}
			out[i] = e.s
		}
		return out, nil
	}
	return nil, Reject(http.StatusBadRequest, "type", l.String(), "unexpected field")
}

func stringOf(j *jval, l loc, f *schema.Field) (string, *Rejection) {
	if j == nil {
		return "", Reject(http.StatusBadRequest, "missing_field", l.String(), "required")
	}
	if j.kind != jStr {
		return "", Reject(http.StatusBadRequest, "type", l.String(), "want a string, got %s", j.kind)
	}
	if !f.Allows(j.s) {
		if f.Enum() != nil {
			return "", Reject(http.StatusBadRequest, "enum", l.String(), "not one of %s", strings.Join(f.Enum(), ", "))
		}
		return "", Reject(http.StatusBadRequest, "pattern", l.String(), "does not match %s", f.Pattern().Name())
	}
	return j.s, nil
}

func intOf(j *jval, l loc) (int64, *Rejection) {
	if j == nil {
		return 0, Reject(http.StatusBadRequest, "missing_field", l.String(), "required")
	}
	if j.kind != jNum {
		return 0, Reject(http.StatusBadRequest, "type", l.String(), "want an integer, got %s", j.kind)
	}
	n, err := strconv.ParseInt(j.s, 10, 64)
	if err != nil {
		if strings.ContainsAny(j.s, ".eE") {
			return 0, Reject(http.StatusBadRequest, "type", l.String(), "want an integer")
		}
		return 0, Reject(http.StatusBadRequest, "bounds", l.String(), "out of range")
	}
	return n, nil
}

// parseUUID accepts exactly the canonical lowercase form.
func parseUUID(s string) (uuid.UUID, bool) {
	if len(s) != 36 || strings.ContainsAny(s, "ABCDEF") {
		return uuid.UUID{}, false
	}
	u, err := uuid.Parse(s)
	return u, err == nil
}

func uuidOf(j *jval, l loc) (uuid.UUID, *Rejection) {
	if j == nil {
		return uuid.UUID{}, Reject(http.StatusBadRequest, "missing_field", l.String(), "required")
	}
	if j.kind != jStr {
		return uuid.UUID{}, Reject(http.StatusBadRequest, "uuid", l.String(), "want a lowercase UUID")
	}
	u, ok := parseUUID(j.s)
	if !ok || u == (uuid.UUID{}) {
		return uuid.UUID{}, Reject(http.StatusBadRequest, "uuid", l.String(), "want a lowercase UUID")
	}
	return u, nil
}

var timeRe = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`)

func timeOf(j *jval, l loc) (time.Time, *Rejection) {
	if j == nil {
		return time.Time{}, Reject(http.StatusBadRequest, "missing_field", l.String(), "required")
	}
	if j.kind != jStr || !timeRe.MatchString(j.s) {
		return time.Time{}, Reject(http.StatusBadRequest, "time", l.String(), "want an RFC 3339 time")
	}
	t, err := time.Parse(time.RFC3339Nano, j.s)
	if err != nil {
		return time.Time{}, Reject(http.StatusBadRequest, "time", l.String(), "want an RFC 3339 time")
	}
	return t.UTC().Truncate(time.Millisecond), nil
}

// semverLess compares the x.y.z cores of two versions (pre-release tags
// ignored: a hotfix lever needs no finer grain).
func semverLess(a, b string) bool {
	pa, pb := semverCore(a), semverCore(b)
	for i := range 3 {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return false
}

func semverCore(v string) [3]int {
	var out [3]int
	core, _, _ := strings.Cut(v, "-")
	core, _, _ = strings.Cut(core, "+")
	for i, p := range strings.SplitN(core, ".", 3) {
		out[i], _ = strconv.Atoi(p)
	}
	return out
}
