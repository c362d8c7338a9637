package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func canonical(t testing.TB, in string) (string, error) {
	t.Helper()
	c := &canon{}
	err := c.canonicalJSON([]byte(in))
	return string(c.out), err
}

func TestCanonicalJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{` { "path" : "/etc/x" ,"mode":"r" } `, `{"mode":"r","path":"/etc/x"}`},
		{`{"z":{"y":[3,{"b":true,"a":null}],"x":"\u0041\/"}}`, `{"z":{"x":"A/","y":[3,{"a":null,"b":true}]}}`},
		{`{"s":"tab\there \ud83d\ude00 \u00e9"}`, "{\"s\":\"tab\\there \U0001F600 \u00e9\"}"},
		{`[1.50, -0, 2e10, "a\"b"]`, `[1.50,-0,2e10,"a\"b"]`},
		{`{}`, `{}`},
		{`[]`, `[]`},
		{`{"a":{},"A":[]}`, `{"A":[],"a":{}}`},
		{`"\u0001"`, `"\u0001"`},
	} {
		got, err := canonical(t, c.in)
		if err != nil || got != c.want {
			t.Errorf("canonical(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `tru`, `"abc`, `{"a":1} x`, `01x`, "\"a\x01\"", `{a:1}`} {
		if got, err := canonical(t, bad); err == nil {
			t.Errorf("canonical(%q) = %q, want an error", bad, got)
		}
	}
}

func TestFingerprintIsStableAndKeyed(t *testing.T) {
	f := newFingerprinter([]byte("session-key-1"))
	a := f.args([]byte(`{"path":"main.go","limit":10}`))
	b := f.args([]byte("{ \"limit\": 10,\n \"path\": \"main.go\" }"))
	if a != b {
		t.Errorf("same args, different fingerprints: %s %s", a, b)
	}
	if a.IsZero() {
		t.Errorf("fingerprint is zero")
	}
	if c := f.args([]byte(`{"path":"main.go","limit":11}`)); c == a {
		t.Error("different args, same fingerprint")
	}
	if g := newFingerprinter([]byte("session-key-2")).args([]byte(`{"path":"main.go","limit":10}`)); g == a {
		t.Error("another session's key gives the same fingerprint: it must not")
	}
	if raw := f.args([]byte(`not json`)); raw.IsZero() || raw == a {
		t.Errorf("non-JSON args: %v", raw)
	}
}

// FuzzCanonicalJSON: whatever the spelling of a JSON value (key order,
// spacing, escapes), its canonical form is the same, is valid JSON, decodes
// to the same value, and is a fixed point.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x\u00e9"]}`, `[{"k":"v"},{"k":"\n"}]`, `"\ud83d\ude00"`, `{"a":{"b":{"c":1e5}}}`, `0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var v any
		dec := json.NewDecoder(bytes.NewReader([]byte(in)))
		dec.UseNumber()
		if dec.Decode(&v) != nil || dec.More() || !json.Valid([]byte(in)) {
			return
		}
		// Decoders keep the last of duplicate keys; the canonical form keeps
		// them all (different bytes, different fingerprint), so re-spelling
		// through a decoder is only comparable without duplicates.
		dups := hasDuplicateKeys([]byte(in))
		got, err := canonical(t, in)
		if err != nil {
			t.Fatalf("valid JSON %q rejected: %v", in, err)
		}
		if !json.Valid([]byte(got)) {
			t.Fatalf("canonical form %q of %q is not JSON", got, in)
		}
		again, _ := canonical(t, got)
		if again != got {
			t.Fatalf("not a fixed point: %q → %q → %q", in, got, again)
		}
		// Re-spell the value (sorted keys, other escapes) and compare.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(true)
		if enc.Encode(v) != nil {
			return
		}
		other, err := canonical(t, string(bytes.TrimSpace(buf.Bytes())))
		if err != nil || (other != got && !dups) {
			t.Fatalf("re-spelled %q canonicalises to %q, original to %q", buf.String(), other, got)
		}
	})
}

func BenchmarkFingerprintArgs200B(b *testing.B) {
	f := newFingerprinter([]byte("k"))
	args := []byte(`{"path":"internal/server/handlers/batch.go","old_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {","new_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) error {","replace_all":false}`)
	b.ReportAllocs()
	for b.Loop() {
		f.args(args)
	}
}

func hasDuplicateKeys(in []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(in))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, key: true})
				continue
			case '[':
				if top != nil && top.obj {
					top.key = true
				}
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.obj && top.key {
				if top.keys[v] {
					return true
				}
				top.keys[v] = true
				top.key = false
				continue
			}
		}
		if top != nil && top.obj {
			top.key = true
		}
	}
}

// TestResultFingerprintIsBounded: a big result is fingerprinted from its
// length, head and tail, so a change at its end or in its length shows,
// and what it costs the agent does not grow with it.
func TestResultFingerprintIsBounded(t *testing.T) {
	f := newFingerprinter(bytes.Repeat([]byte{7}, 32))
	big := strings.Repeat("x", 1<<20)
	_, a := f.call([]byte(`{}`), big)
	_, b := f.call([]byte(`{}`), big[:len(big)-1]+"y")
	_, c := f.call([]byte(`{}`), big+"x")
	_, d := f.call([]byte(`{}`), "y"+big[1:])
	_, same := f.call([]byte(`{}`), big[:len(big)/2]+"z"+big[len(big)/2+1:]) // the middle only
	if a == b || a == c || a == d {
		t.Fatal("a change at the end, in the length or at the start of a big result kept its fingerprint")
	}
	if a != same {
		t.Fatal("a change in the middle of a big result changed its fingerprint: the whole result was hashed")
	}
	// Small results are hashed whole, as before.
	_, s1 := f.call([]byte(`{}`), "FAIL: TestTotal (0.00s)")
	if s1 != f.text("FAIL: TestTotal (0.00s)") {
		t.Fatal("a small result is not the HMAC of its text")
	}
}

// BenchmarkRecordToolCallBigResult: a 1 MiB result (a file read, a test
// log) costs the agent's goroutine what a 32 KiB one does, hints on:
// 20.6 µs against 564 µs when the whole result was hashed (same run).
func BenchmarkRecordToolCallBigResult(b *testing.B) {
	benchToolCalls(b, ToolCall{Name: "edit", Args: args200, Result: strings.Repeat("package x\n", 100_000), Permission: "auto_allowed"}, func(Hint) {})
}
