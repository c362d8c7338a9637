package schema

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// TimeLayout is the wire and SQLite text form of every timestamp: RFC 3339,
// UTC, milliseconds. Fixed width, so text order is time order.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Time is a timestamp whose zero value means "none" (JSON null, SQL NULL), so
// nullable times need no pointer and no allocation.
type Time struct{ time.Time }

// TimeOf truncates t to milliseconds in UTC, the precision that is stored.
func TimeOf(t time.Time) Time {
	if t.IsZero() {
		return Time{}
	}
	return Time{t.UTC().Truncate(time.Millisecond)}
}

// String formats t with [TimeLayout], or "" for the zero Time.
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeLayout)
}

// AppendJSON appends t as a JSON string, or null.
func (t Time) AppendJSON(b []byte) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = appendTime(b, t.Time)
	return append(b, '"')
}

// appendTime formats t as TimeLayout by hand: time.AppendFormat parses its
// layout on every call, and this runs once per timestamp sent.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	d2 := func(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }
	b = d2(b, year/100)
	b = d2(b, year%100)
	b = append(b, '-')
	b = d2(b, int(month))
	b = append(b, '-')
	b = d2(b, day)
	b = append(b, 'T')
	b = d2(b, hour)
	b = append(b, ':')
	b = d2(b, min)
	b = append(b, ':')
	b = d2(b, sec)
	b = append(b, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return b
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) { return t.AppendJSON(nil), nil }

// UnmarshalJSON accepts null or an RFC 3339 string.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time: %w", err)
	}
	p, err := ParseTime(s)
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// ParseTime parses an RFC 3339 timestamp (any offset, any sub-second
// precision) into a UTC [Time] truncated to milliseconds.
func ParseTime(s string) (Time, error) {
	p, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return Time{}, fmt.Errorf("time %q is not RFC 3339", s)
	}
	return TimeOf(p), nil
}

// OptBool is a boolean that may be unknown (JSON null, SQL NULL).
type OptBool uint8

// The values of an OptBool. The zero value is Unknown.
const (
	Unknown OptBool = iota
	False
	True
)

// BoolOf converts b into an OptBool that is known.
func BoolOf(b bool) OptBool {
	if b {
		return True
	}
	return False
}

// Get returns the value and whether it is known.
func (o OptBool) Get() (value, known bool) { return o == True, o != Unknown }

// MarshalJSON implements json.Marshaler.
func (o OptBool) MarshalJSON() ([]byte, error) {
	switch o {
	case True:
		return []byte("true"), nil
	case False:
		return []byte("false"), nil
	}
	return []byte("null"), nil
}

// UnmarshalJSON accepts null, true or false.
func (o *OptBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "null":
		*o = Unknown
	case "true":
		*o = True
	case "false":
		*o = False
	default:
		return fmt.Errorf("bool: %s is not true, false or null", b)
	}
	return nil
}

// Props is the compact JSON object of an event's props. Build it with the
// generated typed constructors (SlashCommandProps and friends), which emit
// exactly the fields the declaration allows for that event name.
type Props []byte

// MarshalJSON implements json.Marshaler.
func (p Props) MarshalJSON() ([]byte, error) {
	if len(p) == 0 {
		return []byte("{}"), nil
	}
	return p, nil
}

// UnmarshalJSON keeps a compacted copy of the object.
func (p *Props) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("props: want a JSON object")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("props: %w", err)
	}
	*p = buf.Bytes()
	return nil
}

// appendJSONString appends s as a JSON string. Names and enums are ASCII
// tokens, but this must be correct for anything.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func nullTime(t Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Time
}

func nullBool(o OptBool) any {
	if o == Unknown {
		return nil
	}
	return o == True
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Hash is a SHA-256 or HMAC-SHA-256 value. Its zero value means "none" (JSON
// null, SQL NULL): a real digest of all zero bits does not occur. A fixed
// array, so recording a fingerprint allocates nothing; the hex form is made
// only when a record is encoded.
type Hash [32]byte

// IsZero reports whether h is "none".
func (h Hash) IsZero() bool { return h == Hash{} }

// String is the 64-character lowercase hex form, or "" for none.
func (h Hash) String() string {
	if h.IsZero() {
		return ""
	}
	return hex.EncodeToString(h[:])
}

// AppendJSON appends h as a JSON string, or null.
func (h Hash) AppendJSON(b []byte) []byte {
	if h.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = hex.AppendEncode(b, h[:])
	return append(b, '"')
}

// MarshalJSON implements json.Marshaler.
func (h Hash) MarshalJSON() ([]byte, error) { return h.AppendJSON(nil), nil }

// UnmarshalJSON accepts null or 64 lowercase hex characters.
func (h *Hash) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = Hash{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("hash: %w", err)
	}
	p, err := ParseHash(s)
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash parses 64 lowercase hex characters.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) == 64 && !strings.ContainsAny(s, "ABCDEF") {
		if _, err := hex.Decode(h[:], []byte(s)); err == nil {
			return h, nil
		}
	}
	return Hash{}, fmt.Errorf("hash: want 64 lowercase hex characters")
}

