package relay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
)

// memSink is a central sink that keeps the JSON of every batch.
type memSink struct {
	telemetry.NoSpool
	mu   sync.Mutex
	json bytes.Buffer
	n    int
}

func (m *memSink) Send(_ context.Context, b *telemetry.RemoteBatch) error {
	js, err := json.Marshal(b)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.json.Write(js)
	m.n += b.Len()
	return nil
}
func (m *memSink) Close(context.Context) error { return nil }
func (m *memSink) String() string              { m.mu.Lock(); defer m.mu.Unlock(); return m.json.String() }

// centralTo is the options of a central route, logged in, whose batches
// go to sink.
func centralTo(t testing.TB, sink telemetry.CentralSink, stderr *testkit.Buffer) telemetry.Options {
	env := map[string]string{"FRED_CONFIG_DIR": fixture.LoggedIn(t, "fred_live_ab12cd34ef56gh78ij90kl")}
	return telemetry.Options{Getenv: func(k string) string { return env[k] }, Stderr: stderr, Central: sink,
		FlushInterval: 10 * time.Millisecond, CloseBudget: 5 * time.Second}
}

// memRelay is a relay with o on a central route whose batches go to a
// memSink; it returns the sink and the relay's stderr.
func memRelay(t testing.TB, o Options) (*Relay, *memSink, *testkit.Buffer) {
	sink, stderr := &memSink{}, &testkit.Buffer{}
	o.Telemetry, o.Stderr = centralTo(t, sink, stderr), stderr
	return New(o), sink, stderr
}

const canary = "SECRET-PROMPT-CANARY-42"

// logsJSON is an OTLP/JSON logs request of service with one record,
// stamped now.
func logsJSON(service string, attrs map[string]any) []byte {
	return logsJSONAt(service, attrs, time.Now())
}

