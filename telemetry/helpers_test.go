package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// recSink is a central sink that keeps the JSON of every batch it is sent.
type recSink struct {
	NoSpool
	mu      sync.Mutex
	batches [][]byte
	records int
	stall   chan struct{} // when non-nil, Send blocks until it is closed or ctx ends
	fail    error
	closed  bool
	purged  bool
}

func (k *recSink) Send(ctx context.Context, b *RemoteBatch) error {
	if k.stall != nil {
		select {
		case <-k.stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if k.fail != nil {
		return k.fail
	}
	js, err := json.Marshal(b)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.batches = append(k.batches, js)
	k.records += b.Len()
	k.mu.Unlock()
	return nil
}

func (k *recSink) Close(context.Context) error {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	return nil
}
func (k *recSink) Purge() error { k.mu.Lock(); k.purged = true; k.mu.Unlock(); return nil }

func (k *recSink) all() (string, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return string(bytes.Join(k.batches, []byte("\n"))), k.records
}

// decoded merges every batch the sink got.
func (k *recSink) decoded(t *testing.T) RemoteBatch {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	var all RemoteBatch
	for _, js := range k.batches {
		var b RemoteBatch
		if err := json.Unmarshal(js, &b); err != nil {
			t.Fatal(err)
		}
		all.Sessions = append(all.Sessions, b.Sessions...)
		all.Turns = append(all.Turns, b.Turns...)
		all.ToolCalls = append(all.ToolCalls, b.ToolCalls...)
		all.Events = append(all.Events, b.Events...)
	}
	return all
}

const testKey = "fred_live_ab12cd34ef56gh78ij90kl"

// configDir makes a config dir; loggedIn stores a key; noticeShown marks
// the notice as seen.
func configDir(t *testing.T, loggedIn, noticeShown bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fred")
	if loggedIn {
		if err := SaveCredentials(dir, Credentials{APIKey: testKey}); err != nil {
			t.Fatal(err)
		}
	}
	if noticeShown {
		if err := SavePrefs(dir, Prefs{NoticeShownAt: "2026-01-02T03:04:05Z"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// testOptions are options for a session on dir with env, stderr captured.
func testOptions(dir string, env map[string]string, stderr *testkit.Buffer) Options {
	e := map[string]string{"FRED_CONFIG_DIR": dir}
	for k, v := range env {
		e[k] = v
	}
	return Options{
		FredVersion:      "1.2.3",
		Getenv:           envOf(e),
		Stderr:           stderr,
		StderrIsTerminal: func() bool { return false },
		FlushInterval:    10 * time.Millisecond,
		CloseBudget:      time.Second,
	}
}

// centralOptions are testOptions on dir on the central route, with a
// recSink as its sink.
func centralOptions(dir string, stderr *testkit.Buffer) (Options, *recSink) {
	opts, sink := testOptions(dir, nil, stderr), &recSink{}
	opts.Central = sink
	return opts, sink
}

// libraryGoroutines counts goroutines running this package's code.
func libraryGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "telemetry.(*Session).run")
}

func boolp(b bool) *bool { return &b }
