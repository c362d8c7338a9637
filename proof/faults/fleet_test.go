package faults_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
)

// sessionCfg shapes the sessions a client runs.
type sessionCfg struct {
	turns       [2]int           // turns per session, from [0] to [1]
	think       [2]time.Duration // pause between turns, from [0] to [1]
	flush       time.Duration    // Options.FlushInterval
	closeBudget time.Duration    // Options.CloseBudget (0: the default, 100 ms)
	maxBatch    int              // Options.MaxBatch (0: the default)
}

// client is one user: a config dir, logged in with a key of its own, that
// has seen the notice.
type client struct {
	n   int
	dir string
	rng *rand.Rand
}

func newClient(t testing.TB, n int, key string) *client {
	t.Helper()
	return &client{n: n, dir: fixture.LoggedIn(t, key), rng: rand.New(rand.NewPCG(uint64(n), uint64(time.Now().UnixNano())))}
}

// start starts a session of c against api.
func (c *client) start(api string, cfg sessionCfg, stderr *testkit.Buffer) (*telemetry.Session, *recSink) {
	env := map[string]string{"FRED_CONFIG_DIR": c.dir, "FRED_API_URL": api}
	got := make(chan *recSink, 1)
	s := telemetry.Start(telemetry.Options{
		FredVersion: "1.4.2", Getenv: func(k string) string { return env[k] }, Stderr: stderr,
		NewCentral: newCentral(got), FlushInterval: cfg.flush, CloseBudget: cfg.closeBudget, MaxBatch: cfg.maxBatch,
	}, telemetry.SessionInfo{Model: "fred-flash-2", Tools: []string{"read_file", "bash", "edit"}, Commands: []string{"help", "model", "plan"}})
	select {
	case r := <-got:
		return s, r
	default:
		return s, nil // the route is not central: the caller fails
	}
}

// outcome is what one session recorded and what became of it.
type outcome struct {
	made    counts // records made by kind (a session's start and end are one id)
	st      telemetry.Stats
	sink    *recSink
	maxCall time.Duration // the slowest recording call
	close   time.Duration // how long Close took
	stderr  string        // what the session said
	ended   time.Time
}

// session runs one session: turns of tool calls and events, with think
// time between them, then Close; stop cuts the session short (it still
// ends properly).
func (c *client) session(api string, cfg sessionCfg, stop <-chan struct{}) (outcome, error) {
	var o outcome
	var stderr testkit.Buffer
	s, sink := c.start(api, cfg, &stderr)
	if sink == nil {
		s.Close(context.Background())
		return o, fmt.Errorf("client %d: the session did not start its central sender: %s", c.n, s.Route().Status())
	}
	o.sink = sink
	o.made[kSession] = 1
	timed := func(f func()) {
		t0 := time.Now()
		f()
		o.maxCall = max(o.maxCall, time.Since(t0))
	}
	turns := cfg.turns[0] + c.rng.IntN(cfg.turns[1]-cfg.turns[0]+1)
	mode := "act"
turns:
	for i := 0; i < turns; i++ {
		var tr *telemetry.Turn
		timed(func() { tr = s.BeginTurn(mode, "fred-flash-2") })
		calls := c.rng.IntN(4)
		for j := 0; j < calls; j++ {
			name := [...]string{"read_file", "bash", "edit"}[c.rng.IntN(3)]
			timed(func() {
				tr.ToolCall(telemetry.ToolCall{Name: name, Args: []byte(`{"path":"f` + strconv.Itoa(c.rng.IntN(50)) + `.go"}`),
					Result: "package x", Permission: "auto_allowed", Failed: c.rng.IntN(10) == 0, Duration: time.Millisecond})
			})
		}
		timed(func() {
			tr.End(telemetry.TurnResult{PromptTokens: 1200, CompletionTokens: 80, FinishReason: "stop",
				UserInput: "secret prompt", AssistantText: "secret answer"})
		})
		o.made[kTurn]++
		o.made[kCall] += calls
		switch c.rng.IntN(4) {
		case 0:
			timed(func() { s.SlashCommand("/help") })
			o.made[kEvent]++
		case 1:
			next := map[string]string{"act": "plan", "plan": "act"}[mode]
			timed(func() { s.ModeChange(mode, next) })
			mode = next
			o.made[kEvent]++
		case 2:
			timed(func() {
				s.APIRetry(telemetry.Retry{Attempt: 1, Delay: 500 * time.Millisecond, Latency: 80 * time.Millisecond, ErrorType: "rate_limit", Status: 429})
			})
			o.made[kEvent]++
		}
		pause := cfg.think[0] + time.Duration(c.rng.Int64N(int64(cfg.think[1]-cfg.think[0])+1))
		select {
		case <-stop:
			break turns
		case <-time.After(pause):
		}
	}
	t0 := time.Now()
	s.Close(context.Background())
	o.close = time.Since(t0)
	if !sink.wait(10 * time.Second) {
		return o, fmt.Errorf("client %d: the session's goroutine still had its sender 10 s after Close", c.n)
	}
	o.st = s.Stats()
	o.ended = time.Now()
	o.stderr = stderr.String()
	return o, nil
}

