package server_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
	"github.com/google/uuid"
)

// countingStore is a real store that counts its catalog lookups.
type countingStore struct {
	store.Store
	lookups atomic.Int64
}

func (c *countingStore) SessionCatalogs(ctx context.Context, user string, ids []uuid.UUID) (map[uuid.UUID]store.Catalogs, error) {
	c.lookups.Add(1)
	return c.Store.SessionCatalogs(ctx, user, ids)
}

// v2Batch is a valid batch of schema version 2 whose names are all in its
// session's catalogs: models fred-flash-2 and fred-pro-2, tools read_file
// and bash, commands help and model.
func v2Batch(now time.Time) map[string]any {
	b := fixture.ValidBatch(now)
	b["schema_version"] = 2
	fixture.Rec(b, "sessions", 0)["model_catalog"] = []any{"fred-flash-2", "fred-pro-2"}
	fixture.Rec(b, "events", 1)["props"].(map[string]any)["latency_ms"] = 120
	return b
}

// children is b without its session record: the turns, tool calls and
// events of a session sent in an earlier batch, with new ids.
func children(b map[string]any, now time.Time) map[string]any {
	sid := fixture.Rec(b, "sessions", 0)["session_id"]
	c := v2Batch(now)
	delete(c, "sessions")
	for _, arr := range []string{"turns", "tool_calls", "events"} {
		for _, r := range c[arr].([]any) {
			r.(map[string]any)["session_id"] = sid
		}
	}
	return c
}

