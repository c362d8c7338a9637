package wire

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/fredcode/fredtel/schema"
)

// The first of Validate's two passes: one scan of the whole body that
// checks the JSON syntax and every bound the declaration implies, WHILE
// reading, and stops at the first one met. It allocates nothing but the
// spans of the records (at most MaxRecords), so its work and memory are
// linear in the body whatever the body's shape: an 8 MiB `[0,0,0,…]` is
// refused at its first byte, a million-key object at its 22nd key.
//
// The bounds (bounds below) come from the declaration:
//
//   - nesting: the deepest declared value is a list item or a prop value,
//     at depth 4 (root, record array, record, field, item);
//   - shapes at the top: the root is an object of the top-level keys, the
//     record arrays are arrays of objects, client is an object of strings,
//     the other top-level values are scalars;
//   - records: at most Limits.MaxRecords over all record arrays (413);
//   - any other array: at most the longest declared list (MaxItems);
//   - any object: at most as many members as the widest declared object
//     (members are distinct, and each must be a declared name);
//   - a key: at most as long as the longest declared name, else it is no
//     declared name (unknown_field);
//   - a string: at most as long as the longest declared value (decoded
//     bytes, escapes counted as what they decode to);
//   - a number: at most maxNumber characters (int64 needs 20).
//
// The second pass (Validate) then parses one record at a time into a small
// tree that is reused for the next record, so the tree of a batch is never
// held whole.
//
// Why not encoding/json: it holds a value whole before anything can check
// it (the 8 MiB `[0,0,0,…]` of TestValidateWorkIsBounded: json.Unmarshal
// into an any allocates 330 MiB, Validate less than 1 KiB), takes the last
// of two duplicate keys and reads numbers as float64. Speed is not the
// reason: json.Unmarshal into an any, which checks none of the rules,
// costs about what Validate does (BenchmarkValidateBatch bodies, the same
// run: 1.0× on 500_tool_calls, 0.7× on 7_records).

// maxNesting bounds the depth of any value: the root is at 0, records at
// 2, their fields at 3, list items and props' values at 4.
const maxNesting = 4

// maxNumber bounds the characters of a number: int64 takes 20 with its
// sign; a few more let 1e400 or 2300.5 reach the validator, which names
// the rule they break.
const maxNumber = 24

// bounds are the limits of the scan that the declaration fixes.
type bounds struct {
	maxMembers int // members of one object
	maxItems   int // elements of an array other than a record array
	maxString  int // decoded bytes of a string value
	maxKey     int // decoded bytes of a key
}

// declared maps every name the declaration knows (top-level keys, record
// arrays, fields of any scope, props) to itself: the only key text a path
// in an answer or a log line may hold.
var declared = map[string]string{}

var declBounds = func() bounds {
	var b bounds
	add := func(n string) {
		declared[n] = n
		b.maxKey = max(b.maxKey, len(n))
	}
	for _, k := range topLevel {
		add(k)
	}
	add(KeyFredVersion)
	add(KeyRuntimeVersion)
	b.maxMembers = max(len(topLevel), 2)
	str := func(f *schema.Field) {
		switch f.Kind() {
		case schema.KindString, schema.KindList, schema.KindHash:
			if f.Scope() == schema.Central {
				b.maxString = max(b.maxString, int(f.Max()))
			}
		}
		if f.Kind() == schema.KindList {
			b.maxItems = max(b.maxItems, f.MaxItems())
		}
	}
	for _, r := range schema.Records() {
		add(r.Batch())
		for i, f := range r.Fields() {
			b.maxMembers = max(b.maxMembers, i+1)
			add(f.Name())
			str(f)
		}
		for _, n := range r.PropNames() {
			for i, f := range r.Props(n) {
				b.maxMembers = max(b.maxMembers, i+1)
				add(f.Name())
				str(f)
			}
		}
	}
	// UUIDs (36) and times (35 with nanoseconds and an offset) are strings too.
	b.maxString = max(b.maxString, len("2006-01-02T15:04:05.999999999-07:00"), 36)
	if b.maxKey > len(scanner{}.kbuf) {
		panic("wire: a declared name is longer than the scanner's key buffer")
	}
	return b
}()