// mustDeliver reports what is wrong with a session that ran against a
// server that may die but whose spool is healthy: nothing may be dropped,
// everything made must have reached the sender, and every record ends
// written or spooled.
func (o outcome) mustDeliver() error {
	st := o.st
	o.sink.mu.Lock()
	got := kinds(o.sink.seen)
	unspooled := len(o.sink.unspooled)
	o.sink.mu.Unlock()
	made := o.made
	switch {
	case st.Dropped != 0 || st.Panics != 0 || unspooled != 0:
		o.sink.mu.Lock()
		defer o.sink.mu.Unlock()
		return fmt.Errorf("session lost records: %+v (%d could not be spooled; Close took %v, ended %s; its sender: %q; it said %q)",
			st, unspooled, o.close, o.ended.Format("15:04:05.000"), o.sink.trace, o.stderr)
	case st.Recorded != int64(made.total()+1): // start and end: two records, one id
		return fmt.Errorf("session recorded %d records, the test made %d: %+v", st.Recorded, made.total()+1, st)
	case got != made:
		return fmt.Errorf("the sender was handed %v, the test made %v", got, made)
	case st.Written+st.Spooled != st.Recorded:
		return fmt.Errorf("records neither written nor spooled: %+v", st)
	}
	return nil
}

// fleet is clients each running sessions back to back until stopped.
type fleet struct {
	t       *testing.T
	clients []*client
	led     *ledger
	stop    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	errs     []string
	nErrs    int
	recorded int64
	spooled  int64
	sessions int

	completed atomic.Int64
}

func newFleet(t *testing.T, clients []*client, led *ledger) *fleet {
	return &fleet{t: t, clients: clients, led: led, stop: make(chan struct{})}
}

// run starts every client on sessions against api; Stop ends them.
func (f *fleet) run(api string, cfg sessionCfg) {
	for _, c := range f.clients {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for {
				select {
				case <-f.stop:
					return
				default:
				}
				o, err := c.session(api, cfg, f.stop)
				if err == nil {
					err = o.mustDeliver()
				}
				f.account(o, err)
			}
		}()
	}
}

func (f *fleet) account(o outcome, err error) {
	if o.sink != nil {
		o.sink.mu.Lock()
		f.led.add(o.sink.seen)
		o.sink.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions++
	f.recorded += o.st.Recorded
	f.spooled += o.st.Spooled
	if err != nil {
		f.nErrs++
		if len(f.errs) < 5 {
			f.errs = append(f.errs, err.Error())
		}
	}
	f.completed.Add(1)
}

// Stop stops the clients; each ends its session properly first.
func (f *fleet) Stop() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.wg.Wait()
}

// report fails the test with the sessions' errors, a few of them.
func (f *fleet) report() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nErrs > 0 {
		f.t.Errorf("%d of %d sessions went wrong; the first: %s", f.nErrs, f.sessions, strings.Join(f.errs, "; "))
	}
}

// drain delivers what the clients' spools still hold: sessions against the
// live server send earlier sessions' batches in the background, a few per
// flush tick. It returns the sessions it took.
func (f *fleet) drain(api string, within time.Duration) int {
	f.t.Helper()
	cfg := sessionCfg{flush: 20 * time.Millisecond, closeBudget: closeBudget}
	var wg sync.WaitGroup
	var n atomic.Int64
	deadline := time.Now().Add(within)
	for _, c := range f.clients {
		if b, _ := central.SpoolSize(c.dir); b == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if b, _ := central.SpoolSize(c.dir); b == 0 {
					return
				}
				var stderr testkit.Buffer
				s, sink := c.start(api, cfg, &stderr)
				for until := time.Now().Add(2 * time.Second); time.Now().Before(until); time.Sleep(10 * time.Millisecond) {
					if b, _ := central.SpoolSize(c.dir); b == 0 {
						break
					}
				}
				s.Close(context.Background())
				n.Add(1)
				var o outcome
				o.made[kSession] = 1
				o.sink = sink
				var err error
				switch {
				case sink == nil:
					err = fmt.Errorf("drain session of client %d did not start its sender", c.n)
				case !sink.wait(10 * time.Second):
					err = fmt.Errorf("drain session of client %d: still running 10 s after Close", c.n)
				default:
					o.st = s.Stats()
					err = o.mustDeliver()
				}
				f.account(o, err)
			}
		}()
	}
	wg.Wait()
	for _, c := range f.clients {
		if b, bytes := central.SpoolSize(c.dir); b != 0 {
			f.t.Errorf("client %d: %d batches (%d bytes) still spooled after draining for %v", c.n, b, bytes, within)
		}
	}
	return int(n.Load())
}

