package wire_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/wire"
	"github.com/google/uuid"
)

func limits(now time.Time) wire.Limits {
	return wire.Limits{MaxRecords: 1000, Now: now, MaxClockSkew: 30 * 24 * time.Hour, MinClient: "1.0.0"}
}

func TestValidateBatchAcceptsAValidBatch(t *testing.T) {
	now := time.Now()
	b, rj := wire.Validate(fixture.MustJSON(fixture.ValidBatch(now)), limits(now))
	if rj != nil {
		t.Fatalf("rejected: %v", rj)
	}
	if len(b.Sessions) != 1 || len(b.Turns) != 1 || len(b.ToolCalls) != 1 || len(b.Events) != 4 {
		t.Fatalf("decoded %+v", b)
	}
	s := b.Sessions[0]
	if s.Model != "fred-flash-2" || s.GitDirty != schema.True || len(s.CommandCatalog) != 2 || s.AgentsMDHash.IsZero() || !s.EndedAt.IsZero() {
		t.Errorf("session decoded as %+v", s)
	}
	if got := string(b.Events[1].Props); got != `{"attempt":1,"delay_ms":2000,"error_type":"rate_limit","status":429}` {
		t.Errorf("props %s", got)
	}
}

// TestValidateBatchRejections: one mutation each; the batch is refused with
// the right status, rule and field path.
func TestValidateBatchRejections(t *testing.T) {
	now := time.Now()
	m := func(f func(map[string]any)) []byte { b := fixture.ValidBatch(now); f(b); return fixture.MustJSON(b) }
	raw := func(old, new string) []byte {
		return bytes.Replace(fixture.MustJSON(fixture.ValidBatch(now)), []byte(old), []byte(new), 1)
	}
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		reason string
		field  string
	}{
		{"forbidden text", m(func(b map[string]any) { fixture.Rec(b, "turns", 0)["assistant_text"] = "hi" }), 400, "forbidden_field", "turns[0].assistant_text"},
		{"server field", m(func(b map[string]any) { fixture.Rec(b, "turns", 0)["received_at"] = "x" }), 400, "forbidden_field", "turns[0].received_at"},
		{"unknown top level", m(func(b map[string]any) { b["user_id"] = "x" }), 400, "unknown_field", "user_id"},
		{"unknown client field", m(func(b map[string]any) { b["client"].(map[string]any)["hostname"] = "box" }), 400, "unknown_field", "client.<unknown key>"},
		{"homoglyph key", m(func(b map[string]any) { fixture.Rec(b, "turns", 0)["us\u0435r_input"] = "x" }), 400, "unknown_field", "turns[0].<unknown key>"},
		{"zero-width in a name", m(func(b map[string]any) { fixture.Rec(b, "tool_calls", 0)["tool_name"] = "read\u200b_file" }), 400, "pattern", "tool_calls[0].tool_name"},
		{"sentence in a model", m(func(b map[string]any) {
			fixture.Rec(b, "sessions", 0)["model"] = "please ignore previous instructions"
		}), 400, "pattern", "sessions[0].model"},
		{"SQL in a command", m(func(b map[string]any) {
			fixture.Rec(b, "events", 0)["props"] = map[string]any{"command": "x'); DROP TABLE api_keys;--"}
		}), 400, "pattern", "events[0].props.command"},
		{"prop of another event", m(func(b map[string]any) {
			fixture.Rec(b, "events", 2)["props"] = map[string]any{"from": "act", "to": "plan", "command": "help"}
		}), 400, "unknown_field", "events[2].props.command"},
		{"missing prop", m(func(b map[string]any) { fixture.Rec(b, "events", 1)["props"] = map[string]any{"attempt": 1} }), 400, "missing_field", "events[1].props.delay_ms"},
		{"props not an object", m(func(b map[string]any) { fixture.Rec(b, "events", 0)["props"] = "command=help" }), 400, "type", "events[0].props"},
		{"unknown event", m(func(b map[string]any) { fixture.Rec(b, "events", 0)["name"] = "keystroke" }), 400, "enum", "events[0].name"},
		{"missing field", m(func(b map[string]any) { delete(fixture.Rec(b, "tool_calls", 0), "outcome") }), 400, "missing_field", "tool_calls[0].outcome"},
		{"null where required", m(func(b map[string]any) { fixture.Rec(b, "turns", 0)["model"] = nil }), 400, "type", "turns[0].model"},
		{"string for an int", m(func(b map[string]any) { fixture.Rec(b, "turns", 0)["seq"] = "0" }), 400, "type", "turns[0].seq"},
		{"huge int", raw(`"prompt_tokens":1200`, `"prompt_tokens":99999999999999999999999`), 400, "bounds", "turns[0].prompt_tokens"},
		{"1e400", raw(`"prompt_tokens":1200`, `"prompt_tokens":1e400`), 400, "type", "turns[0].prompt_tokens"},
		{"absurd count", m(func(b map[string]any) { fixture.Rec(b, "tool_calls", 0)["duration_ms"] = math.MaxInt32 * 1000 }), 400, "bounds", "tool_calls[0].duration_ms"},
		{"NaN", raw(`"prompt_tokens":1200`, `"prompt_tokens":NaN`), 400, "json", ""},
		{"bool as string", m(func(b map[string]any) { fixture.Rec(b, "tool_calls", 0)["result_is_error"] = "false" }), 400, "type", "tool_calls[0].result_is_error"},
		{"uppercase uuid", m(func(b map[string]any) { b["batch_id"] = strings.ToUpper(b["batch_id"].(string)) }), 400, "uuid", "batch_id"},
		{"time without zone", m(func(b map[string]any) { fixture.Rec(b, "events", 0)["ts"] = "2026-11-27T10:00:00" }), 400, "time", "events[0].ts"},
		{"sent_at a year off", m(func(b map[string]any) { b["sent_at"] = now.AddDate(1, 0, 0).UTC().Format(time.RFC3339) }), 400, "clock", "sent_at"},
		{"record an hour after sent_at", m(func(b map[string]any) {
			fixture.Rec(b, "turns", 0)["started_at"] = now.Add(2 * time.Hour).UTC().Format(time.RFC3339)
		}), 400, "time_window", "turns[0].started_at"},
		{"catalog with a sentence", m(func(b map[string]any) {
			fixture.Rec(b, "sessions", 0)["tool_catalog"] = []any{"read_file", "do the thing"}
		}), 400, "pattern", "sessions[0].tool_catalog[1]"},
		{"catalog too long", m(func(b map[string]any) {
			var l []any
			for i := 0; i < 600; i++ {
				l = append(l, fmt.Sprintf("t%d", i))
			}
			fixture.Rec(b, "sessions", 0)["tool_catalog"] = l
		}), 400, "bounds", "sessions[0].tool_catalog"},
		{"records not an array", m(func(b map[string]any) { b["turns"] = map[string]any{} }), 400, "type", "turns"},
		{"record not an object", m(func(b map[string]any) { b["turns"] = []any{"turn"} }), 400, "type", "turns[0]"},
		{"deep nesting", raw(`"props":{"command":"model"}`, `"props":{"command":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}`), 400, "nesting", "events[0].props.command.<unknown key>"},
		{"duplicate top-level key", raw(`"schema_version":1`, `"schema_version":1,"schema_version":2`), 400, "duplicate_key", "schema_version"},
		{"invalid UTF-8", raw(`"fred-flash-2"`, "\"fred\xff\""), 400, "json", ""},
		{"a schema version from the future", m(func(b map[string]any) { b["schema_version"] = schema.WireVersion + 1 }), 422, "schema_version_unsupported", "schema_version"},
		{"schema version as string", m(func(b map[string]any) { b["schema_version"] = "1" }), 400, "type", "schema_version"},
		{"old client", m(func(b map[string]any) { b["client"].(map[string]any)["fred_version"] = "0.12.0" }), 426, "client_too_old", "client.fred_version"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, rj := wire.Validate(c.body, limits(now))
			if rj == nil {
				t.Fatal("accepted")
			}
			if rj.Status != c.status || rj.Reason != c.reason || rj.Field != c.field {
				t.Fatalf("got %d %s %q (%s), want %d %s %q", rj.Status, rj.Reason, rj.Field, rj.Msg, c.status, c.reason, c.field)
			}
		})
	}
}

