package wire

import (
	"net/http"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/fredcode/fredtel/internal/jsonesc"
)

// The second pass of Validate: a strict JSON parser for one value of a
// body the scan (scan.go) has checked, syntax and bounds, so it only ever
// sees a value of bounded size. Unlike encoding/json it rejects duplicate
// keys and keeps numbers as written, so the validator sees exactly what
// was sent. Its nodes are carved from chunks that are reused from one
// record to the next (reset): the tree of a whole batch is never held.
//
// Strings without escapes are not copied: they point into the body, which
// the caller must not change while the parsed values or the records made
// from them are in use (the server reads each body into a buffer of its
// own and drops it after the write).

type jkind uint8

const (
	jNull jkind = iota
	jBool
	jNum
	jStr
	jArr
	jObj
)

func (k jkind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

type member struct {
	key string
	val *jval
}

type jval struct {
	kind    jkind
	b       bool
	s       string // decoded string, or the number as written
	elems   []*jval
	members []member
}

// field returns the member named key, or nil.
func (v *jval) field(key string) *jval {
	for i := range v.members {
		if v.members[i].key == key {
			return v.members[i].val
		}
	}
	return nil
}

type parser struct {
	s      []byte
	i      int
	path   []pstep
	chunks [][]jval // nodes, 256 a chunk, reused after reset
	ci, n  int      // chunk in use and nodes used in it
}

// reset makes every node free again: the values parsed before must no
// longer be in use.
func (p *parser) reset() { p.ci, p.n = 0, 0 }

// node returns a fresh value, reusing a node (and the backing arrays of
// its elements and members) of a tree dropped by reset. The reuse matters:
// a node allocated each time (&jval{}) costs BenchmarkValidateBatch/
// 500_tool_calls 1.38× the CPU and 2.8× the allocations (7.2 ms against
// 5.5, the same run, medians of 16; 7_records: 1.05×, noise).
func (p *parser) node(kind jkind) *jval {
	if len(p.chunks) == 0 {
		p.chunks = append(p.chunks, make([]jval, 256))
	}
	if p.n == len(p.chunks[p.ci]) {
		p.ci++
		p.n = 0
		if p.ci == len(p.chunks) {
			p.chunks = append(p.chunks, make([]jval, 256))
		}
	}
	v := &p.chunks[p.ci][p.n]
	p.n++
	elems, members := v.elems[:0], v.members[:0]
	*v = jval{kind: kind, elems: elems, members: members}
	return v
}

// parseAt parses the value at sp, whose path is base. After the scan, the
// only rejection it meets is a duplicate key.
func (p *parser) parseAt(sp span, base []pstep) (*jval, *Rejection) {
	p.i = sp.start
	p.path = append(p.path[:0], base...)
	v, rj := p.value()
	if rj == nil && p.i != sp.end {
		rj = p.err("the value ends elsewhere than the scan found")
	}
	return v, rj
}

func (p *parser) pathString() string { return buildPath(p.path) }

// bytesString is b as a string without a copy; b must not change after.
// It matters: copying (string(b)) costs BenchmarkValidateBatch 1.15× the
// CPU and 2.3× the allocations, in both cases (the same run, medians of
// 16; 500_tool_calls 6.2 ms against 5.5).
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// err rejects a syntax error at p.i; msg says which, for the reader.
func (p *parser) err(msg string) *Rejection { return syntaxAt(p.i) }

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value() (*jval, *Rejection) {
	p.ws()
	if p.i >= len(p.s) {
		return nil, p.err("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		s, rj := p.str()
		if rj != nil {
			return nil, rj
		}
		v := p.node(jStr)
		v.s = s
		return v, nil
	case c == 't':
		return p.lit("true", jBool, true)
	case c == 'f':
		return p.lit("false", jBool, false)
	case c == 'n':
		return p.lit("null", jNull, false)
	case c == '-' || (c >= '0' && c <= '9'):
		return p.num()
	}
	return nil, p.err("unexpected character")
}

// lit and num only find where a value ends: the scan has checked its
// grammar (and the parser's end against the scan's, in parseAt).
func (p *parser) lit(word string, k jkind, b bool) (*jval, *Rejection) {
	p.i += len(word)
	v := p.node(k)
	v.b = b
	return v, nil
}

func (p *parser) num() (*jval, *Rejection) {
	start := p.i
	for p.i < len(p.s) && strings.IndexByte("+-.0123456789Ee", p.s[p.i]) >= 0 {
		p.i++
	}
	v := p.node(jNum)
	v.s = bytesString(p.s[start:p.i])
	return v, nil
}

func (p *parser) str() (string, *Rejection) {
	p.i++ // "
	start := p.i
	// Fast path: no escapes.
	for p.i < len(p.s) {
		c := p.s[p.i]
		if c == '"' {
			s := p.s[start:p.i]
			if !utf8.Valid(s) {
				return "", p.err("invalid UTF-8 in a string")
			}
			p.i++
			return bytesString(s), nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		p.i++
	}
	buf := append([]byte(nil), p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", p.err("invalid UTF-8 in a string")
			}
			return bytesString(buf), nil
		case c < 0x20:
			return "", p.err("control character in a string")
		case c == '\\':
			r, w, ok := escape(p.s[p.i:])
			if !ok {
				return "", p.err("invalid escape")
			}
			buf = utf8.AppendRune(buf, r)
			p.i += w
		default:
			buf = append(buf, c)
			p.i++
		}
	}
	return "", p.err("unterminated string")
}

// escape decodes the escape at the start of s (a backslash and what
// follows): the rune and the bytes it took. Both the scanner and the
// parser read escapes with it.
func escape(s []byte) (rune, int, bool) {
	if len(s) >= 2 {
		if i := strings.IndexByte(`"\/bfnrt`, s[1]); i >= 0 {
			return rune("\"\\/\b\f\n\r\t"[i]), 2, true
		}
	}
	return unicodeEscape(s)
}

// unicodeEscape decodes \uXXXX (or a surrogate pair) at the start of s;
// lone surrogates are invalid.
func unicodeEscape(s []byte) (rune, int, bool) {
	r, ok := jsonesc.Hex4(s)
	if !ok {
		return 0, 0, false
	}
	if !utf16.IsSurrogate(r) {
		return r, 6, true
	}
	r2, ok := jsonesc.Hex4(s[6:])
	if !ok {
		return 0, 0, false
	}
	d := utf16.DecodeRune(r, r2)
	if d == utf8.RuneError {
		return 0, 0, false
	}
	return d, 12, true
}

func (p *parser) array() (*jval, *Rejection) {
	p.i++
	v := p.node(jArr)
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.path = append(p.path, pstep{idx: len(v.elems)})
		e, rj := p.value()
		if rj != nil {
			return nil, rj
		}
		p.path = p.path[:len(p.path)-1]
		v.elems = append(v.elems, e)
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.err("unterminated array")
		}
		if p.s[p.i] == ']' {
			p.i++
			return v, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.err("expected , or ]")
		}
		p.i++
	}
}

func (p *parser) object() (*jval, *Rejection) {
	p.i++
	v := p.node(jObj)
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return v, nil
	}
	for {
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, p.err("expected a key")
		}
		k, rj := p.str()
		if rj != nil {
			return nil, rj
		}
		// A linear scan: the scan bounded the members to the widest
		// declared object.
		for _, m := range v.members {
			if m.key == k { // mutant:parser-keeps-duplicate-keys
				p.path = append(p.path, pstep{name: declaredName(k)})
				return nil, Reject(http.StatusBadRequest, "duplicate_key", p.pathString(), "duplicate key")
			}
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.err("expected :")
		}
		p.i++
		p.path = append(p.path, pstep{name: declaredName(k)})
		val, rj := p.value()
		if rj != nil {
			return nil, rj
		}
		p.path = p.path[:len(p.path)-1]
		v.members = append(v.members, member{k, val})
		p.ws()
		if p.i >= len(p.s) {
			return nil, p.err("unterminated object")
		}
		if p.s[p.i] == '}' {
			p.i++
			return v, nil
		}
		if p.s[p.i] != ',' {
			return nil, p.err("expected , or }")
		}
		p.i++
	}
}