// declaredName is how a key appears in a path: itself when the declaration
// knows it, else a placeholder, so a key can never carry text into an
// answer or a log line.
func declaredName(k string) string {
	if n, ok := declared[k]; ok {
		return n
	}
	return unknownKey // mutant:keys-echoed-in-paths
}

const unknownKey = "<unknown key>"

// ctx is what the declaration allows at a position.
type ctx uint8

const (
	ctxRoot    ctx = iota // the batch: an object of the top-level keys
	ctxRecords            // a record array: an array of objects
	ctxRecord             // a record: an object
	ctxClient             // client: an object of scalars
	ctxScalar             // a string, number, boolean or null
	ctxAny                // a field's value: within the bounds
)

// span is where a value lies in the body.
type span struct{ start, end int }

// scanned is what the scan found: where each top-level value and each
// record lies.
type scanned struct {
	top  [8]span // by index in topLevel; end 0 when absent
	recs [][]span
}

type pstep struct {
	name string // a declared name or unknownKey; "" for an index
	idx  int
}

type scanner struct {
	s          []byte
	i          int
	b          bounds
	maxRecords int
	records    int
	path       [maxNesting + 2]pstep
	np         int
	out        *scanned
	kbuf       [64]byte
}

func scan(body []byte, maxRecords int) (*scanned, *Rejection) {
	sc := &scanner{s: body, b: declBounds, maxRecords: maxRecords,
		out: &scanned{recs: make([][]span, len(schema.Records()))}}
	if rj := sc.value(0, ctxRoot); rj != nil {
		return nil, rj
	}
	sc.ws()
	if sc.i != len(sc.s) {
		return nil, sc.syntax("data after the top-level value")
	}
	return sc.out, nil
}

func (sc *scanner) pathString() string {
	return buildPath(sc.path[:sc.np])
}

// buildPath spells out a path from declared names and indexes.
func buildPath(steps []pstep) string {
	b := make([]byte, 0, 48)
	for _, st := range steps {
		if st.name == "" {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(st.idx), 10)
			b = append(b, ']')
			continue
		}
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, st.name...)
	}
	return clampPath(string(b))
}

// maxPath bounds a field path in an answer or a log line.
const maxPath = 200

// clampPath keeps a path printable ASCII and at most maxPath bytes. Paths
// are built from declared names and indexes only, so this never changes
// one; it is the last guard should a future path be built otherwise.
func clampPath(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] > 0x7e {
			return "<path>"
		}
	}
	if len(p) > maxPath {
		return p[:maxPath-3] + "..."
	}
	return p
}

func (sc *scanner) push(st pstep) { sc.path[sc.np] = st; sc.np++ }
func (sc *scanner) pop()          { sc.np-- }

// syntax rejects a syntax error at sc.i; msg says which, for the reader.
func (sc *scanner) syntax(msg string) *Rejection { return syntaxAt(sc.i) }

// syntaxAt is the answer to any JSON syntax error: the byte offset is what
// helps a client's developer, and it holds nothing of the payload.
func syntaxAt(off int) *Rejection {
	return Reject(http.StatusBadRequest, "json", "", "invalid JSON at byte %d", off)
}

func (sc *scanner) bound(format string, a ...any) *Rejection {
	return Reject(http.StatusBadRequest, "bounds", sc.pathString(), format, a...)
}

func (sc *scanner) ws() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// kindAt names the kind of the value starting at i, for type errors.
func kindAt(c byte) jkind {
	switch {
	case c == '{':
		return jObj
	case c == '[':
		return jArr
	case c == '"':
		return jStr
	case c == 't' || c == 'f':
		return jBool
	case c == 'n':
		return jNull
	}
	return jNum
}

