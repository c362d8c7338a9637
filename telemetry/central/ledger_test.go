package central_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
)

// tally counts what sessions recorded, table by table, and what their
// counters said.
type tally struct {
	sessions, turns, calls, events int
	recorded, written, spooled     int64
	spoolingSessions               int // sessions that left records in the spool
}

func (a *tally) add(b tally) {
	a.sessions += b.sessions
	a.turns += b.turns
	a.calls += b.calls
	a.events += b.events
	a.recorded += b.recorded
	a.written += b.written
	a.spooled += b.spooled
	a.spoolingSessions += b.spoolingSessions
}

// ledgerSession runs one session against api: turns with tool calls and
// events, a pause between turns so batches are in flight while the server
// dies, then Close. It returns what it recorded, or an error when the
// session's counters say something was lost.
func ledgerSession(dir, api string, rng *rand.Rand, live time.Duration) (tally, error) {
	s := start(dir, api, &testkit.Buffer{}, 200*time.Millisecond)
	var c tally
	c.sessions = 1
	turns := 2 + rng.IntN(3)
	for i := 0; i < turns; i++ {
		tr := s.BeginTurn("act", "fred-flash-2")
		calls := rng.IntN(4)
		for j := 0; j < calls; j++ {
			tr.ToolCall(telemetry.ToolCall{Name: "read_file", Args: []byte(fmt.Sprintf(`{"path":"f%d.go"}`, j)), Result: "package x",
				Permission: "auto_allowed", Duration: time.Millisecond})
		}
		tr.End(telemetry.TurnResult{PromptTokens: 100, CompletionTokens: 20, FinishReason: "stop", UserInput: "secret prompt", AssistantText: "secret answer"})
		s.SlashCommand("/help")
		c.turns++
		c.calls += calls
		c.events++
		if rng.IntN(3) == 0 {
			s.ModeChange("act", "plan")
			c.events++
		}
		time.Sleep(live / time.Duration(turns))
	}
	s.Close(context.Background())
	// Close keeps its budget whatever the sender does; the session's
	// goroutine may still be spooling. Every record ends written, spooled
	// or dropped: wait for that, briefly.
	st := s.Stats()
	for deadline := time.Now().Add(3 * time.Second); st.Written+st.Spooled+st.Dropped < st.Recorded && time.Now().Before(deadline); st = s.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	c.recorded, c.written, c.spooled = st.Recorded, st.Written, st.Spooled
	if st.Spooled > 0 {
		c.spoolingSessions = 1
	}
	made := int64(c.turns + c.calls + c.events + 2) // the session's start and end are 2 records, 1 row
	switch {
	case st.Dropped != 0 || st.Panics != 0:
		return c, fmt.Errorf("session lost records: %+v", st)
	case st.Recorded != made:
		return c, fmt.Errorf("session recorded %d records, the test made %d: %+v", st.Recorded, made, st)
	case st.Written+st.Spooled != st.Recorded:
		return c, fmt.Errorf("session records neither written nor spooled: %+v", st)
	}
	return c, nil
}

