package sim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// TestFleetThroughAnUnavailableServer: the server answers the first batches
// 503, as a loaded one does; the sessions whose last write failed spool
// their records, as Fred would, and the simulator delivers the spool, so
// every record is stored once.
func TestFleetThroughAnUnavailableServer(t *testing.T) {
	db := testdb.SQLite(t)
	proc := testkit.StartServer(t, db, "")
	target, _ := url.Parse("http://" + proc.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	var refused atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/batch" && refused.Add(1) <= 6 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":"database unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	ctx := context.Background()
	keys, err := sim.CreateKeys(ctx, db, 2)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := sim.Run(ctx, sim.Config{Sessions: 6, Seed: 7, Concurrency: 2, TempDir: t.TempDir()}, sim.Target{APIURL: front.URL, Keys: keys})
	if err != nil {
		t.Fatalf("%v\nserver: %s", err, proc.Stderr())
	}
	if refused.Load() < 6 {
		t.Fatalf("only %d batches were sent", refused.Load())
	}
	for table, want := range map[string]int{"telemetry_sessions": tr.Totals.Sessions, "telemetry_turns": tr.Totals.Turns,
		"telemetry_tool_calls": tr.Totals.ToolCalls, "telemetry_events": tr.Totals.Events} {
		if got := testdb.QueryInt(t, db, "SELECT count(*) FROM "+table); got != want {
			t.Errorf("%s: %d rows, truth says %d", table, got, want)
		}
	}
}