func (sc *scanner) value(depth int, c ctx) *Rejection {
	if depth > maxNesting { // mutant:nesting-unbounded
		return Reject(http.StatusBadRequest, "nesting", sc.pathString(), "nested too deeply")
	}
	sc.ws()
	if sc.i >= len(sc.s) {
		return sc.syntax("unexpected end")
	}
	ch := sc.s[sc.i]
	valid := ch == '{' || ch == '[' || ch == '"' || ch == 't' || ch == 'f' || ch == 'n' || ch == '-' || (ch >= '0' && ch <= '9')
	if !valid {
		return sc.syntax("unexpected character")
	}
	k := kindAt(ch)
	switch c {
	case ctxRoot:
		if k != jObj { // mutant:scan-root-shape-unchecked
			return Reject(http.StatusBadRequest, "type", "", "the batch must be a JSON object")
		}
	case ctxRecords:
		if k != jArr {
			return Reject(http.StatusBadRequest, "type", sc.pathString(), "want an array, got %s", k)
		}
	case ctxRecord:
		if k != jObj {
			return Reject(http.StatusBadRequest, "type", sc.pathString(), "want an object, got %s", k)
		}
	case ctxClient:
		if k != jObj {
			return Reject(http.StatusBadRequest, "type", sc.pathString(), "want an object with fred_version and runtime_version")
		}
	case ctxScalar:
		if k == jObj || k == jArr {
			return Reject(http.StatusBadRequest, "type", sc.pathString(), "want a string or a number, got %s", k)
		}
	}
	switch k {
	case jObj:
		return sc.object(depth, c)
	case jArr:
		return sc.array(depth, c)
	case jStr:
		_, rj := sc.str(sc.b.maxString, false)
		return rj
	case jBool, jNull:
		return sc.lit()
	}
	return sc.number()
}

func (sc *scanner) lit() *Rejection {
	for _, w := range []string{"true", "false", "null"} {
		if len(sc.s)-sc.i >= len(w) && string(sc.s[sc.i:sc.i+len(w)]) == w {
			sc.i += len(w)
			return nil
		}
	}
	return sc.syntax("invalid literal")
}

func (sc *scanner) number() *Rejection {
	start := sc.i
	if sc.s[sc.i] == '-' {
		sc.i++
	}
	digits := func() int {
		n := 0
		for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
			sc.i++
			n++
			if sc.i-start > maxNumber {
				return -1
			}
		}
		return n
	}
	intStart := sc.i
	n := digits()
	if n < 0 {
		return sc.bound("out of range")
	}
	if n == 0 || (n > 1 && sc.s[intStart] == '0') {
		return sc.syntax("invalid number")
	}
	if sc.i < len(sc.s) && sc.s[sc.i] == '.' {
		sc.i++
		if n = digits(); n < 0 {
			return sc.bound("out of range")
		} else if n == 0 {
			return sc.syntax("invalid number")
		}
	}
	if sc.i < len(sc.s) && (sc.s[sc.i] == 'e' || sc.s[sc.i] == 'E') {
		sc.i++
		if sc.i < len(sc.s) && (sc.s[sc.i] == '+' || sc.s[sc.i] == '-') {
			sc.i++
		}
		if n = digits(); n < 0 {
			return sc.bound("out of range")
		} else if n == 0 {
			return sc.syntax("invalid number")
		}
	}
	return nil
}

// str checks the string at sc.i: escapes, UTF-8, and at most limit
// decoded bytes. With key set it decodes into sc.kbuf and returns the
// declared name it spells (unknownKey when none); past limit a key is no
// declared name, which the caller reports.
func (sc *scanner) str(limit int, key bool) (string, *Rejection) {
	sc.i++ // "
	n := 0 // decoded bytes
	high := false
	start := sc.i
	for {
		if sc.i >= len(sc.s) {
			return "", sc.syntax("unterminated string")
		}
		c := sc.s[sc.i]
		switch {
		case c == '"':
			if high && !utf8.Valid(sc.s[start:sc.i]) {
				return "", sc.syntax("invalid UTF-8 in a string")
			}
			sc.i++
			if key {
				return declaredName(string(sc.kbuf[:n])), nil
			}
			return "", nil
		case c < 0x20:
			return "", sc.syntax("control character in a string")
		case c == '\\':
			r, w, ok := escape(sc.s[sc.i:])
			if !ok {
				return "", sc.syntax("invalid escape")
			}
			sc.i += w
			if n+utf8.RuneLen(r) > limit { // mutant:scan-strings-unbounded
				return "", sc.tooLong(key, limit)
			}
			if key {
				utf8.EncodeRune(sc.kbuf[n:], r)
			}
			n += utf8.RuneLen(r)
		default:
			if c >= 0x80 {
				high = true
			}
			if n+1 > limit {
				return "", sc.tooLong(key, limit)
			}
			if key {
				sc.kbuf[n] = c
			}
			n++
			sc.i++
		}
	}
}