// logsJSONAt is logsJSON stamped at.
func logsJSONAt(service string, attrs map[string]any, at time.Time) []byte {
	var kv []string
	for k, v := range attrs {
		switch x := v.(type) {
		case string:
			kv = append(kv, fmt.Sprintf(`{"key":%q,"value":{"stringValue":%q}}`, k, x))
		case int:
			kv = append(kv, fmt.Sprintf(`{"key":%q,"value":{"intValue":"%d"}}`, k, x))
		}
	}
	return []byte(fmt.Sprintf(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}},
		{"key":"service.version","value":{"stringValue":"2.1.197"}}]},"scopeLogs":[{"logRecords":[{"timeUnixNano":"%d",
		"body":{"stringValue":%q},"attributes":[%s]}]}]}]}`, service, at.UnixNano(), canary, strings.Join(kv, ",")))
}

func post(h http.Handler, path, ct, enc string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestBadInput: malformed OTLP, bodies too large (gzip bombs too),
// unknown services and events of a CLI version whose attributes were
// renamed are refused or counted and skipped, with one warning line per
// kind, never a crash, and never any of their text in a record or a
// message.
func TestBadInput(t *testing.T) {
	r, sink, stderr := memRelay(t, Options{MaxBody: 64 << 10, MaxDecoded: 256 << 10})
	bomb := fixture.Gzip(bytes.Repeat([]byte(" "), 1<<20)) // 1 KiB that inflates to 1 MiB
	for _, tc := range []struct {
		name, path, ct, enc string
		body                []byte
		code                int
	}{
		{"malformed JSON", "/v1/logs", "application/json", "", []byte(`{"resourceLogs":[{"scopeLogs":` + canary), 400},
		{"JSON of another shape", "/v1/logs", "application/json", "", []byte(`{"resourceLogs":"` + canary + `"}`), 400},
		{"malformed protobuf", "/v1/traces", "application/x-protobuf", "", []byte("\x0a\xff\xff\xff\xff\x0f" + canary), 400},
		{"not gzip", "/v1/logs", "application/json", "gzip", []byte(canary), 400},
		{"truncated gzip", "/v1/logs", "application/json", "gzip", fixture.Gzip(logsJSON("claude-code", nil))[:40], 400},
		{"gzip bomb", "/v1/logs", "application/json", "gzip", bomb, 413},
		{"too large", "/v1/metrics", "application/json", "", bytes.Repeat([]byte(" "), 65<<10), 413},
		{"another type", "/v1/logs", "text/plain", "", []byte(canary), 415},
		{"another encoding", "/v1/logs", "application/json", "br", []byte(canary), 415},
		{"another path", "/v1/profiles", "application/json", "", []byte(`{}`), 404},
		{"an empty request", "/v1/logs", "application/json", "", []byte(`{}`), 200},
		{"unknown service", "/v1/logs", "application/json", "", logsJSON("evil-cli", map[string]any{"session.id": "s1", "event.name": "user_prompt", "prompt": canary}), 200},
		{"unknown service's metrics", "/v1/metrics", "application/json", "", []byte(`{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"x"}}]},"scopeMetrics":[{"metrics":[{"name":"` + canary + `"}]}]}]}`), 200},
		{"renamed attribute", "/v1/logs", "application/json", "", logsJSON("claude-code", map[string]any{"session.id": "s1", "event.name": "api_request",
			"model_name": "claude-opus-4-8", "duration_ms": 5, "input_tokens": 3, "prompt": canary}), 200},
		{"renamed event", "/v1/logs", "application/json", "", logsJSON("claude-code", map[string]any{"session.id": "s1", "event.name": "tool_outcome",
			"tool_name": canary, "duration_ms": 5}), 200},
		{"no session id", "/v1/logs", "application/json", "", logsJSON("gemini-cli", map[string]any{"event.name": "gemini_cli.user_prompt", "prompt": canary, "prompt_length": 23}), 200},
		{"wrong value types", "/v1/logs", "application/json", "", logsJSON("gemini-cli", map[string]any{"session.id": "s2", "event.name": "gemini_cli.tool_call",
			"function_name": "read_file", "duration_ms": canary, "decision": "accept"}), 200},
	} {
		w := post(r, tc.path, tc.ct, tc.enc, tc.body)
		if w.Code != tc.code {
			t.Errorf("%s: %d, want %d (%s)", tc.name, w.Code, tc.code, w.Body.String())
		}
		if strings.Contains(w.Body.String(), canary) {
			t.Errorf("%s: the answer quotes the request: %s", tc.name, w.Body.String())
		}
	}
	if w := httptest.NewRecorder(); true {
		r.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/logs", nil))
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("GET: %d", w.Code)
		}
	}
	r.Close(context.Background())
	st := r.Stats()
	if st.Refused != 9 || st.UnknownService != 2 || st.Incomplete != 2 || st.UnknownEvent != 1 || st.NoSession != 1 || st.Facts != 0 || st.Sessions != 0 {
		t.Errorf("stats %+v", st)
	}
	out := stderr.String()
	for _, line := range []string{
		"fred otel-relay: refused a request: malformed OTLP/JSON logs request (counted and skipped; this is said once)",
		"fred otel-relay: records of a service that is not Claude Code, Codex or Gemini CLI (counted and skipped; this is said once)",
		"fred otel-relay: events of claude-code without an attribute the mapping needs (a version that renamed it?) (counted and skipped; this is said once)",
		"fred otel-relay: events of claude-code the relay does not know (a newer version?) (counted and skipped; this is said once)",
	} {
		if strings.Count(out, line) != 1 {
			t.Errorf("want once: %q in\n%s", line, out)
		}
	}
	if strings.Contains(out, canary) || strings.Contains(sink.String(), canary) || strings.Contains(out, "evil-cli") {
		t.Errorf("the text of bad input came out:\n%s\n%s", out, sink.String())
	}
	if sink.n != 0 {
		t.Errorf("%d records sent from bad input: %s", sink.n, sink.String())
	}
}

// TestBounds: a CLI that exports in bursts holds at most twice
// SessionBytes before its events are recorded or dropped (counted), and
// sessions beyond MaxSessions close the longest idle one.
func TestBounds(t *testing.T) {
	r, _, _ := memRelay(t, Options{SessionBytes: 8 << 10, MaxSessions: 3, Tick: time.Hour})
	defer r.Close(context.Background())
	prompt := strings.Repeat("x", 1000)
	for i := 0; i < 100; i++ {
		body := logsJSON("codex_exec", map[string]any{"conversation.id": "burst", "event.name": "codex.user_prompt", "prompt": prompt, "prompt_length": 1000})
		if w := post(r, "/v1/logs", "application/json", "", body); w.Code != 200 {
			t.Fatal(w.Code)
		}
		if held := r.heldBytes(); held > 2*(8<<10) {
			t.Fatalf("after %d requests the relay holds %d bytes", i+1, held)
		}
	}
	if st := r.Stats(); st.Overflow == 0 {
		t.Fatalf("a burst over the bound dropped nothing: %+v", st)
	}
	for i := 0; i < 5; i++ {
		post(r, "/v1/logs", "application/json", "", logsJSON("codex_exec", map[string]any{"conversation.id": fmt.Sprint("s", i), "event.name": "codex.user_prompt", "prompt_length": 3}))
	}
	if n, st := r.heldSessions(), r.Stats(); n != 3 || st.Evicted != 3 {
		t.Fatalf("%d sessions held, %+v", n, st)
	}
}

// TestConcurrentExports: CLIs exporting at once while the worker records
// (run with -race).
func TestConcurrentExports(t *testing.T) {
	r, sink, _ := memRelay(t, Options{Tick: time.Millisecond, Settle: time.Millisecond})
	reqs := fixtureRequests(t, fixturesDir(t)+"/gemini-full")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				for _, rq := range reqs {
					if c := send(r, rq, i%2 == 0); c != 200 {
						t.Errorf("%s: %d", rq.name, c)
					}
				}
			}
		}()
	}
	wg.Wait()
	r.Close(context.Background())
	if st := r.Stats(); st.Sessions == 0 || st.Closed != st.Sessions {
		t.Fatalf("%+v", st)
	}
	if !strings.Contains(sink.String(), `"agent":"gemini-cli"`) {
		t.Fatal("nothing recorded")
	}
}

// TestOffRecordsNothing: with telemetry off (DO_NOT_TRACK here; the
// same for --no-telemetry and the saved preference) the relay still
// answers the CLIs, and records nothing, writes nothing.
func TestOffRecordsNothing(t *testing.T) {
	sink := &memSink{}
	var stderr testkit.Buffer
	opts := centralTo(t, sink, &stderr)
	getenv := opts.Getenv
	opts.Getenv = func(k string) string {
		if k == "DO_NOT_TRACK" {
			return "1"
		}
		return getenv(k)
	}
	dir := getenv("FRED_CONFIG_DIR")
	before := testkit.Tree(dir)
	r := New(Options{Telemetry: opts, Stderr: &stderr})
	for _, rq := range fixtureRequests(t, fixturesDir(t)+"/claude-full") {
		if c := send(r, rq, false); c != 200 {
			t.Fatalf("%s: %d", rq.name, c)
		}
	}
	r.Close(context.Background())
	if st := r.Stats(); st.Sessions != 0 || st.Facts == 0 || sink.n != 0 || testkit.Tree(dir) != before {
		t.Fatalf("off: %+v, %d records sent, files changed: %v", st, sink.n, testkit.Tree(dir) != before)
	}
}

// TestSessionsEnd: the worker closes a session that went idle, and one
// whose CLI said it ended (Gemini's /quit) as soon as its events settled.
func TestSessionsEnd(t *testing.T) {
	for _, tc := range []struct {
		folder string
		idle   time.Duration
	}{{"gemini-full", 50 * time.Millisecond}, {"gemini-interactive", time.Hour}} {
		r, sink, _ := memRelay(t, Options{Tick: 5 * time.Millisecond, Settle: 20 * time.Millisecond, Idle: tc.idle})
		for _, rq := range fixtureRequests(t, fixturesDir(t)+"/"+tc.folder) {
			send(r, rq, false)
		}
		testkit.WaitFor(t, 10*time.Second, tc.folder+"'s session closed by the worker", func() bool { return r.Stats().Closed == 1 })
		if !strings.Contains(sink.String(), `"ended_at":"`) {
			t.Errorf("%s: no end recorded", tc.folder)
		}
		r.Close(context.Background())
	}
}

