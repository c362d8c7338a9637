package telemetry

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"hash"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/fredcode/fredtel/internal/jsonesc"
	"github.com/fredcode/fredtel/schema"
)

// Canonical JSON, as fingerprinted: no insignificant whitespace; object
// members sorted by the bytes of their canonical key; strings with escapes
// decoded and re-encoded minimally (only ", \ and control characters
// escaped, \n \r \t \b \f in their short form); numbers, true, false and null
// as written. So the same arguments give the same fingerprint whatever the
// key order, spacing or escaping the model happened to produce.
//
// Input that is not valid JSON is fingerprinted as its raw bytes.

var errNotJSON = errors.New("not JSON")

// span is one member "key":value in the output; key is its canonical key
// without quotes: out[start+1:keyEnd].
type span struct{ start, keyEnd, end int }

// canon holds the scratch space of canonicalisation, reused between calls.
type canon struct {
	out   []byte
	tmp   []byte
	spans []span
	sum   []byte
}

// canonicalJSON appends the canonical form of src to c.out.
func (c *canon) canonicalJSON(src []byte) error {
	i, err := c.value(src, skipWS(src, 0), 0)
	if err != nil {
		return err
	}
	if skipWS(src, i) != len(src) {
		return errNotJSON
	}
	return nil
}

const maxDepth = 200

