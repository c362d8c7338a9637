package telemetry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// TestWaitOutlastsClose: Close returns within its budget while a send
// ignores cancellation; Wait reports that the goroutine still runs, and
// returns once it has let go.
func TestWaitOutlastsClose(t *testing.T) {
	if err := Start(Options{NoTelemetry: true}, SessionInfo{}).Wait(context.Background()); err != nil {
		t.Fatalf("a session that never recorded: Wait = %v", err)
	}
	dir := t.TempDir()
	SaveCredentials(dir, Credentials{APIKey: testKey})
	SavePrefs(dir, Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"})
	sink := &blockingSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := Start(Options{Getenv: envOf(map[string]string{"FRED_CONFIG_DIR": dir}), Stderr: &testkit.Buffer{}, Central: sink,
		FlushInterval: time.Millisecond, CloseBudget: 50 * time.Millisecond}, SessionInfo{Model: "m"})
	if s.Route().Kind != Central {
		t.Fatalf("route %v", s.Route())
	}
	s.BeginTurn("act", "m").End(TurnResult{FinishReason: "stop"})
	select {
	case <-sink.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing was sent")
	}
	s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with the send still stuck = %v, want the deadline", err)
	}
	close(sink.release)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if err := s.Wait(ctx2); err != nil {
		t.Fatalf("Wait once the send returned = %v", err)
	}
}