func (sc *scanner) tooLong(key bool, limit int) *Rejection {
	if key {
		sc.push(pstep{name: unknownKey})
		defer sc.pop()
		return Reject(http.StatusBadRequest, "unknown_field", sc.pathString(), "field not allowed")
	}
	return sc.bound("longer than %d bytes", limit)
}

func (sc *scanner) array(depth int, c ctx) *Rejection {
	sc.i++
	sc.ws()
	if sc.i < len(sc.s) && sc.s[sc.i] == ']' {
		sc.i++
		return nil
	}
	elem := ctxAny
	ri := -1
	if c == ctxRecords {
		elem = ctxRecord
		ri = recordIndex(sc.path[sc.np-1].name)
	}
	for idx := 0; ; idx++ {
		if ri >= 0 {
			if sc.records >= sc.maxRecords { // mutant:scan-records-unbounded
				return Reject(http.StatusRequestEntityTooLarge, "too_many_records", "", "more than %d records; at most %d per batch", sc.maxRecords, sc.maxRecords)
			}
			sc.records++
		} else if idx >= sc.b.maxItems { // mutant:scan-arrays-unbounded
			return sc.bound("more than %d items", sc.b.maxItems)
		}
		sc.push(pstep{idx: idx})
		sc.ws()
		start := sc.i
		if rj := sc.value(depth+1, elem); rj != nil {
			return rj
		}
		if ri >= 0 {
			sc.out.recs[ri] = append(sc.out.recs[ri], span{start, sc.i})
		}
		sc.pop()
		sc.ws()
		if sc.i >= len(sc.s) {
			return sc.syntax("unterminated array")
		}
		if sc.s[sc.i] == ']' {
			sc.i++
			return nil
		}
		if sc.s[sc.i] != ',' {
			return sc.syntax("expected , or ]")
		}
		sc.i++
	}
}

func recordIndex(batch string) int {
	for i, r := range schema.Records() {
		if r.Batch() == batch {
			return i
		}
	}
	return -1
}

func topIndex(k string) int {
	for i, t := range topLevel {
		if t == k {
			return i
		}
	}
	return -1
}

func (sc *scanner) object(depth int, c ctx) *Rejection {
	sc.i++
	sc.ws()
	if sc.i < len(sc.s) && sc.s[sc.i] == '}' {
		sc.i++
		return nil
	}
	var seenTop uint16
	for n := 1; ; n++ {
		sc.ws()
		if sc.i >= len(sc.s) || sc.s[sc.i] != '"' {
			return sc.syntax("expected a key")
		}
		name, rj := sc.str(sc.b.maxKey, true)
		if rj != nil {
			return rj
		}
		if n > sc.b.maxMembers { // mutant:scan-objects-unbounded
			return sc.bound("more than %d members", sc.b.maxMembers)
		}
		sc.ws()
		if sc.i >= len(sc.s) || sc.s[sc.i] != ':' {
			return sc.syntax("expected :")
		}
		sc.i++
		sc.push(pstep{name: name})
		child := ctxAny
		switch c {
		case ctxRoot:
			ti := topIndex(name)
			if ti < 0 {
				return Reject(http.StatusBadRequest, "unknown_field", sc.pathString(), "field not allowed")
			}
			if seenTop&(1<<ti) != 0 {
				return Reject(http.StatusBadRequest, "duplicate_key", sc.pathString(), "duplicate key")
			}
			seenTop |= 1 << ti
			switch {
			case recordIndex(name) >= 0:
				child = ctxRecords
			case name == KeyClient:
				child = ctxClient
			default:
				child = ctxScalar
			}
			sc.ws()
			start := sc.i
			if rj := sc.value(depth+1, child); rj != nil {
				return rj
			}
			sc.out.top[ti] = span{start, sc.i}
		default:
			if c == ctxClient {
				child = ctxScalar
			}
			if rj := sc.value(depth+1, child); rj != nil {
				return rj
			}
		}
		sc.pop()
		sc.ws()
		if sc.i >= len(sc.s) {
			return sc.syntax("unterminated object")
		}
		if sc.s[sc.i] == '}' {
			sc.i++
			return nil
		}
		if sc.s[sc.i] != ',' {
			return sc.syntax("expected , or }")
		}
		sc.i++
	}
}