func skipWS(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func (c *canon) value(s []byte, i, depth int) (int, error) {
	if i >= len(s) || depth > maxDepth {
		return 0, errNotJSON
	}
	switch s[i] {
	case '{':
		return c.object(s, i+1, depth+1)
	case '[':
		c.out = append(c.out, '[')
		i = skipWS(s, i+1)
		if i < len(s) && s[i] == ']' {
			c.out = append(c.out, ']')
			return i + 1, nil
		}
		for {
			var err error
			if i, err = c.value(s, i, depth+1); err != nil {
				return 0, err
			}
			i = skipWS(s, i)
			if i >= len(s) {
				return 0, errNotJSON
			}
			if s[i] == ']' {
				c.out = append(c.out, ']')
				return i + 1, nil
			}
			if s[i] != ',' {
				return 0, errNotJSON
			}
			c.out = append(c.out, ',')
			i = skipWS(s, i+1)
		}
	case '"':
		return c.str(s, i)
	case 't':
		return c.literal(s, i, "true")
	case 'f':
		return c.literal(s, i, "false")
	case 'n':
		return c.literal(s, i, "null")
	default:
		return c.number(s, i)
	}
}

func (c *canon) literal(s []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(s[i:], []byte(lit)) {
		return 0, errNotJSON
	}
	c.out = append(c.out, lit...)
	return i + len(lit), nil
}

func (c *canon) number(s []byte, i int) (int, error) {
	j := i
	if j < len(s) && s[j] == '-' {
		j++
	}
	digits := func() int {
		k := j
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j - k
	}
	if digits() == 0 {
		return 0, errNotJSON
	}
	if j < len(s) && s[j] == '.' {
		j++
		if digits() == 0 {
			return 0, errNotJSON
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		j++
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if digits() == 0 {
			return 0, errNotJSON
		}
	}
	c.out = append(c.out, s[i:j]...)
	return j, nil
}

// str decodes the JSON string at s[i] and appends its canonical encoding.
func (c *canon) str(s []byte, i int) (int, error) {
	i++ // opening quote
	c.out = append(c.out, '"')
	for i < len(s) {
		b := s[i]
		switch {
		case b == '"':
			c.out = append(c.out, '"')
			return i + 1, nil
		case b == '\\':
			if i+1 >= len(s) {
				return 0, errNotJSON
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				c.appendRune(unescape(s[i+1]))
				i += 2
			case 'u':
				r, n, ok := decodeU(s[i:])
				if !ok {
					return 0, errNotJSON
				}
				c.appendRune(r)
				i += n
			default:
				return 0, errNotJSON
			}
		case b < 0x20:
			return 0, errNotJSON
		case b < utf8.RuneSelf:
			// Copy the run of plain ASCII at once.
			j := i + 1
			for j < len(s) && plainASCII[s[j]] {
				j++
			}
			c.out = append(c.out, s[i:j]...)
			i = j
		default:
			r, n := utf8.DecodeRune(s[i:])
			c.appendRune(r) // invalid UTF-8 becomes U+FFFD, as encoding/json does
			i += n
		}
	}
	return 0, errNotJSON
}

func unescape(b byte) rune {
	switch b {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return rune(b) // " \ /
}

// plainASCII marks the bytes a canonical string copies as they are.
var plainASCII = func() (t [256]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// decodeU decodes \uXXXX, or a surrogate pair \uXXXX\uXXXX.
func decodeU(s []byte) (rune, int, bool) {
	r, ok := jsonesc.Hex4(s)
	if !ok {
		return 0, 0, false
	}
	if utf16.IsSurrogate(r) {
		if r2, ok := jsonesc.Hex4(s[6:]); ok && len(s) >= 12 && s[6] == '\\' {
			if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
				return d, 12, true
			}
		}
		return utf8.RuneError, 6, true
	}
	return r, 6, true
}

func (c *canon) appendRune(r rune) {
	switch r {
	case '"':
		c.out = append(c.out, '\\', '"')
	case '\\':
		c.out = append(c.out, '\\', '\\')
	case '\n':
		c.out = append(c.out, '\\', 'n')
	case '\r':
		c.out = append(c.out, '\\', 'r')
	case '\t':
		c.out = append(c.out, '\\', 't')
	case '\b':
		c.out = append(c.out, '\\', 'b')
	case '\f':
		c.out = append(c.out, '\\', 'f')
	default:
		if r < 0x20 {
			const hexd = "0123456789abcdef"
			c.out = append(c.out, '\\', 'u', '0', '0', hexd[r>>4], hexd[r&0xf])
			return
		}
		c.out = utf8.AppendRune(c.out, r)
	}
}

// object canonicalises the members of an object whose '{' is at s[i-1]:
// each member is written in place, then the members are put in key order.
func (c *canon) object(s []byte, i, depth int) (int, error) {
	c.out = append(c.out, '{')
	base := len(c.spans)
	defer func() { c.spans = c.spans[:base] }()
	i = skipWS(s, i)
	if i < len(s) && s[i] == '}' {
		c.out = append(c.out, '}')
		return i + 1, nil
	}
	for {
		if i >= len(s) || s[i] != '"' {
			return 0, errNotJSON
		}
		start := len(c.out)
		var err error
		if i, err = c.str(s, i); err != nil {
			return 0, err
		}
		keyEnd := len(c.out) - 1
		i = skipWS(s, i)
		if i >= len(s) || s[i] != ':' {
			return 0, errNotJSON
		}
		c.out = append(c.out, ':')
		if i, err = c.value(s, skipWS(s, i+1), depth); err != nil {
			return 0, err
		}
		c.spans = append(c.spans, span{start, keyEnd, len(c.out)})
		i = skipWS(s, i)
		if i >= len(s) {
			return 0, errNotJSON
		}
		if s[i] == '}' {
			break
		}
		if s[i] != ',' {
			return 0, errNotJSON
		}
		c.out = append(c.out, ',')
		i = skipWS(s, i+1)
	}
	members := c.spans[base:]
	less := func(a, b span) int {
		return bytes.Compare(c.out[a.start+1:a.keyEnd], c.out[b.start+1:b.keyEnd])
	}
	if !slices.IsSortedFunc(members, less) {
		// Members sit in c.out back to back with commas between them;
		// rewrite them in key order.
		slices.SortStableFunc(members, less)
		c.tmp = c.tmp[:0]
		for k, m := range members {
			if k > 0 {
				c.tmp = append(c.tmp, ',')
			}
			c.tmp = append(c.tmp, c.out[m.start:m.end]...)
		}
		from := members[0].start
		for _, m := range members {
			from = min(from, m.start)
		}
		c.out = append(c.out[:from], c.tmp...)
	}
	c.out = append(c.out, '}')
	return i + 1, nil
}

// fingerprinter is HMAC-SHA-256 under one secret key. It is safe for
// concurrent use; one mutex guards the HMAC state and the scratch space, so
// a fingerprint allocates nothing.
type fingerprinter struct {
	mu    sync.Mutex
	h     hash.Hash
	c     canon
	chunk [512]byte
}

func newFingerprinter(key []byte) *fingerprinter {
	return &fingerprinter{h: hmac.New(sha256.New, key), c: canon{out: make([]byte, 0, 1024), sum: make([]byte, 0, sha256.Size)}}
}

// call returns the fingerprints of one tool call: of its arguments (the
// HMAC of their canonical JSON, or of the raw bytes when they are not JSON)
// and of its result text, under one lock.
func (f *fingerprinter) call(raw []byte, result string) (args, res schema.Hash) {
	f.mu.Lock()
	defer f.mu.Unlock()
	args = f.argsLocked(raw)
	res = f.resultLocked(result)
	return args, res
}

// resultEdge bounds what a result's fingerprint reads: a result longer
// than twice this is hashed as its length, its first and its last
// resultEdge bytes. The agent's goroutine pays for the hash, and a tool
// result can be megabytes (a file read, a test log); a fixed cost keeps a
// big result from costing the agent milliseconds. What it gives up: two
// results of one length that differ only in their middle count as the
// same (a loop is then called stuck where it polled); outputs that
// change (a build, a test run) change at their end or in their length.
const resultEdge = 16 << 10

// resultLocked is the fingerprint of a tool result (see resultEdge).
func (f *fingerprinter) resultLocked(s string) schema.Hash {
	if len(s) <= 2*resultEdge {
		return f.textLocked(s)
	}
	f.h.Reset()
	f.c.out = strconv.AppendInt(append(f.c.out[:0], "len:"...), int64(len(s)), 10)
	f.h.Write(f.c.out)
	for _, part := range [2]string{s[:resultEdge], s[len(s)-resultEdge:]} {
		for len(part) > 0 {
			n := copy(f.chunk[:], part)
			f.h.Write(f.chunk[:n])
			part = part[n:]
		}
	}
	f.c.sum = f.h.Sum(f.c.sum[:0])
	return schema.Hash(f.c.sum)
}

// args returns the fingerprint of tool arguments.
func (f *fingerprinter) args(raw []byte) schema.Hash {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.argsLocked(raw)
}

func (f *fingerprinter) argsLocked(raw []byte) schema.Hash {
	c := &f.c
	c.out = c.out[:0]
	msg := raw
	if err := c.canonicalJSON(raw); err == nil {
		msg = c.out
	}
	f.h.Reset()
	f.h.Write(msg)
	c.sum = f.h.Sum(c.sum[:0])
	if cap(c.out) > 64<<10 { // do not pin the scratch of one huge call
		c.out = make([]byte, 0, 1024)
	}
	return schema.Hash(c.sum)
}

// text returns the HMAC of a text.
func (f *fingerprinter) text(s string) schema.Hash {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.textLocked(s)
}

// textLocked hashes s through a fixed scratch array, a piece at a time:
// []byte(s) would allocate a copy of the whole text on every call (the
// hash is an interface, so the conversion escapes), and a tool result can
// be megabytes.
func (f *fingerprinter) textLocked(s string) schema.Hash {
	f.h.Reset()
	for len(s) > 0 {
		n := copy(f.chunk[:], s)
		f.h.Write(f.chunk[:n])
		s = s[n:]
	}
	f.c.sum = f.h.Sum(f.c.sum[:0])
	return schema.Hash(f.c.sum)
}
