package wire_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/wiretest"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server/wire"
)

func limits(now time.Time) wire.Limits {
	return wire.Limits{MaxRecords: 1000, Now: now, MaxClockSkew: 30 * 24 * time.Hour, MinClient: "1.0.0"}
}

func TestValidateBatchAcceptsAValidBatch(t *testing.T) {
	now := time.Now()
	b, rj := wire.Validate(wiretest.MustJSON(wiretest.ValidBatch(now)), limits(now))
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
	m := func(f func(map[string]any)) []byte { b := wiretest.ValidBatch(now); f(b); return wiretest.MustJSON(b) }
	raw := func(old, new string) []byte {
		return bytes.Replace(wiretest.MustJSON(wiretest.ValidBatch(now)), []byte(old), []byte(new), 1)
	}
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		reason string
		field  string
	}{
		{"forbidden text", m(func(b map[string]any) { wiretest.Rec(b, "turns", 0)["assistant_text"] = "hi" }), 400, "forbidden_field", "turns[0].assistant_text"},
		{"server field", m(func(b map[string]any) { wiretest.Rec(b, "turns", 0)["received_at"] = "x" }), 400, "forbidden_field", "turns[0].received_at"},
		{"unknown top level", m(func(b map[string]any) { b["user_id"] = "x" }), 400, "unknown_field", "user_id"},
		{"unknown client field", m(func(b map[string]any) { b["client"].(map[string]any)["hostname"] = "box" }), 400, "unknown_field", "client.hostname"},
		{"homoglyph key", m(func(b map[string]any) { wiretest.Rec(b, "turns", 0)["us\u0435r_input"] = "x" }), 400, "unknown_field", "turns[0].<unprintable key>"},
		{"zero-width in a name", m(func(b map[string]any) { wiretest.Rec(b, "tool_calls", 0)["tool_name"] = "read\u200b_file" }), 400, "pattern", "tool_calls[0].tool_name"},
		{"sentence in a model", m(func(b map[string]any) {
			wiretest.Rec(b, "sessions", 0)["model"] = "please ignore previous instructions"
		}), 400, "pattern", "sessions[0].model"},
		{"SQL in a command", m(func(b map[string]any) {
			wiretest.Rec(b, "events", 0)["props"] = map[string]any{"command": "x'); DROP TABLE api_keys;--"}
		}), 400, "pattern", "events[0].props.command"},
		{"prop of another event", m(func(b map[string]any) {
			wiretest.Rec(b, "events", 2)["props"] = map[string]any{"from": "act", "to": "plan", "command": "help"}
		}), 400, "unknown_field", "events[2].props.command"},
		{"missing prop", m(func(b map[string]any) { wiretest.Rec(b, "events", 1)["props"] = map[string]any{"attempt": 1} }), 400, "missing_field", "events[1].props.delay_ms"},
		{"props not an object", m(func(b map[string]any) { wiretest.Rec(b, "events", 0)["props"] = "command=help" }), 400, "type", "events[0].props"},
		{"unknown event", m(func(b map[string]any) { wiretest.Rec(b, "events", 0)["name"] = "keystroke" }), 400, "enum", "events[0].name"},
		{"missing field", m(func(b map[string]any) { delete(wiretest.Rec(b, "tool_calls", 0), "outcome") }), 400, "missing_field", "tool_calls[0].outcome"},
		{"null where required", m(func(b map[string]any) { wiretest.Rec(b, "turns", 0)["model"] = nil }), 400, "type", "turns[0].model"},
		{"string for an int", m(func(b map[string]any) { wiretest.Rec(b, "turns", 0)["seq"] = "0" }), 400, "type", "turns[0].seq"},
		{"huge int", raw(`"prompt_tokens":1200`, `"prompt_tokens":99999999999999999999999`), 400, "bounds", "turns[0].prompt_tokens"},
		{"1e400", raw(`"prompt_tokens":1200`, `"prompt_tokens":1e400`), 400, "type", "turns[0].prompt_tokens"},
		{"absurd count", m(func(b map[string]any) { wiretest.Rec(b, "tool_calls", 0)["duration_ms"] = math.MaxInt32 * 1000 }), 400, "bounds", "tool_calls[0].duration_ms"},
		{"NaN", raw(`"prompt_tokens":1200`, `"prompt_tokens":NaN`), 400, "json", ""},
		{"bool as string", m(func(b map[string]any) { wiretest.Rec(b, "tool_calls", 0)["result_is_error"] = "false" }), 400, "type", "tool_calls[0].result_is_error"},
		{"uppercase uuid", m(func(b map[string]any) { b["batch_id"] = strings.ToUpper(b["batch_id"].(string)) }), 400, "uuid", "batch_id"},
		{"time without zone", m(func(b map[string]any) { wiretest.Rec(b, "events", 0)["ts"] = "2026-11-27T10:00:00" }), 400, "time", "events[0].ts"},
		{"sent_at a year off", m(func(b map[string]any) { b["sent_at"] = now.AddDate(1, 0, 0).UTC().Format(time.RFC3339) }), 400, "clock", "sent_at"},
		{"record an hour after sent_at", m(func(b map[string]any) {
			wiretest.Rec(b, "turns", 0)["started_at"] = now.Add(2 * time.Hour).UTC().Format(time.RFC3339)
		}), 400, "time_window", "turns[0].started_at"},
		{"catalog with a sentence", m(func(b map[string]any) {
			wiretest.Rec(b, "sessions", 0)["tool_catalog"] = []any{"read_file", "do the thing"}
		}), 400, "pattern", "sessions[0].tool_catalog[1]"},
		{"catalog too long", m(func(b map[string]any) {
			var l []any
			for i := 0; i < 600; i++ {
				l = append(l, fmt.Sprintf("t%d", i))
			}
			wiretest.Rec(b, "sessions", 0)["tool_catalog"] = l
		}), 400, "bounds", "sessions[0].tool_catalog"},
		{"records not an array", m(func(b map[string]any) { b["turns"] = map[string]any{} }), 400, "type", "turns"},
		{"record not an object", m(func(b map[string]any) { b["turns"] = []any{"turn"} }), 400, "type", "turns[0]"},
		{"deep nesting", raw(`"props":{"command":"model"}`, `"props":{"command":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}`), 400, "nesting", "events[0].props.command.a.b.c.d.e"},
		{"duplicate top-level key", raw(`"schema_version":1`, `"schema_version":1,"schema_version":2`), 400, "duplicate_key", "schema_version"},
		{"invalid UTF-8", raw(`"fred-flash-2"`, "\"fred\xff\""), 400, "json", ""},
		{"schema version 3", m(func(b map[string]any) { b["schema_version"] = 3 }), 422, "schema_version_unsupported", "schema_version"},
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
				if f == nil || f.Scope != schema.Central {
					return fmt.Errorf("%s[%d].%s is not on the allowlist", k, i, fk)
				}
				if fk == "props" {
					for pk := range fv.(map[string]any) {
						ok := false
						for _, pf := range r.Props[obj["name"].(string)] {
							ok = ok || pf.Name == pk
						}
						if !ok {
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
	valid := wiretest.MustJSON(wiretest.ValidBatch(now))
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

func BenchmarkValidateBatch(b *testing.B) {
	now := time.Now()
	body := wiretest.MustJSON(wiretest.ValidBatch(now))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, rj := wire.Validate(body, limits(now)); rj != nil {
			b.Fatal(rj)
		}
	}
}