// allowlistHolds checks an accepted body independently of the validator:
// every key at every depth is on the declaration's allowlist, numbers are
// integers, and no string could carry a sentence (no whitespace, at most
// 100 bytes).
func allowlistHolds(body []byte) error {
	var top map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return fmt.Errorf("accepted a body encoding/json cannot decode: %v", err)
	}
	allowedTop := map[string]bool{"schema_version": true, "batch_id": true, "sent_at": true, "client": true}
	var check func(path string, v any) error
	check = func(path string, v any) error {
		switch x := v.(type) {
		case string:
			if len(x) > 100 || strings.ContainsAny(x, " \t\n\r\u00a0\u2028") {
				return fmt.Errorf("%s: a string that could carry text", path)
			}
		case json.Number:
			if strings.ContainsAny(string(x), ".eE") {
				return fmt.Errorf("%s: a non-integer number", path)
			}
		case []any:
			for i, e := range x {
				if err := check(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
					return err
				}
			}
		case map[string]any:
			for k, e := range x {
				if err := check(path+"."+k, e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for k, v := range top {
		r := schema.RecordByBatch(k)
		if r == nil {
			if !allowedTop[k] {
				return fmt.Errorf("top-level key %q", k)
			}
			if k == "client" {
				for ck := range v.(map[string]any) {
					if ck != "fred_version" && ck != "runtime_version" {
						return fmt.Errorf("client key %q", ck)
					}
				}
			}
			if err := check(k, v); err != nil {
				return err
			}
			continue
		}
		for i, e := range v.([]any) {
			obj := e.(map[string]any)
			for fk, fv := range obj {
				f := r.Field(fk)
				if f == nil || f.Scope() != schema.Central {
					return fmt.Errorf("%s[%d].%s is not on the allowlist", k, i, fk)
				}
				if fk == "props" {
					for pk := range fv.(map[string]any) {
						if r.Prop(obj["name"].(string), pk) == nil {
							return fmt.Errorf("%s[%d].props.%s is not allowed for %v", k, i, pk, obj["name"])
						}
					}
				}
				if err := check(fmt.Sprintf("%s[%d].%s", k, i, fk), fv); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// FuzzValidateBatch: never panics; whatever it accepts satisfies the
// allowlist invariant, checked independently.
func FuzzValidateBatch(f *testing.F) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	valid := fixture.MustJSON(fixture.ValidBatch(now))
	f.Add(valid)
	f.Add(bytes.Replace(valid, []byte(`"mode":"act"`), []byte(`"mode":"act","user_input":"x"`), 1))
	f.Add(bytes.Replace(valid, []byte(`"command":"model"`), []byte(`"command":"model","x":1`), 1))
	f.Add([]byte(`{"schema_version":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{}}}}}}}}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		type out struct {
			b  *wire.Batch
			rj *wire.Rejection
		}
		ch := make(chan out, 1)
		go func() { b, rj := wire.Validate(body, limits(now)); ch <- out{b, rj} }()
		var o out
		select {
		case o = <-ch:
		case <-time.After(3 * time.Second):
			os.WriteFile("/tmp/fuzz-hang.json", body, 0o644)
			panic("hang")
		}
		b, rj := o.b, o.rj
		if rj != nil {
			if rj.Status < 400 || rj.Status > 499 || rj.Reason == "" {
				t.Fatalf("bad rejection %+v", rj)
			}
			if err := pathIsDeclared(rj.Field); err != nil {
				t.Fatalf("rejection %+v: %v", rj, err)
			}
			return
		}
		if b == nil {
			t.Fatal("accepted without a batch")
		}
		if err := allowlistHolds(body); err != nil {
			t.Fatalf("accepted a batch that breaks the allowlist: %v\n%s", err, body)
		}
	})
}

// BenchmarkValidateBatch checks a batch of every record kind, and a full
// one: 500 tool calls, the most a client sends in one request.
func BenchmarkValidateBatch(b *testing.B) {
	now := time.Now()
	full := fixture.ValidBatch(now)
	var calls []any
	for range 500 {
		c := maps.Clone(fixture.Rec(full, "tool_calls", 0))
		c["call_id"] = uuid.Must(uuid.NewV7()).String()
		calls = append(calls, c)
	}
	full["tool_calls"] = calls
	for _, c := range []struct {
		name string
		body []byte
	}{{"7_records", fixture.MustJSON(fixture.ValidBatch(now))}, {"500_tool_calls", fixture.MustJSON(full)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, rj := wire.Validate(c.body, limits(now)); rj != nil {
					b.Fatal(rj)
				}
			}
		})
	}
}

// declaredNames is every name of the declaration: what a path may hold
// besides indexes and the placeholder.
func declaredNames() map[string]bool {
	m := map[string]bool{"schema_version": true, "batch_id": true, "sent_at": true, "client": true,
		"fred_version": true, "runtime_version": true, "<unknown key>": true}
	for _, r := range schema.Records() {
		m[r.Batch()] = true
		for _, f := range r.Fields() {
			m[f.Name()] = true
		}
		for _, n := range r.PropNames() {
			for _, f := range r.Props(n) {
				m[f.Name()] = true
			}
		}
	}
	return m
}

var pathSegment = regexp.MustCompile(`^([^\[\]]*)((\[[0-9]+\])*)$`)

// pathIsDeclared checks a field path of an answer independently of the
// validator: at most 200 bytes of printable ASCII, each segment a declared
// name (or the placeholder) followed by indexes.
func pathIsDeclared(p string) error {
	if len(p) > 200 {
		return fmt.Errorf("path of %d bytes", len(p))
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] > 0x7e {
			return fmt.Errorf("path %q: byte %#x is not printable ASCII", p, p[i])
		}
	}
	if p == "" {
		return nil
	}
	names := declaredNames()
	for _, seg := range strings.Split(strings.ReplaceAll(p, "<unknown key>", "UNKNOWN"), ".") {
		seg = strings.ReplaceAll(seg, "UNKNOWN", "<unknown key>")
		m := pathSegment.FindStringSubmatch(seg)
		if m == nil || (m[1] != "" && !names[m[1]]) {
			return fmt.Errorf("path %q: segment %q is not a declared name", p, seg)
		}
	}
	return nil
}

// TestPathsHoldOnlyDeclaredNames: a key of the payload reaches a path only
// when the declaration knows it. On main before this test the duplicated
// key `x[SECRET TEXT…` came back whole: sanitizePath kept whatever followed
// a `[`, and a 7 KiB gzip body made a 7.3 MB answer and log line.
func TestPathsHoldOnlyDeclaredNames(t *testing.T) {
	now := time.Now()
	secret := "x[SECRET TEXT " + strings.Repeat("alice@example.com ", 8) + "]"
	long := "x[" + strings.Repeat("SECRET TEXT ", 600_000) // 7 MB, 7 KiB gzipped
	valid := string(fixture.MustJSON(fixture.ValidBatch(now)))
	for _, c := range []struct{ name, body string }{
		{"duplicate odd key at the top", `{` + q(secret) + `:1,` + q(secret) + `:2}`},
		{"duplicate odd key in a record", strings.Replace(valid, `"mode":"act"`, q(secret)+`:1,`+q(secret)+`:2,"mode":"act"`, 1)},
		{"duplicate long key in a record", strings.Replace(valid, `"mode":"act"`, q(long)+`:1,`+q(long)+`:2,"mode":"act"`, 1)},
		{"odd key in props", strings.Replace(valid, `"command":"model"`, `"command":"model",`+q(secret)+`:1`, 1)},
		{"odd key in client", strings.Replace(valid, `"fred_version":"1.4.2","runtime`, q(secret)+`:"1",`+`"fred_version":"1.4.2","runtime`, 1)},
		{"plain identifier that is no declared name", strings.Replace(valid, `"mode":"act"`, `"alice_at_example_com":1,"mode":"act"`, 1)},
		{"key with a dot and brackets", strings.Replace(valid, `"mode":"act"`, `"mode.SECRET[0]":1,"mode":"act"`, 1)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, rj := wire.Validate([]byte(c.body), limits(now))
			if rj == nil {
				t.Fatal("accepted")
			}
			if err := pathIsDeclared(rj.Field); err != nil {
				t.Fatal(err)
			}
			for _, leak := range []string{"SECRET", "alice", "example"} {
				if strings.Contains(rj.Field+rj.Msg, leak) {
					t.Fatalf("the rejection holds %q: %q %q", leak, rj.Field, rj.Msg)
				}
			}
			if !strings.Contains(rj.Field, "<unknown key>") {
				t.Errorf("field %q: want the unknown key named <unknown key>", rj.Field)
			}
		})
	}
}

func q(s string) string { return string(fixture.MustJSON(s)) }

// TestValidateWorkIsBounded: every hostile shape, a body built to cost the
// parser as much as possible inside the body limits (8 MiB), is refused with
// little memory, whatever its size. On main before this test the 8 MiB
// `[0,0,0,…]` alone allocated about 460 MiB before it was refused.
func TestValidateWorkIsBounded(t *testing.T) {
	now := time.Now()
	const size = 8 << 20
	valid := string(fixture.MustJSON(fixture.ValidBatch(now)))
	// fill is prefix, unit repeated, and suffix: about n bytes.
	fill := func(n int, prefix, unit, suffix string) string {
		return prefix + strings.Repeat(unit, (n-len(prefix)-len(suffix))/len(unit)) + suffix
	}
	// in puts such a filling in place of old in the valid batch: about size bytes in all.
	in := func(old, prefix, unit, suffix string) []byte {
		return []byte(strings.Replace(valid, old, fill(size-len(valid), prefix, unit, suffix), 1))
	}
	members := func(n int, key func(i int) string) string {
		var b strings.Builder
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"` + key(i) + `":0`)
		}
		return b.String()
	}
	shortKeys := members(size/12, func(i int) string { return strconv.FormatInt(int64(i), 36) })
	for _, h := range []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"wide array at the root", []byte(fill(size, "[", "0,", "0]")), 400, "type"},
		{"wide array of records", in(`"events":[`, `"events":[`, "0,", "0,"), 400, "type"},
		{"wide array of empty records", in(`"events":[`, `"events":[`, "{},", ""), 413, "too_many_records"},
		{"wide array in a catalog", in(`"tool_catalog":[`, `"tool_catalog":[`, "0,", ""), 400, "bounds"},
		{"wide array in an unknown field", in(`"mode":"act"`, `"x":[`, "0,", `0],"mode":"act"`), 400, "bounds"},
		{"wide object at the root", []byte(`{` + shortKeys + `}`), 400, "unknown_field"},
		{"wide object in a record", in(`"mode":"act"`, `"x":{`, `"a":0,`, `"a":0},"mode":"act"`), 400, "bounds"},
		{"5000 members in a record", []byte(strings.Replace(valid, `"mode":"act"`, members(5000, func(i int) string { return "k" + strconv.Itoa(i) })+`,"mode":"act"`, 1)), 400, "bounds"},
		{"many short keys in a record", []byte(strings.Replace(valid, `"mode":"act"`, shortKeys+`,"mode":"act"`, 1)), 400, "bounds"},
		{"many short keys in props", []byte(strings.Replace(valid, `"command":"model"`, shortKeys+`,"command":"model"`, 1)), 400, "bounds"},
		{"long string", in(`"fred-flash-2"`, `"`, "m", `"`), 400, "bounds"},
		{"long escaped string", in(`"fred-flash-2"`, `"`, `\u0041`, `"`), 400, "bounds"},
		{"long key", in(`"mode":"act"`, `"`, "k", `":1,"mode":"act"`), 400, "unknown_field"},
		{"long number", in(`"prompt_tokens":1200`, `"prompt_tokens":`, "9", ""), 400, "bounds"},
		{"deep arrays", in(`"mode":"act"`, `"x":`, "[", ""), 400, "nesting"},
		{"deep objects", in(`"mode":"act"`, `"x":`, `{"a":`, ""), 400, "nesting"},
		{"deep at the root", []byte(fill(size, "", "[", "")), 400, "type"},
		{"whitespace", []byte(fill(size, `{"schema_version":`, " ", "1}")), 400, "type"},
	} {
		t.Run(h.name, func(t *testing.T) {
			if len(h.body) > 8<<20 {
				t.Fatalf("the body is %d bytes, over the server's 8 MiB", len(h.body))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, rj := wire.Validate(h.body, limits(now))
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			if rj == nil || rj.Status != h.status || rj.Reason != h.reason {
				t.Fatalf("got %+v, want %d %s", rj, h.status, h.reason)
			}
			// The spans of at most 1000 records and a record's tree: tens
			// of KiB, not a multiple of the body.
			t.Logf("%d bytes refused (%s) with %d KiB allocated", len(h.body), rj.Reason, alloc>>10)
			if alloc > 256<<10 {
				t.Errorf("refusing %d bytes allocated %d KiB", len(h.body), alloc>>10)
			}
		})
	}
}