// TestNamesMustBeInTheSessionCatalog (issue 12, item 3): from schema
// version 2 on, a model, tool or command name is in its session's catalog
// or a fixed word, wherever the catalog comes from (the same batch, an
// earlier one through the cache, or the database after a restart); else
// 400 name_not_in_catalog with the field, nothing written. Version 1
// batches keep version 1's rules. On main before this test every one of
// the names below was stored centrally.
func TestNamesMustBeInTheSessionCatalog(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		st := &countingStore{Store: openCentral(t, be.URL(t))}
		p := startOn(t, st, server.Config{Rate: 1000, Burst: 1000})
		now := time.Now()
		rows := func() int64 {
			n, err := st.Count(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			for _, c := range n {
				sum += c
			}
			return sum
		}
		post := func(b map[string]any, key string) (int, map[string]any) {
			code, _, body := p.do(t, "POST", "/v1/batch", key, fixture.MustJSON(b), nil)
			return code, body
		}
		session := v2Batch(now)
		if code, body := post(session, p.key); code != 200 {
			t.Fatalf("a v2 batch whose names are in its catalogs: %d %v", code, body)
		}

		leaks := []struct {
			name, field string
			set         func(b map[string]any)
		}{
			{"e-mail as a turn's model", "turns[0].model", func(b map[string]any) { fixture.Rec(b, "turns", 0)["model"] = "alice@example.com" }},
			{"MCP tool named by the user's config", "tool_calls[0].tool_name", func(b map[string]any) {
				fixture.Rec(b, "tool_calls", 0)["tool_name"] = "mcp__acme-payroll-prod__export_salaries"
			}},
			{"hyphenated sentence as a command", "events[0].props.command", func(b map[string]any) {
				fixture.Rec(b, "events", 0)["props"] = map[string]any{"command": "fire-bob-on-friday"}
			}},
			{"URL with credentials as a model swap", "events[3].props.to", func(b map[string]any) {
				fixture.Rec(b, "events", 3)["props"] = map[string]any{"from": "fred-flash-2", "to": "https://bob:hunter2@llm.internal/v1"}
			}},
			{"path as a model swap's from", "events[3].props.from", func(b map[string]any) {
				fixture.Rec(b, "events", 3)["props"] = map[string]any{"from": "home/alice/models/private", "to": "fred-pro-2"}
			}},
		}
		for _, l := range leaks {
			t.Run(l.name, func(t *testing.T) {
				for _, mode := range []string{"session in the batch", "session from an earlier batch"} {
					var b map[string]any
					if mode == "session in the batch" {
						b = v2Batch(now)
					} else {
						b = children(session, now)
					}
					l.set(b)
					before := rows()
					code, body := post(b, p.key)
					if code != 400 || body["field"] != l.field {
						t.Errorf("%s: %d %v, want 400 naming %s", mode, code, body, l.field)
					}
					if after := rows(); after != before {
						t.Errorf("%s: the refused batch wrote %d rows", mode, after-before)
					}
				}
				// A version 1 batch keeps version 1's rules: stored whole.
				b := fixture.ValidBatch(now)
				l.set(b)
				if code, body := post(b, p.key); code != 200 {
					t.Errorf("the same name in a v1 batch: %d %v, want 200 (v1 rules)", code, body)
				}
			})
		}

		t.Run("fixed words", func(t *testing.T) {
			b := children(session, now)
			fixture.Rec(b, "turns", 0)["model"] = "custom"
			fixture.Rec(b, "tool_calls", 0)["tool_name"] = "mcp"
			fixture.Rec(b, "events", 0)["props"] = map[string]any{"command": "other"}
			fixture.Rec(b, "events", 3)["props"] = map[string]any{"from": "other", "to": "custom"}
			if code, body := post(b, p.key); code != 200 {
				t.Fatalf("fixed words: %d %v", code, body)
			}
		})

		t.Run("cached: no lookup per batch", func(t *testing.T) {
			before := st.lookups.Load()
			for range 5 {
				if code, body := post(children(session, now), p.key); code != 200 {
					t.Fatalf("children of a known session: %d %v", code, body)
				}
			}
			if n := st.lookups.Load() - before; n != 0 {
				t.Errorf("%d catalog lookups for 5 batches of a session the server wrote itself, want 0", n)
			}
		})

		t.Run("after a restart: one lookup, then cached", func(t *testing.T) {
			q := startOn(t, st, server.Config{Rate: 1000, Burst: 1000})
			before := st.lookups.Load()
			for range 3 {
				code, _, body := q.do(t, "POST", "/v1/batch", p.key, fixture.MustJSON(children(session, now)), nil)
				if code != 200 {
					t.Fatalf("children of a session written before the restart: %d %v", code, body)
				}
			}
			if n := st.lookups.Load() - before; n != 1 {
				t.Errorf("%d catalog lookups, want 1 (then cached)", n)
			}
			bad := children(session, now)
			fixture.Rec(bad, "turns", 0)["model"] = "alice@example.com"
			if code, _, body := q.do(t, "POST", "/v1/batch", p.key, fixture.MustJSON(bad), nil); code != 400 || body["field"] != "turns[0].model" {
				t.Errorf("after a restart, a name outside the catalog: %d %v", code, body)
			}
		})

		t.Run("unknown session: fixed words only", func(t *testing.T) {
			b := children(session, now)
			for _, arr := range []string{"turns", "tool_calls", "events"} {
				for _, r := range b[arr].([]any) {
					r.(map[string]any)["session_id"] = uuid.Must(uuid.NewV7()).String()
				}
			}
			if code, body := post(b, p.key); code != 400 || body["error"] == nil {
				t.Errorf("catalog names for a session never sent: %d %v, want 400", code, body)
			}
		})

		t.Run("another user's session tells nothing of its catalog", func(t *testing.T) {
			bob := p.newKey(t, "bob")
			in, out := children(session, now), children(session, now)
			fixture.Rec(out, "turns", 0)["model"] = "alice@example.com"
			ci, bi := post(in, bob)
			co, bo := post(out, bob)
			if ci != 400 || co != 400 || bi["field"] != bo["field"] || bi["error"] != bo["error"] {
				t.Errorf("bob naming alice's session: names in her catalog %d %v, not in it %d %v; want the same 400", ci, bi, co, bo)
			}
		})
	})
}