func newClients(t testing.TB, db string, n int) []*client {
	t.Helper()
	// Straight through the store (the server has migrated db): a process
	// per key would cost seconds.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	keys, err := sim.CreateKeys(ctx, db, n)
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]*client, n)
	for i := range cs {
		cs[i] = newClient(t, i, keys[i].Key)
	}
	return cs
}

// serverCtl runs the real fredtel serve behind the proxy and can SIGKILL it.
type serverCtl struct {
	t    *testing.T
	db   string
	args []string
	px   *proxy

	mu    sync.Mutex
	proc  *testkit.Process
	kills int
}

func startServer(t *testing.T, db string, px *proxy, args ...string) *serverCtl {
	s := &serverCtl{t: t, db: db, args: args, px: px}
	s.start()
	return s
}

func (s *serverCtl) start() {
	s.t.Helper()
	p := testkit.StartServer(s.t, s.db, "", s.args...)
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	s.px.setTarget(s.t, "http://"+p.URL)
}

// kill SIGKILLs the server and reaps it.
func (s *serverCtl) kill() {
	s.t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if err := p.Kill(); err != nil {
		s.t.Fatalf("kill the server: %v", err)
	}
	s.kills++
}

// peakRSS is the server's peak resident set (VmHWM) in bytes.
func (s *serverCtl) peakRSS() int64 {
	s.mu.Lock()
	pid := s.proc.Cmd.Process.Pid
	s.mu.Unlock()
	kib, err := testkit.ProcStatusKiB(pid, "VmHWM")
	if err != nil {
		return -1
	}
	return kib << 10
}

func (s *serverCtl) stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc.Stderr()
}

// notes keeps a test's running commentary and logs it when the test ends,
// after its failures: the first line of a failed test's output is then
// why it failed (the mutant runner quotes that line).
type notes struct {
	mu    sync.Mutex
	lines []string
}

func newNotes(t testing.TB) *notes {
	n := &notes{}
	t.Cleanup(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, l := range n.lines {
			t.Log(l)
		}
	})
	return n
}

func (n *notes) Logf(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lines = append(n.lines, fmt.Sprintf(format, args...))
}

// quietTB passes t on with its log lines kept in notes.
type quietTB struct {
	testing.TB
	n *notes
}

func (q quietTB) Logf(format string, args ...any) { q.n.Logf(format, args...) }

// metric sums the samples of one metric of the server's /metrics, read
// straight from the server (-1 when it cannot).
func (s *serverCtl) metric(name string) float64 {
	s.mu.Lock()
	u := "http://" + s.proc.URL
	s.mu.Unlock()
	m, err := testkit.Metrics(context.Background(), u)
	if err != nil {
		return -1
	}
	var sum float64
	for series, v := range m {
		if rest, ok := strings.CutPrefix(series, name); ok && (rest == "" || rest[0] == '{') {
			sum += v
		}
	}
	return sum
}

// mean is the mean of one of the server's histograms (of seconds) so far:
// fredtel_db_write_duration_seconds is its time to commit a batch,
// fredtel_http_request_duration_seconds its own time to answer.
func (s *serverCtl) mean(histogram string) time.Duration {
	n := s.metric(histogram + "_count")
	if n <= 0 {
		return 0
	}
	return time.Duration(s.metric(histogram+"_sum") / n * float64(time.Second))
}

// cpu is the CPU time the server process has used (user and system), from
// /proc/PID/stat; 0 when it cannot tell.
func (s *serverCtl) cpu() time.Duration {
	s.mu.Lock()
	pid := s.proc.Cmd.Process.Pid
	s.mu.Unlock()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}