// TestFailedCalls: a failed model call is a retry when another attempt
// follows, and the error that ended its turn when none does.
func TestFailedCalls(t *testing.T) {
	r, sink, _ := memRelay(t, Options{Tick: time.Hour})
	// Each event a millisecond after the one before: the relay orders a
	// session's events by their own time.
	at := time.Now()
	ev := func(sid string, attrs map[string]any) {
		attrs["session.id"] = sid
		at = at.Add(time.Millisecond)
		if w := post(r, "/v1/logs", "application/json", "", logsJSONAt("claude-code", attrs, at)); w.Code != 200 {
			t.Fatal(w.Code)
		}
	}
	// Given up after two 529s.
	ev("a", map[string]any{"event.name": "user_prompt", "prompt_length": 10})
	ev("a", map[string]any{"event.name": "api_error", "attempt": 1, "status_code": 529, "duration_ms": 1, "model": "claude-opus-4-8"})
	ev("a", map[string]any{"event.name": "api_error", "attempt": 2, "status_code": 529, "duration_ms": 1, "model": "claude-opus-4-8"})
	// A 429, then the call went through.
	ev("b", map[string]any{"event.name": "user_prompt", "prompt_length": 10})
	ev("b", map[string]any{"event.name": "api_error", "attempt": 1, "status_code": 429, "duration_ms": 1, "model": "claude-opus-4-8"})
	ev("b", map[string]any{"event.name": "api_request", "model": "claude-opus-4-8", "duration_ms": 1, "input_tokens": 5, "output_tokens": 2})
	r.Close(context.Background())

	var turns, events []string
	dec := json.NewDecoder(strings.NewReader(sink.String()))
	for dec.More() {
		var b telemetry.RemoteBatch
		if err := dec.Decode(&b); err != nil {
			t.Fatal(err)
		}
		for _, tr := range b.Turns {
			turns = append(turns, fmt.Sprintf("%s/%s/%d", tr.FinishReason, tr.APIErrorType, tr.PromptChars))
		}
		for _, e := range b.Events {
			js, _ := json.Marshal(e.Props)
			events = append(events, e.Name+string(js))
		}
	}
	sort.Strings(turns)
	sort.Strings(events)
	wantTurns := []string{"error/overloaded/10", "stop//10"}
	wantEvents := []string{`api_retry{"attempt":1,"delay_ms":0,"error_type":"overloaded","status":529,"latency_ms":1}`,
		`api_retry{"attempt":1,"delay_ms":0,"error_type":"rate_limit","status":429,"latency_ms":1}`}
	if fmt.Sprint(turns) != fmt.Sprint(wantTurns) || fmt.Sprint(events) != fmt.Sprint(wantEvents) {
		t.Fatalf("turns %v\nwant  %v\nevents %v\nwant   %v", turns, wantTurns, events, wantEvents)
	}
}
