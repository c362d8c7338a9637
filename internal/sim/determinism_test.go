package sim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/fredcode/fredtel/schema"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// TestSameSeedSameData: the same seed, size and end time, run twice into two
// databases (central through the real server, and self-hosted), make the same
// truth, byte for byte, and the same rows, ids included; only what is keyed
// by a per-session or per-install secret (fingerprints, the AGENTS.md hash)
// and what the server stamps (received_at, clock offset) differ, and the
// fingerprints still repeat exactly where they repeated. Another seed makes
// other data.
func TestSameSeedSameData(t *testing.T) {
	end := time.Now().Add(-time.Hour).Truncate(time.Second)
	ctx := context.Background()
	central := func(seed uint64) (string, []byte) {
		db := testdb.SQLite(t)
		proc := testkit.StartServer(t, db, "")
		keys, err := sim.CreateKeys(ctx, db, 4)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := sim.Run(ctx, sim.Config{Sessions: 80, Seed: seed, End: end, TempDir: t.TempDir()}, sim.Target{APIURL: "http://" + proc.URL, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.MarshalIndent(tr, "", "  ")
		return db, js
	}
	dbA, trA := central(3)
	dbB, trB := central(3)
	if string(trA) != string(trB) {
		t.Errorf("seed 3 twice: the truths differ")
	}
	compareRows(t, dbA, dbB, "telemetry_")
	// The fleet's text (prompts, answers, paths and commands in the tool
	// arguments, results) never reaches the central tables.
	for _, tb := range []string{"sessions", "turns", "tool_calls", "events"} {
		all := strings.Join(dumpRows(t, dbA, "telemetry_"+tb, "1"), "\n")
		for _, text := range []string{"fix the failing", "internal/auth", "go build", "lorem ipsum", "refreshToken", "AGENTS.md", "You are Fred"} {
			if strings.Contains(all, text) {
				t.Errorf("telemetry_%s holds %q", tb, text)
			}
		}
	}
	_, trC := central(4)
	if string(trC) == string(trA) {
		t.Error("seeds 3 and 4 made the same truth")
	}

	selfHosted := func() (string, []byte) {
		db := testdb.Postgres(t)
		tr, err := sim.Run(ctx, sim.Config{Sessions: 60, Seed: 9, End: end, Concurrency: 3, TempDir: t.TempDir()}, sim.Target{DBURL: db})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(tr)
		return db, js
	}
	dbD, trD := selfHosted()
	dbE, trE := selfHosted()
	if string(trD) != string(trE) {
		t.Errorf("self-hosted, seed 9 twice: the truths differ")
	}
	compareRows(t, dbD, dbE, "dsc_")
}

// compareRows compares every record table of two databases row by row.
func compareRows(t *testing.T, a, b, prefix string) {
	t.Helper()
	for _, tb := range []struct{ name, key string }{{"sessions", "session_id"}, {"turns", "turn_id"}, {"tool_calls", "call_id"}, {"events", "event_id"}} {
		ra, rb := dumpRows(t, a, prefix+tb.name, tb.key), dumpRows(t, b, prefix+tb.name, tb.key)
		if len(ra) == 0 || len(ra) != len(rb) {
			t.Errorf("%s: %d and %d rows", tb.name, len(ra), len(rb))
			continue
		}
		for i := range ra {
			if ra[i] != rb[i] {
				t.Errorf("%s row %d differs:\n%s\n%s", tb.name, i, ra[i], rb[i])
				break
			}
		}
	}
}

// dumpRows prints the rows of table in key order, without the server's
// stamps, with each fingerprint replaced by the order it first appeared in.
func dumpRows(t *testing.T, url, table, key string) []string {
	t.Helper()
	db := testdb.Open(t, url)
	defer db.Close()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY " + key)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	seen := map[string]int{}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, c := range cols {
			v := vals[i]
			if bs, ok := v.([]byte); ok {
				v = string(bs)
			}
			s := fmt.Sprint(v)
			switch c {
			case "received_at", "clock_offset_ms", schema.FoldColumn: // the server's, and the writing transaction's id
				continue
			case "agents_md_hash": // keyed per install: only whether there is one
				s = fmt.Sprint(v != nil)
			case "args_fingerprint", "result_fingerprint":
				if v != nil {
					if _, ok := seen[s]; !ok {
						seen[s] = len(seen)
					}
					s = fmt.Sprintf("fp%d", seen[s])
				}
			}
			fmt.Fprintf(&b, "%s=%s ", c, s)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