// TestLedgerExactlyOnceThroughCrashes: concurrent sessions record a known
// number of records while the ingest server is SIGKILLed and restarted and
// PostgreSQL restarts; records that could not be sent wait in the spool and
// later sessions deliver them. In the end every record is in the database
// exactly once: the counts per table equal the ledger, no session lacks its
// end, no (session, seq) is doubled, and every session's counters show
// nothing dropped.
func TestLedgerExactlyOnceThroughCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts servers for ~15 s")
	}
	t0 := time.Now()
	cluster := testdb.StartCluster(t)
	db := cluster.URL()
	// A generous rate limit: this test is about crashes, not 429s.
	serverArgs := []string{"--rate", "1000", "--burst", "1000", "--log-format", "text"}

	var (
		urlMu  sync.Mutex
		apiURL string
		proc   *testkit.Process
	)
	startServer := func() {
		p := testkit.StartServer(t, db, "", serverArgs...)
		urlMu.Lock()
		proc, apiURL = p, "http://"+p.URL
		urlMu.Unlock()
	}
	currentURL := func() string { urlMu.Lock(); defer urlMu.Unlock(); return apiURL }
	startServer()
	key := testkit.CreateKey(t, db, "ledger")

	const workers = 4
	const minSessions = 40
	dirs := make([]string, workers)
	for i := range dirs {
		dirs[i] = fixture.LoggedIn(t, key)
	}

	var (
		mu        sync.Mutex
		total     tally
		completed atomic.Int64
		stop      = make(chan struct{})
		stopOnce  sync.Once
		wg        sync.WaitGroup
	)
	stopWorkers := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer stopWorkers() // also when a t.Fatal below ends the test early
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := ledgerSession(dirs[w], currentURL(), rng, time.Duration(80+rng.IntN(160))*time.Millisecond)
				mu.Lock()
				total.add(c)
				mu.Unlock()
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
				}
				completed.Add(1)
			}
		}(w)
	}

	// The chaos, on the test goroutine: each event waits for a few more
	// sessions and some time, so sessions straddle every event.
	progress := func(sessions int64, gap time.Duration) {
		from := completed.Load()
		t1 := time.Now()
		for deadline := t1.Add(20 * time.Second); time.Now().Before(deadline); {
			if completed.Load()-from >= sessions && time.Since(t1) >= gap {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("sessions stopped: %d completed", completed.Load())
	}
	kills, pgRestarts := 0, 0
	killServer := func() {
		urlMu.Lock()
		p := proc
		urlMu.Unlock()
		if err := p.Kill(); err != nil {
			t.Fatalf("kill the server: %v", err)
		}
		kills++
	}
	kill := func() {
		killServer()
		// Down for a while: sessions that end now must spool.
		time.Sleep(300 * time.Millisecond)
		startServer()
	}
	chaos := []struct {
		name string
		do   func()
	}{
		{"SIGKILL server", kill},
		{"SIGKILL server", kill},
		{"restart PostgreSQL", func() { cluster.Restart(t); pgRestarts++ }},
	}
	for _, ev := range chaos {
		progress(4, 700*time.Millisecond)
		t2 := time.Now()
		ev.do()
		t.Logf("%6.2fs %s (%v), %d sessions so far", time.Since(t0).Seconds(), ev.name, time.Since(t2).Round(time.Millisecond), completed.Load())
	}
	// The last kill ends the chaos: the sessions running then, and those
	// that start while the server is down, leave their records in the
	// spool, and only the drain below can deliver them.
	progress(4, 700*time.Millisecond)
	for deadline := time.Now().Add(20 * time.Second); completed.Load() < minSessions && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	killServer()
	t.Logf("%6.2fs SIGKILL server, %d sessions so far; the workers stop while it is down", time.Since(t0).Seconds(), completed.Load())
	progress(4, 300*time.Millisecond)
	stopWorkers()
	startServer()
	chaosEnd := time.Now()
	mu.Lock()
	chaosTally := total
	mu.Unlock()
	if chaosTally.spooled == 0 {
		t.Errorf("no session spooled anything: the chaos missed (%+v)", chaosTally)
	}
	spooledBefore := 0
	for _, d := range dirs {
		b, _ := central.SpoolSize(d)
		spooledBefore += b
	}

	// Drain: sessions against the live server deliver each dir's spool in
	// the background while they run, and at Close.
	var dwg sync.WaitGroup
	drainSessions := make([]int, workers)
	for w, d := range dirs {
		dwg.Add(1)
		go func(w int, d string) {
			defer dwg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				if b, _ := central.SpoolSize(d); b == 0 {
					return
				}
				s := start(d, currentURL(), &testkit.Buffer{}, 200*time.Millisecond)
				for until := time.Now().Add(400 * time.Millisecond); time.Now().Before(until); {
					if b, _ := central.SpoolSize(d); b == 0 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(time.Duration(20+rng.IntN(20)) * time.Millisecond)
				s.Close(context.Background())
				st := s.Stats()
				for until := time.Now().Add(3 * time.Second); st.Written+st.Spooled+st.Dropped < st.Recorded && time.Now().Before(until); st = s.Stats() {
					time.Sleep(10 * time.Millisecond)
				}
				mu.Lock()
				total.add(tally{sessions: 1, recorded: st.Recorded, written: st.Written, spooled: st.Spooled})
				mu.Unlock()
				drainSessions[w]++
				if st.Dropped != 0 || st.Panics != 0 || st.Recorded != 2 || st.Written+st.Spooled != st.Recorded {
					t.Errorf("drain session of dir %d: %+v", w, st)
				}
			}
		}(w, d)
	}
	dwg.Wait()
	for w, d := range dirs {
		if b, n := central.SpoolSize(d); b != 0 {
			t.Errorf("dir %d: %d batches (%d bytes) still spooled after the drain", w, b, n)
		}
	}

	// The ledger against the rows.
	got := map[string]int{}
	for _, tb := range []string{"telemetry_sessions", "telemetry_turns", "telemetry_tool_calls", "telemetry_events"} {
		got[tb] = testdb.QueryInt(t, db, "SELECT count(*) FROM "+tb)
	}
	want := map[string]int{"telemetry_sessions": total.sessions, "telemetry_turns": total.turns,
		"telemetry_tool_calls": total.calls, "telemetry_events": total.events}
	t.Logf("%d sessions (%d during the chaos, %v; drain %v), %d records; %d server kills, %d PostgreSQL restarts",
		total.sessions, chaosTally.sessions, chaosEnd.Sub(t0).Round(time.Millisecond), time.Since(chaosEnd).Round(time.Millisecond),
		total.recorded, kills, pgRestarts)
	t.Logf("%d records written by their session, %d spooled by %d sessions (%d batches in the spools after the chaos), drained by %v sessions",
		total.written, total.spooled, total.spoolingSessions, spooledBefore, drainSessions)
	t.Logf("rows: %v; ledger: %v", got, want)
	dups := "?"
	if m, err := testkit.Metrics(context.Background(), currentURL()); err == nil {
		dups = fmt.Sprint(m[`fredtel_records_total{result="duplicate"}`])
	}
	t.Logf("the last server (the drain) found %s records already stored (deliveries whose answer was lost)", dups)
	for tb, n := range want {
		if got[tb] != n {
			t.Errorf("%s: %d rows, the ledger says %d (%+d)", tb, got[tb], n, got[tb]-n)
		}
	}
	if n := testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_sessions WHERE ended_at IS NULL"); n != 0 {
		t.Errorf("%d sessions without their end", n)
	}
	if n := testdb.QueryInt(t, db, "SELECT count(*) FROM (SELECT session_id, seq FROM telemetry_turns GROUP BY 1, 2 HAVING count(*) > 1) d"); n != 0 {
		t.Errorf("%d (session_id, seq) pairs doubled in telemetry_turns", n)
	}
	if n := testdb.QueryInt(t, db, "SELECT count(*) FROM (SELECT turn_id, seq FROM telemetry_tool_calls GROUP BY 1, 2 HAVING count(*) > 1) d"); n != 0 {
		t.Errorf("%d (turn_id, seq) pairs doubled in telemetry_tool_calls", n)
	}
	if kills < 3 || pgRestarts < 1 {
		t.Errorf("%d kills, %d PostgreSQL restarts", kills, pgRestarts)
	}
	if t.Failed() {
		urlMu.Lock()
		t.Logf("last server's log:\n%s", proc.Stderr())
		urlMu.Unlock()
	}
}
