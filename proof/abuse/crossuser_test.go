package abuse

import (
	"fmt"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/proof"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// envelope is a batch with no records yet.
func envelope(now time.Time) map[string]any {
	b := fixture.ValidBatch(now)
	for _, k := range []string{"sessions", "turns", "tool_calls", "events"} {
		b[k] = []any{}
	}
	return b
}

// TestCrossUser: alice's key sends a session; bob's key then tries to add
// records to it, to change it, to replay it, and to slip its id into
// batches of his own. Every attempt is refused, writes nothing, and leaves
// alice's rows byte for byte as they were.
func TestCrossUser(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	p := testkit.StartServer(t, db, "", "--rate", "100000", "--burst", "100000")
	conn := dbConn(t, db)
	alice, bob := testkit.CreateKey(t, db, "alice"), testkit.CreateKey(t, db, "bob")
	now := time.Now()

	aBatch := fixture.ValidBatch(now)
	aBody := fixture.MustJSON(aBatch)
	if a := post(t, p.URL, alice, aBody); a.code != 200 || a.body["accepted"] != 7.0 {
		t.Fatalf("alice's batch: %d %s", a.code, a.raw)
	}
	aSession := fixture.Rec(aBatch, "sessions", 0)
	sA := aSession["session_id"].(string)
	tA := fixture.Rec(aBatch, "turns", 0)["turn_id"].(string)
	aliceBefore := userRows(t, conn, "alice")
	if n := len(aliceBefore["telemetry_sessions"]) + len(aliceBefore["telemetry_turns"]) + len(aliceBefore["telemetry_tool_calls"]) + len(aliceBefore["telemetry_events"]); n != 7 {
		t.Fatalf("alice owns %d rows, want her batch's 7", n)
	}

	// intoA is one of bob's records, pointed at alice's session.
	intoA := func(kind string) map[string]any {
		r := maps.Clone(fixture.Rec(fixture.ValidBatch(now), kind, 0))
		r["session_id"] = sA
		return r
	}
	with := func(f func(b map[string]any)) func() []byte {
		return func() []byte { b := envelope(now); f(b); return fixture.MustJSON(b) }
	}
	attacks := []struct {
		name  string
		body  func() []byte
		hdr   map[string]string
		field string
	}{
		{name: "add_turn_to_a_session", body: with(func(b map[string]any) { b["turns"] = []any{intoA("turns")} }), field: "turns[0].session_id"},
		{name: "add_tool_call_to_a_turn", body: with(func(b map[string]any) {
			c := intoA("tool_calls")
			c["turn_id"] = tA
			b["tool_calls"] = []any{c}
		}), field: "tool_calls[0].session_id"},
		{name: "add_event_to_a_session", body: with(func(b map[string]any) { b["events"] = []any{intoA("events")} }), field: "events[0].session_id"},
		{name: "add_every_kind_to_a_session", body: with(func(b map[string]any) {
			b["events"], b["tool_calls"], b["turns"] = []any{intoA("events")}, []any{intoA("tool_calls")}, []any{intoA("turns")}
		}), field: "turns[0].session_id"},
		{name: "resend_a_session_as_is", body: with(func(b map[string]any) { b["sessions"] = []any{maps.Clone(aSession)} }), field: "sessions[0].session_id"},
		{name: "end_a_session", body: with(func(b map[string]any) {
			s := maps.Clone(aSession)
			s["ended_at"] = b["sent_at"]
			b["sessions"] = []any{s}
		}), field: "sessions[0].session_id"},
		{name: "rewrite_a_session", body: with(func(b map[string]any) {
			s := maps.Clone(aSession)
			s["ended_at"], s["model"], s["os"], s["shell"], s["git_dirty"] = b["sent_at"], "fred-pro-2", "windows", "pwsh", false
			s["tool_catalog"], s["command_catalog"], s["agents_md_hash"] = []any{"bash"}, []any{"exit"}, nil
			b["sessions"] = []any{s}
		}), field: "sessions[0].session_id"},
		{name: "replay_a_batch", body: func() []byte { return aBody }, field: "sessions[0].session_id"},
		{name: "replay_a_batch_gzip", body: func() []byte { return fixture.Gzip(aBody) }, hdr: map[string]string{"Content-Encoding": "gzip"}, field: "sessions[0].session_id"},
		{name: "mix_a_session_into_valid_batch", body: func() []byte {
			b := fixture.ValidBatch(now)
			b["events"] = append(b["events"].([]any), intoA("events"))
			return fixture.MustJSON(b)
		}, field: "events[4].session_id"},
		{name: "mix_a_session_mid_batch", body: func() []byte {
			b := fixture.ValidBatch(now)
			fixture.Rec(b, "tool_calls", 0)["session_id"] = sA
			return fixture.MustJSON(b)
		}, field: "tool_calls[0].session_id"},
		{name: "mix_a_session_beside_b_session", body: func() []byte {
			b := fixture.ValidBatch(now)
			s := maps.Clone(aSession)
			s["ended_at"] = b["sent_at"]
			b["sessions"] = append(b["sessions"].([]any), s)
			return fixture.MustJSON(b)
		}, field: "sessions[1].session_id"},
	}

	// checkAlice fails t unless alice's rows are exactly as they were and
	// her session holds no row of anyone else.
	checkAlice := func(t *testing.T) {
		t.Helper()
		if after := userRows(t, conn, "alice"); !reflect.DeepEqual(after, aliceBefore) {
			t.Errorf("alice's rows changed:\nbefore %v\nafter  %v", aliceBefore, after)
		}
		for _, tb := range tablesWith(t, conn, "session_id", "user_id") { // the record tables: the rollups count records, hold none
			if n := queryInt(t, conn, fmt.Sprintf("SELECT count(*) FROM %s WHERE session_id = $1 AND user_id <> 'alice'", pgx.Identifier{tb}.Sanitize()), sA); n != 0 {
				t.Errorf("%s: %d rows of someone else in alice's session", tb, n)
			}
		}
	}
	bobRecords := func(t *testing.T) int64 {
		var n int64
		for _, tb := range tablesWith(t, conn, "session_id", "user_id") { // the record tables: the rollups count records, hold none
			n += queryInt(t, conn, fmt.Sprintf("SELECT count(*) FROM %s WHERE user_id = 'bob'", pgx.Identifier{tb}.Sanitize()))
		}
		return n
	}

	refused := 0
	for _, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			before := snapshot(t, conn)
			hdr := map[string]string{"Authorization": "Bearer " + bob, "Content-Type": "application/json"}
			maps.Copy(hdr, at.hdr)
			a := send(t, p.URL, request{body: at.body(), hdr: hdr})
			if a.code != 400 || a.body["field"] != at.field {
				t.Errorf("bob's key: %d %s, want 400 naming %s", a.code, a.raw, at.field)
			}
			if d := changes(before, snapshot(t, conn)); len(d) > 0 {
				t.Errorf("the refused batch changed the database: %v", d)
			}
			if n := bobRecords(t); n != 0 {
				t.Errorf("%d rows written for bob", n)
			}
			checkAlice(t)
			healthy(t, p.URL)
			if !t.Failed() {
				refused++
			}
		})
	}

	// A record id of alice's (not her session's) in a batch of bob's own
	// session: the store is idempotent on record ids, so bob's record is a
	// duplicate and dropped; alice's row stays hers, unchanged.
	t.Run("collide_with_a_turn_id", func(t *testing.T) {
		b := fixture.ValidBatch(now)
		fixture.Rec(b, "turns", 0)["turn_id"] = tA
		fixture.Rec(b, "turns", 0)["mode"] = "plan"
		a := post(t, p.URL, bob, fixture.MustJSON(b))
		if a.code != 200 || a.body["accepted"] != 6.0 || a.body["duplicates"] != 1.0 {
			t.Fatalf("bob's batch with alice's turn id: %d %s, want 200 with 1 duplicate", a.code, a.raw)
		}
		checkAlice(t)
		if n := queryInt(t, conn, "SELECT count(*) FROM telemetry_turns WHERE turn_id = $1 AND user_id = 'alice' AND mode = 'act'", tA); n != 1 {
			t.Errorf("alice's turn is no longer hers as she sent it")
		}
	})

	// Bob learns a session id only after alice's client sent it. The
	// moment of creation is the one where the guard's read can miss a row
	// not yet committed: both send a new session id at once, many times;
	// each session must end up with one owner's rows only.
	t.Run("race_for_a_new_session", func(t *testing.T) {
		rounds, mixed, both := 40, 0, 0
		for range rounds {
			sid := uuid.Must(uuid.NewV7()).String()
			bodies := make([][]byte, 2)
			for i := range bodies {
				b := fixture.ValidBatch(now)
				for _, kind := range []string{"sessions", "turns", "tool_calls", "events"} {
					for j := range b[kind].([]any) {
						fixture.Rec(b, kind, j)["session_id"] = sid
					}
				}
				bodies[i] = fixture.MustJSON(b)
			}
			var wg sync.WaitGroup
			codes := make([]int, 2)
			for i, k := range []string{alice, bob} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes[i] = postKeepAlive(t, p.URL, k, bodies[i]).code
				}()
			}
			wg.Wait()
			if codes[0] == 200 && codes[1] == 200 {
				both++
			}
			if min(codes[0], codes[1]) != 200 || max(codes[0], codes[1]) != 400 {
				t.Errorf("two keys creating one session at once answered %v, want one 200 and one 400", codes)
			}
			owners := queryInt(t, conn, `SELECT count(DISTINCT user_id) FROM (
				SELECT user_id FROM telemetry_sessions WHERE session_id = $1 UNION ALL SELECT user_id FROM telemetry_turns WHERE session_id = $1
				UNION ALL SELECT user_id FROM telemetry_tool_calls WHERE session_id = $1 UNION ALL SELECT user_id FROM telemetry_events WHERE session_id = $1) x`, sid)
			if owners != 1 {
				mixed++
			}
		}
		if mixed > 0 || both > 0 {
			t.Errorf("%d of %d sessions created by two keys at once hold rows of both users; %d times both keys got 200", mixed, rounds, both)
		}
		if !t.Failed() {
			proof.Figure(t, "cross-user", "two keys creating one session id at the same moment",
				"%d races: each answered one 200 and one 400, and each session holds one user's rows only", rounds)
		}
	})

	t.Run("alice_ends_her_session", func(t *testing.T) {
		b := envelope(now)
		s := maps.Clone(aSession)
		s["ended_at"] = b["sent_at"]
		b["sessions"] = []any{s}
		if a := post(t, p.URL, alice, fixture.MustJSON(b)); a.code != 200 || a.body["accepted"] != 1.0 {
			t.Fatalf("alice ending her own session after the attacks: %d %s", a.code, a.raw)
		}
	})

	if !t.Failed() {
		proof.Figure(t, "cross-user", "one key cannot add to or change another user's session",
			"%d attacks by bob's key on alice's session (add each record kind, resend, end, rewrite, replay plain and gzip, mix its id into valid batches) all refused with 400 naming the field; alice's rows byte for byte unchanged and 0 rows for bob after each; a record-id collision is dropped as a duplicate with alice's row unchanged; alice then ends her session (accepted)",
			refused)
	}
}