// OptUUID is a UUID that may be unknown (JSON null, SQL NULL): the nil
// UUID is null.
type OptUUID struct{ uuid.UUID }

// MarshalJSON writes null for the nil UUID.
func (o OptUUID) MarshalJSON() ([]byte, error) {
	if o.UUID == uuid.Nil {
		return []byte("null"), nil
	}
	return json.Marshal(o.UUID)
}

// UnmarshalJSON reads null as the nil UUID.
func (o *OptUUID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = OptUUID{}
		return nil
	}
	return json.Unmarshal(b, &o.UUID)
}

// appendList appends l as a JSON array of strings, null when nil.
func appendList(b []byte, l []string) []byte {
	if l == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendString(b, s)
	}
	return append(b, ']')
}

func uuidOf(u uuid.UUID) OptUUID  { return OptUUID{u} }
func stringOf(s string) OptString { return OptString(s) }

// set and setAs are the cases of SetValue: v, or conv(v), into *dst when v
// is of the type, and whether it is.
func set[T any](dst *T, v any) bool {
	x, ok := v.(T)
	*dst = x
	return ok
}

func setAs[V, T any](dst *T, v any, conv func(V) T) bool {
	x, ok := v.(V)
	if ok {
		*dst = conv(x)
	}
	return ok
}

func nullUUID(u OptUUID) any {
	if u.UUID == uuid.Nil {
		return nil
	}
	return u.UUID
}

func nullHash(h Hash) any {
	if h.IsZero() {
		return nil
	}
	return h.String()
}

// OptString is a short string that may be absent: "" is JSON null and SQL
// NULL. Enum values are never empty, so nothing is lost.
type OptString string

// MarshalJSON implements json.Marshaler.
func (o OptString) MarshalJSON() ([]byte, error) {
	if o == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(o))
}

// UnmarshalJSON accepts null or a string.
func (o *OptString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("string: %w", err)
	}
	*o = OptString(s)
	return nil
}

// AppendString appends s as a JSON string. Names and enum values are plain
// ASCII and go straight in; anything else takes encoding/json's path.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return appendJSONString(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// AppendUUID appends u as a JSON string in its canonical form.
func AppendUUID(b []byte, u [16]byte) []byte {
	const hexd = "0123456789abcdef"
	b = append(b, '"')
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexd[x>>4], hexd[x&0xf])
	}
	return append(b, '"')
}

// OptInt is an integer that may be unknown (JSON null, SQL NULL): a field a
// version added, which records of older clients do not carry.
type OptInt struct {
	V     int64
	Known bool
}

// IntOf converts v into an OptInt that is known.
func IntOf(v int64) OptInt { return OptInt{V: v, Known: true} }

// AppendJSON appends the number, or null.
func (o OptInt) AppendJSON(b []byte) []byte {
	if !o.Known {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, o.V, 10)
}

// MarshalJSON implements json.Marshaler.
func (o OptInt) MarshalJSON() ([]byte, error) { return o.AppendJSON(nil), nil }

// UnmarshalJSON accepts null or an integer.
func (o *OptInt) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*o = OptInt{}
		return nil
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("int: %s is not an integer or null", b)
	}
	*o = IntOf(v)
	return nil
}

func nullInt(o OptInt) any {
	if !o.Known {
		return nil
	}
	return o.V
}

// nullList is SQL NULL for a list a record does not carry (nil), the list
// otherwise: an empty catalog and no catalog are not the same answer.
func nullList(l []string) any {
	if l == nil {
		return nil
	}
	return l
}

// field is the field of fs named name, or nil (the typed handles' lookup).
func field(fs []*Field, name string) *Field {
	for _, f := range fs {
		if f.name == name {
			return f
		}
	}
	return nil
}

// add appends a zero T to *s and returns it; the first makes room for n.
func add[T any](s *[]T, n int) *T {
	if *s == nil {
		*s = make([]T, 0, n)
	}
	*s = append(*s, *new(T))
	return &(*s)[len(*s)-1]
}

// split cuts the first n elements off s: nil when there are none to take.
func split[T any](s []T, n int) (head, rest []T, left int) {
	k := min(n, len(s))
	if k == 0 {
		return nil, s, n
	}
	return s[:k], s[k:], n - k
}

func reset[T any](s []T) []T {
	clear(s)
	return s[:0]
}

// appendArray appends key and the JSON array of rs.
func appendArray[T any, P interface {
	*T
	AppendJSON([]byte) []byte
}](out []byte, key string, rs []T) []byte {
	out = append(out, key...)
	out = append(out, '[')
	for i := range rs {
		if i > 0 {
			out = append(out, ',')
		}
		out = P(&rs[i]).AppendJSON(out)
	}
	return append(out, ']')
}
