package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
)

// TestBurstWithTheEndpointDown: a million tool calls while the ingest API
// refuses connections: the heap stays under twice the queue bound (slice
// growth) plus 1 MiB, and the drop counter says how many did not fit.
func TestBurstWithTheEndpointDown(t *testing.T) {
	refused := testkit.Refused(t)
	const queue = 4 << 20
	n := 1_000_000
	if raceEnabled {
		n = 200_000 // same bound, a tenth of the time under the race detector
	}
	dir := fixture.LoggedIn(t, key)
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": refused}
	base := testkit.HeapAlloc()
	s := telemetry.Start(telemetry.Options{
		Getenv: func(k string) string { return env[k] }, Stderr: &testkit.Buffer{}, NewCentral: central.New,
		QueueBytes: queue, FlushInterval: 20 * time.Millisecond, CloseBudget: 100 * time.Millisecond,
	}, telemetry.SessionInfo{Model: "m", Tools: []string{"edit"}})
	tr := s.BeginTurn("act", "m")
	args := []byte(`{"path":"internal/server/batch.go","old_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {","new_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) error {"}`)
	var peak uint64
	for i := 0; i < n; i++ {
		tr.ToolCall(telemetry.ToolCall{Name: "edit", Args: args, Result: "ok", Permission: "auto_allowed"})
		if i%100_000 == 99_999 {
			peak = max(peak, testkit.HeapAlloc())
		}
	}
	peak = max(peak, testkit.HeapAlloc())
	s.Close(context.Background())
	// Close may return while a cancelled spool write winds down; the
	// config folder is removed when the test ends.
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Wait(wctx); err != nil {
		t.Fatalf("the session's goroutine still runs a minute after Close: %v", err)
	}
	st := s.Stats()
	growth := int64(peak) - int64(base)
	t.Logf("%d tool calls, endpoint refusing: heap grew %.2f MiB (queue bound %d MiB); recorded %d, dropped %d, spooled %d",
		n, float64(growth)/(1<<20), queue>>20, st.Recorded, st.Dropped, st.Spooled)
	if growth > 2*queue+1<<20 {
		t.Errorf("heap grew %d bytes, over 2 × %d + 1 MiB", growth, queue)
	}
	if st.Dropped < int64(n)/2 || st.Spooled == 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Written != 0 {
		t.Errorf("%d records written to a refused port", st.Written)
	}
}
