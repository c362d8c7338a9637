package wire

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/fredcode/fredtel/internal/jsonesc"
)

// A strict JSON parser for untrusted batches. Unlike encoding/json it
// rejects duplicate keys and invalid UTF-8, bounds nesting, and keeps
// numbers as written, so the validator sees exactly what was sent.
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

// maxNesting bounds the depth of a batch: records are at depth 3, props at 4.
const maxNesting = 8

// syntaxError is a JSON problem at a byte offset and a path.
type syntaxError struct {
	off  int
	path string
	msg  string
}

func (e *syntaxError) Error() string {
	if e.path != "" {
		return fmt.Sprintf("%s: %s (byte %d)", e.path, e.msg, e.off)
	}
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.off, e.msg)
}

// step is one segment of the path to the value being parsed.
type step struct {
	key string
	idx int // -1 for an object member
}

type parser struct {
	s    []byte
	i    int
	path []step
	slab []jval // values are carved from chunks: one allocation per 256 values
}

// node returns a new value from the slab.
func (p *parser) node(v jval) *jval {
	if len(p.slab) == cap(p.slab) {
		p.slab = make([]jval, 0, 256)
	}
	p.slab = append(p.slab, v)
	return &p.slab[len(p.slab)-1]
}

func (p *parser) pathString() string {
	var b strings.Builder
	for _, st := range p.path {
		if st.idx >= 0 {
			b.WriteString("[" + strconv.Itoa(st.idx) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(st.key)
	}
	return b.String()
}

func parseJSON(b []byte) (*jval, error) {
	p := &parser{s: b}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(p.s) {
		return nil, p.err("data after the top-level value")
	}
	return v, nil
}

// bytesString is b as a string without a copy; b must not change after.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

func (p *parser) err(msg string) error { return &syntaxError{off: p.i, path: p.pathString(), msg: msg} }

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

func (p *parser) value(depth int) (*jval, error) {
	if depth > maxNesting {
		return nil, p.err("nested too deeply")
	}
	p.ws()
	if p.i >= len(p.s) {
		return nil, p.err("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return p.node(jval{kind: jStr, s: s}), nil
	case c == 't':
		return p.lit("true", jval{kind: jBool, b: true})
	case c == 'f':
		return p.lit("false", jval{kind: jBool})
	case c == 'n':
		return p.lit("null", jval{kind: jNull})
	case c == '-' || (c >= '0' && c <= '9'):
		return p.num()
	}
	return nil, p.err("unexpected character")
}

func (p *parser) lit(word string, v jval) (*jval, error) {
	if len(p.s)-p.i < len(word) || string(p.s[p.i:p.i+len(word)]) != word {
		return nil, p.err("invalid literal")
	}
	p.i += len(word)
	return p.node(v), nil
}

func (p *parser) num() (*jval, error) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	n := digits()
	if n == 0 || (n > 1 && p.s[intStart] == '0') {
		return nil, p.err("invalid number")
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, p.err("invalid number")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, p.err("invalid number")
		}
	}
	return p.node(jval{kind: jNum, s: bytesString(p.s[start:p.i])}), nil
}

func (p *parser) str() (string, error) {
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
			if p.i+1 >= len(p.s) {
				return "", p.err("unexpected end in a string")
			}
			e := p.s[p.i+1]
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, n, ok := p.u()
				if !ok {
					return "", p.err("invalid \\u escape")
				}
				buf = utf8.AppendRune(buf, r)
				p.i += n
				continue
			default:
				return "", p.err("invalid escape")
			}
			p.i += 2
		default:
			buf = append(buf, c)
			p.i++
		}
	}
	return "", p.err("unterminated string")
}

// u decodes \uXXXX (or a surrogate pair) at p.i; lone surrogates are
// invalid.
func (p *parser) u() (rune, int, bool) {
	r, ok := jsonesc.Hex4(p.s[p.i:])
	if !ok {
		return 0, 0, false
	}
	if !utf16.IsSurrogate(r) {
		return r, 6, true
	}
	r2, ok := jsonesc.Hex4(p.s[p.i+6:])
	if !ok {
		return 0, 0, false
	}
	d := utf16.DecodeRune(r, r2)
	if d == utf8.RuneError {
		return 0, 0, false
	}
	return d, 12, true
}

func (p *parser) array(depth int) (*jval, error) {
	p.i++
	v := p.node(jval{kind: jArr})
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return v, nil
	}
	for {
		p.path = append(p.path, step{idx: len(v.elems)})
		e, err := p.value(depth + 1)
		if err != nil {
			return nil, err
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

func (p *parser) object(depth int) (*jval, error) {
	p.i++
	v := p.node(jval{kind: jObj})
	var seen map[string]bool
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
		at := p.i
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		// A linear scan for the usual few keys, a set past that, so an
		// object of a million keys costs a million steps, not 10^12.
		dup := false
		if seen != nil {
			dup = seen[k]
			seen[k] = true
		} else {
			for _, m := range v.members {
				dup = dup || m.key == k
			}
			if len(v.members) == 16 {
				seen = make(map[string]bool, 64)
				for _, m := range v.members {
					seen[m.key] = true
				}
				seen[k] = true
			}
		}
		if dup {
			p.path = append(p.path, step{key: k, idx: -1})
			err := &syntaxError{off: at, path: p.pathString(), msg: "duplicate key"}
			return nil, err
		}
		p.ws()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.err("expected :")
		}
		p.i++
		p.path = append(p.path, step{key: k, idx: -1})
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
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
