package central_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func start(dir, api string, stderr *testkit.Buffer, budget time.Duration) *telemetry.Session {
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api}
	return telemetry.Start(telemetry.Options{
		FredVersion: "1.4.2", Getenv: func(k string) string { return env[k] }, Stderr: stderr,
		NewCentral: central.New, FlushInterval: 20 * time.Millisecond, CloseBudget: budget,
	}, telemetry.SessionInfo{Model: "fred-flash-2", Tools: []string{"read_file"}, Commands: []string{"help"}})
}

// record makes n turns of 4 tool calls; it returns the records made.
func record(s *telemetry.Session, n int) int {
	for i := 0; i < n; i++ {
		tr := s.BeginTurn("act", "fred-flash-2")
		for j := 0; j < 4; j++ {
			tr.ToolCall(telemetry.ToolCall{Name: "read_file", Args: []byte(fmt.Sprintf(`{"path":"f%d.go"}`, j)), Result: "package x", Permission: "auto_allowed"})
		}
		tr.End(telemetry.TurnResult{FinishReason: "stop", UserInput: "secret prompt", AssistantText: "secret answer"})
		s.SlashCommand("/help")
	}
	return n * 6
}

const key = "fred_live_0123456789abcdefghijKLMN"

// TestEndToEnd: a session through the real server into PostgreSQL; `show`
// prints exactly what the server stored for the last batch.
func TestEndToEnd(t *testing.T) {
	db := testdb.Postgres(t)
	p := testkit.StartServer(t, db, "")
	k := testkit.CreateKey(t, db, "alice")
	dir := fixture.LoggedIn(t, k)
	var stderr testkit.Buffer
	s := start(dir, "http://"+p.URL, &stderr, time.Second)
	n := record(s, 5)
	s.Close(context.Background())
	st := s.Stats()
	if st.Written != int64(n)+2 || st.Dropped != 0 || stderr.String() != "" {
		t.Fatalf("stats %+v, stderr %q", st, stderr.String())
	}
	if got := testdb.Rows(t, db); got != n+1 { // the session's two records are one row
		t.Fatalf("%d rows, want %d", got, n+1)
	}
	if testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_sessions WHERE ended_at IS NOT NULL AND user_id = 'alice'") != 1 {
		t.Fatal("the session's end did not arrive")
	}
	var out bytes.Buffer
	if c, err := central.Show(dir, &out); err != nil || c == 0 {
		t.Fatalf("show: %d %v", c, err)
	}
	if strings.Contains(out.String(), "secret") {
		t.Fatalf("the audit log holds text:\n%s", out.String())
	}
	// The last batch shown: every tool call in it is in the database with
	// the same fingerprint and size.
	last := out.String()[strings.LastIndex(out.String(), "# sent"):]
	last = last[strings.Index(last, "\n")+1:]
	var b struct {
		ToolCalls []struct {
			CallID          string `json:"call_id"`
			ArgsFingerprint string `json:"args_fingerprint"`
			ResultBytes     int    `json:"result_bytes"`
		} `json:"tool_calls"`
		Sessions []json.RawMessage `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(last), &b); err != nil {
		t.Fatalf("the last shown batch is not JSON: %v\n%s", err, last)
	}
	for _, c := range b.ToolCalls {
		q := fmt.Sprintf("SELECT count(*) FROM telemetry_tool_calls WHERE call_id = '%s' AND args_fingerprint = '%s' AND result_bytes = %d",
			c.CallID, c.ArgsFingerprint, c.ResultBytes)
		if testdb.QueryInt(t, db, q) != 1 {
			t.Fatalf("shown tool call %s is not what the server stored", c.CallID)
		}
	}
	if len(b.ToolCalls)+len(b.Sessions) == 0 {
		t.Fatal("the last batch shown is empty")
	}
}

// TestBlackholeCloseKeepsItsBudget: an endpoint that accepts and never
// answers costs Close its budget and no more; the records wait in the
// spool and the next session delivers them.
func TestBlackholeCloseKeepsItsBudget(t *testing.T) {
	const budget = 100 * time.Millisecond
	dir := fixture.LoggedIn(t, key)
	hole, accepted := testkit.Listener(t, nil)
	var best time.Duration = time.Hour
	total := 0
	for attempt := 0; attempt < 3; attempt++ { // the fastest of 3: the machine is shared
		s := start(dir, hole, &testkit.Buffer{}, budget)
		total += record(s, 3) + 2
		// A send is in flight, stuck on the blackhole.
		testkit.WaitFor(t, 5*time.Second, "a send to the blackhole", func() bool { return len(accepted()) > attempt })
		t0 := time.Now()
		s.Close(context.Background())
		best = min(best, time.Since(t0))
		if st := s.Stats(); st.Spooled == 0 {
			t.Fatalf("nothing spooled: %+v", st)
		}
	}
	t.Logf("Close against a blackhole: %v (budget %v)", best, budget)
	if best > budget+20*time.Millisecond {
		t.Fatalf("Close took %v, over the budget %v + 20 ms", best, budget)
	}
	batches, _ := central.SpoolSize(dir)
	if batches == 0 {
		t.Fatal("the spool is empty")
	}
	fi, err := os.Stat(filepath.Join(dir, "spool"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool folder mode %v %v", fi.Mode(), err)
	}

	db := testdb.Postgres(t)
	p := testkit.StartServer(t, db, "")
	k := testkit.CreateKey(t, db, "alice")
	telemetry.SaveCredentials(dir, telemetry.Credentials{APIKey: k})
	s := start(dir, "http://"+p.URL, &testkit.Buffer{}, time.Second)
	deadline := time.Now().Add(5 * time.Second) // delivered in the background while the session runs
	for b, _ := central.SpoolSize(dir); b > 0 && time.Now().Before(deadline); b, _ = central.SpoolSize(dir) {
		time.Sleep(20 * time.Millisecond)
	}
	s.Close(context.Background())
	if b, _ := central.SpoolSize(dir); b != 0 {
		t.Fatalf("%d batches still spooled", b)
	}
	// 3 spooled sessions (their 2 records each are 1 row) + the new one.
	if got, want := testdb.Rows(t, db), total-3+1; got != want {
		t.Fatalf("%d rows delivered from the spool, want %d", got, want)
	}
}

// scripted is a loopback ingest API answering from a script, then
// accepting; it records the time, the User-Agent and the decompressed body
// of every request.
type scripted struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter)
	times   []time.Time
	agents  []string
	bodies  []string
}

func (sc *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var body []byte
	if zr, err := gzip.NewReader(r.Body); err == nil {
		body, _ = io.ReadAll(zr)
	}
	sc.mu.Lock()
	sc.times = append(sc.times, now)
	sc.agents = append(sc.agents, r.Header.Get("User-Agent"))
	sc.bodies = append(sc.bodies, string(body))
	var a func(http.ResponseWriter)
	if len(sc.answers) > 0 {
		a, sc.answers = sc.answers[0], sc.answers[1:]
	}
	sc.mu.Unlock()
	if a == nil {
		w.Write([]byte(`{"accepted":1,"duplicates":0}`))
		return
	}
	a(w)
}

func (sc *scripted) requests() []time.Time {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]time.Time(nil), sc.times...)
}

func (sc *scripted) posted() []string {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return append([]string(nil), sc.bodies...)
}

func status(code int, hdr ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(code)
		w.Write([]byte(`{"error":"scripted"}`))
	}
}

func scriptedServer(t *testing.T, answers ...func(http.ResponseWriter)) (*scripted, string) {
	sc := &scripted{answers: answers}
	srv := httptest.NewServer(sc)
	t.Cleanup(srv.Close)
	return sc, srv.URL
}

// TestRetryAfterIsHonoured: after 429 or 503 with Retry-After: 1, the next
// attempt comes no sooner than a second later.
func TestRetryAfterIsHonoured(t *testing.T) {
	for _, code := range []int{429, 503} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			sc, url := scriptedServer(t, status(code, "Retry-After", "1"))
			s := start(fixture.LoggedIn(t, key), url, &testkit.Buffer{}, time.Second)
			record(s, 1)
			deadline := time.Now().Add(5 * time.Second)
			for len(sc.requests()) < 2 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			s.Close(context.Background())
			times := sc.requests()
			if len(times) < 2 {
				t.Fatalf("%d requests: no retry", len(times))
			}
			gap := times[1].Sub(times[0])
			t.Logf("%d, Retry-After 1: retried after %v", code, gap)
			if gap < time.Second {
				t.Fatalf("retried after %v, before the server's Retry-After", gap)
			}
			if st := s.Stats(); st.Written == 0 {
				t.Fatalf("never delivered: %+v", st)
			}
		})
	}
}

// TestAnswersThatStopOrDrop: 400 is dropped and never retried; 401, 422 and
// 426 stop sending for the session and keep the records for the spool; 426
// shows the upgrade notice once.
func TestAnswersThatStopOrDrop(t *testing.T) {
	for _, c := range []struct {
		code      int
		wantSpool bool
		notice    string
	}{
		{400, false, ""},
		{401, true, ""},
		{422, true, ""},
		{426, true, "upgrade to 9.9.9"},
	} {
		t.Run(fmt.Sprint(c.code), func(t *testing.T) {
			answer := status(c.code)
			if c.code == 426 {
				answer = func(w http.ResponseWriter) { w.WriteHeader(426); w.Write([]byte(`{"min_version":"9.9.9"}`)) }
			}
			// Every answer is the same failure.
			sc, url := scriptedServer(t, answer, answer, answer, answer, answer, answer, answer, answer)
			dir := fixture.LoggedIn(t, key)
			var stderr testkit.Buffer
			s := start(dir, url, &stderr, time.Second)
			record(s, 2)
			testkit.WaitFor(t, 5*time.Second, "the first answer", func() bool { return len(sc.requests()) >= 1 })
			record(s, 2)
			if c.code == 400 { // dropped, so the next batch goes out; a stopped session sends nothing more
				testkit.WaitFor(t, 5*time.Second, "the second batch", func() bool { return len(sc.requests()) >= 2 })
			}
			s.Close(context.Background())
			n := len(sc.requests())
			spooled, _ := central.SpoolSize(dir)
			st := s.Stats()
			switch c.code {
			case 400:
				if n < 2 || st.Dropped == 0 || spooled != 0 {
					t.Fatalf("400: %d requests, stats %+v, %d spooled; want each batch sent once and dropped", n, st, spooled)
				}
			default:
				if n != 1 {
					t.Fatalf("%d: %d requests; want one, then no more this session", c.code, n)
				}
				if spooled == 0 || st.Spooled == 0 {
					t.Fatalf("%d: nothing kept for the next session: %+v", c.code, st)
				}
			}
			if c.notice != "" && strings.Count(stderr.String(), c.notice) != 1 {
				t.Fatalf("notice %q not shown once: %q", c.notice, stderr.String())
			}
		})
	}
}

// TestTurnOffDeletesTheSpool: `fred telemetry off` (and /telemetry off)
// leave nothing unsent on disk.
func TestTurnOffDeletesTheSpool(t *testing.T) {
	dir := fixture.LoggedIn(t, key)
	s := start(dir, testkit.Blackhole(t), &testkit.Buffer{}, 300*time.Millisecond)
	record(s, 2)
	s.Close(context.Background())
	if b, _ := central.SpoolSize(dir); b == 0 {
		t.Fatal("nothing spooled")
	}
	s = start(dir, testkit.Blackhole(t), &testkit.Buffer{}, 50*time.Millisecond)
	s.HandleSlash("off")
	s.Close(context.Background())
	if b, _ := central.SpoolSize(dir); b != 0 {
		t.Fatalf("%d batches left in the spool after /telemetry off", b)
	}
}

// TestConnectionErrorsBackOff: a server that drops every connection is
// retried with exponential backoff, not at every flush tick.
func TestConnectionErrorsBackOff(t *testing.T) {
	url, accepted := testkit.Listener(t, func(c net.Conn) { c.Close() })
	s := start(fixture.LoggedIn(t, key), url, &testkit.Buffer{}, 100*time.Millisecond)
	record(s, 1)
	time.Sleep(3 * time.Second) // the window measured: 150 flush ticks of 20 ms
	s.Close(context.Background())
	n := len(accepted())
	t.Logf("%d connection attempts in 3 s of a server dropping connections", n)
	// 1 s, 2 s doubling with full jitter: a handful, never one per tick.
	if n < 2 || n > 10 {
		t.Fatalf("%d attempts in 3 s: want backoff (2 to 10)", n)
	}
	if st := s.Stats(); st.Spooled == 0 || st.Failures < 2 {
		t.Fatalf("stats %+v: want failures and the records spooled", st)
	}
}

// TestTwoProcessesShareOneSpool: two sessions on one config dir deliver a
// backlog together; each spooled batch is sent exactly once.
func TestTwoProcessesShareOneSpool(t *testing.T) {
	dir := fixture.LoggedIn(t, key)
	hole := testkit.Blackhole(t)
	for i := 0; i < 6; i++ {
		s := start(dir, hole, &testkit.Buffer{}, 300*time.Millisecond)
		record(s, 2)
		s.Close(context.Background())
	}
	spooled := map[string]bool{}
	entries, _ := os.ReadDir(filepath.Join(dir, "spool"))
	for _, e := range entries {
		body, err := os.ReadFile(filepath.Join(dir, "spool", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			BatchID string `json:"batch_id"`
		}
		json.Unmarshal(body, &b)
		spooled[b.BatchID] = true
	}
	if len(spooled) < 6 {
		t.Fatalf("%d batches spooled, want at least 6", len(spooled))
	}
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		var b struct {
			BatchID string `json:"batch_id"`
		}
		json.NewDecoder(zr).Decode(&b)
		mu.Lock()
		seen[b.BatchID]++
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // let the two senders overlap
		w.Write([]byte(`{"accepted":1,"duplicates":0}`))
	}))
	defer srv.Close()
	var wg sync.WaitGroup
	for p := 0; p < 2; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := start(dir, srv.URL, &testkit.Buffer{}, time.Second)
			deadline := time.Now().Add(10 * time.Second)
			for b, _ := central.SpoolSize(dir); b > 0 && time.Now().Before(deadline); b, _ = central.SpoolSize(dir) {
				time.Sleep(20 * time.Millisecond)
			}
			s.Close(context.Background())
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for id := range spooled {
		if seen[id] != 1 {
			t.Errorf("spooled batch %s was sent %d times", id, seen[id])
		}
	}
}
