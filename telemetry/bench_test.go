package telemetry

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// args200 is a typical edit call's arguments, about 200 bytes.
var args200 = []byte(`{"path":"internal/server/batch.go","old_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {","new_string":"func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) error {"}`)

type discardSink struct{ NoSpool }

func (discardSink) Send(context.Context, *RemoteBatch) error { return nil }
func (discardSink) Close(context.Context) error              { return nil }

// benchToolCalls records c b.N times on a central session whose sink
// discards everything, with onHint as Options.OnHint; b.Loop times only the
// calls. It returns the session, closed when the benchmark ends.
func benchToolCalls(b *testing.B, c ToolCall, onHint func(Hint)) *Session {
	dir := b.TempDir()
	SaveCredentials(dir, Credentials{APIKey: testKey})
	SavePrefs(dir, Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"})
	env := map[string]string{"FRED_CONFIG_DIR": dir}
	s := Start(Options{Getenv: envOf(env), Stderr: &testkit.Buffer{}, Central: discardSink{}, QueueBytes: 64 << 20, FlushInterval: 50 * time.Millisecond, OnHint: onHint},
		SessionInfo{Model: "fred-flash-2", Tools: []string{"edit"}})
	if s.Route().Kind != Central {
		b.Fatal("not central")
	}
	b.Cleanup(func() { s.Close(context.Background()) })
	t := s.BeginTurn("act", "fred-flash-2")
	b.ReportAllocs()
	for b.Loop() {
		t.ToolCall(c)
	}
	return s
}

// BenchmarkRecordToolCall is what the agent's goroutine pays per tool call
// with ~200 bytes of args: canonical JSON, HMAC fingerprint, privacy
// conversion and the hand-off to the queue. Compare with BenchmarkSHA256Floor
// of the same run.
func BenchmarkRecordToolCall(b *testing.B) {
	s := benchToolCalls(b, ToolCall{Name: "edit", Args: args200, Result: "Applied 1 edit.", Permission: "auto_allowed", Duration: 3 * time.Millisecond}, nil)
	if s.Stats().Dropped > 0 {
		b.Logf("%d dropped: the queue filled up", s.Stats().Dropped)
	}
}

// BenchmarkRecordToolCallWithHints is BenchmarkRecordToolCall with the
// live rules on (Options.OnHint): what they add to the hot path. The same
// call repeated is a loop, told once.
func BenchmarkRecordToolCallWithHints(b *testing.B) {
	told := 0
	benchToolCalls(b, ToolCall{Name: "edit", Args: args200, Result: "Applied 1 edit.", Permission: "auto_allowed", Duration: 3 * time.Millisecond}, func(Hint) { told++ })
	if b.N >= 3 && told != 1 {
		b.Fatalf("the loop was told %d times, want once", told)
	}
}

// BenchmarkSHA256Floor is the floor the hot path is measured against: one
// SHA-256 of the same 200 bytes.
func BenchmarkSHA256Floor(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(args200)
	}
}

// TestMillionToolCallsWithStalledSink: with the sink stalled, recording a
// million tool calls keeps the heap under twice the queue bound (slice growth)
// plus 1 MiB, and counts the drops.
func TestMillionToolCallsWithStalledSink(t *testing.T) {
	const queue = 4 << 20
	n := 1_000_000
	if raceEnabled {
		n = 200_000 // the race detector makes each call ~10× slower; the bound is the same
	}
	opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	sink.stall = make(chan struct{})
	opts.QueueBytes, opts.MaxBatch, opts.CloseBudget = queue, 500, 20*time.Millisecond
	base := testkit.HeapAlloc()
	s := Start(opts, SessionInfo{Model: "m", Tools: []string{"edit"}})
	tr := s.BeginTurn("act", "m")
	c := ToolCall{Name: "edit", Args: args200, Result: "ok", Permission: "auto_allowed"}
	var peak uint64
	for i := 0; i < n; i++ {
		tr.ToolCall(c)
		if i%100_000 == 99_999 {
			peak = max(peak, testkit.HeapAlloc())
		}
	}
	peak = max(peak, testkit.HeapAlloc())
	st := s.Stats()
	s.Close(context.Background())
	close(sink.stall)
	growth := int64(peak) - int64(base)
	t.Logf("%d tool calls, sink stalled: heap grew %.2f MiB (queue bound %d MiB); %d recorded, %d dropped",
		n, float64(growth)/(1<<20), queue>>20, st.Recorded, st.Dropped)
	if growth > 2*queue+1<<20 {
		t.Errorf("heap grew %d bytes, over 2 × %d + 1 MiB", growth, queue)
	}
	if st.Recorded+st.Dropped != int64(n)+1 || st.Dropped < int64(n)/2 {
		t.Errorf("stats %+v for %d calls", st, n)
	}
}
