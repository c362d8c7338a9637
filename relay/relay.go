package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/slim/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/fredcode/fredtel/telemetry"
)

// The defaults of Options.Settle and Options.Idle.
const (
	// DefaultSettle: CLIs export every 5 s by default.
	DefaultSettle = 10 * time.Second
	// DefaultIdle: CLIs do not say when a session ends.
	DefaultIdle = 10 * time.Minute
)

// Options configure a Relay. The zero value of each field means its default.
type Options struct {
	// Telemetry are the options every relayed session starts with: the
	// routing, sinks and stderr of the fred command (Now and FredVersion
	// are set per session).
	Telemetry telemetry.Options
	// Stderr receives the relay's one-line warnings (default: Telemetry.Stderr).
	Stderr io.Writer
	// Settle is how long a CLI's event waits for the rest of its exports
	// (logs, traces) before it is recorded (default DefaultSettle).
	Settle time.Duration
	// Idle closes a CLI session that sent nothing for this long (default
	// DefaultIdle).
	Idle time.Duration
	// MaxSessions bounds the CLI sessions held at once (default 32); a new
	// one beyond it closes the longest idle.
	MaxSessions int
	// SessionBytes bounds the events a session holds before they are
	// recorded (default 256 KiB): past it they are recorded at once, past
	// twice it they are dropped and counted.
	SessionBytes int
	// MaxBody bounds a request body as sent (default 8 MiB), MaxDecoded
	// once gunzipped (default 32 MiB).
	MaxBody, MaxDecoded int64
	// MaxConcurrent bounds the requests decoded at once (default 4); the
	// others wait up to a second, then get 503 with Retry-After.
	MaxConcurrent int
	// CloseBudget bounds each session's Close (default 2 s): the relay is
	// a background process, nobody waits for it.
	CloseBudget time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Tick is how often held events are checked (default 1 s).
	Tick time.Duration
}

func (o *Options) defaults() {
	if o.Stderr == nil {
		o.Stderr = o.Telemetry.Stderr
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	orDefault(&o.Settle, DefaultSettle)
	orDefault(&o.Idle, DefaultIdle)
	orDefault(&o.MaxSessions, 32)
	orDefault(&o.SessionBytes, 256<<10)
	orDefault(&o.MaxBody, 8<<20)
	orDefault(&o.MaxDecoded, 32<<20)
	orDefault(&o.MaxConcurrent, 4)
	orDefault(&o.CloseBudget, 2*time.Second)
	if o.Now == nil {
		o.Now = time.Now
	}
	orDefault(&o.Tick, time.Second)
	if o.Telemetry.CloseBudget < o.CloseBudget {
		o.Telemetry.CloseBudget = o.CloseBudget
	}
}

// orDefault sets *p to def where it was left zero (or made negative).
func orDefault[T ~int | ~int64 | ~float64](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// Stats count what the relay received and what became of it.
type Stats struct {
	Requests       int64 // OTLP requests accepted
	Refused        int64 // requests refused: malformed, too large, wrong type, busy
	Records        int64 // log records and spans read
	Facts          int64 // events mapped to the records
	Ignored        int64 // known events and spans the records have no use for, and metrics
	Aux            int64 // model calls outside the agent loop (session titles, routing)
	UnknownService int64 // records of a service that is not Claude Code, Codex or Gemini CLI
	UnknownEvent   int64 // events of a known CLI the relay does not know (a newer version?)
	Incomplete     int64 // events missing an attribute the mapping needs (renamed?)
	NoSession      int64 // events without a session id
	Overflow       int64 // events dropped: a session held too many
	Orphans        int64 // tool calls reported without a model call before them
	Sessions       int64 // CLI sessions recorded
	Closed         int64 // CLI sessions closed
	Evicted        int64 // CLI sessions closed early to make room
}

type counters struct {
	requests, refused, records, facts, ignored, aux, unknownService, unknownEvent,
	incomplete, noSession, overflow, orphans, sessions, closed, evicted atomic.Int64
}

// Relay receives OTLP/HTTP from agent CLIs and records their sessions
// through the telemetry library. Its worker goroutine is started by New
// and stopped by Close.
type Relay struct {
	o   Options
	off bool // telemetry is off: nothing is held or recorded
	sem chan struct{}
	st  counters

	mu       sync.Mutex
	sessions map[string]*cliSession
	closing  []*cliSession // evicted, to be closed by the worker

	// proc serialises recording (the worker and Flush).
	proc sync.Mutex

	warned sync.Map // reason → struct{}: one warning line per reason

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New makes a relay and starts its worker.
func New(o Options) *Relay {
	o.defaults()
	r := &Relay{o: o, sem: make(chan struct{}, o.MaxConcurrent), sessions: map[string]*cliSession{},
		stop: make(chan struct{}), done: make(chan struct{})}
	r.off = telemetry.Resolve(o.Telemetry).Kind == telemetry.Off
	go r.work()
	return r
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	c := &r.st
	return Stats{Requests: c.requests.Load(), Refused: c.refused.Load(), Records: c.records.Load(), Facts: c.facts.Load(),
		Ignored: c.ignored.Load(), Aux: c.aux.Load(), UnknownService: c.unknownService.Load(), UnknownEvent: c.unknownEvent.Load(),
		Incomplete: c.incomplete.Load(), NoSession: c.noSession.Load(), Overflow: c.overflow.Load(), Orphans: c.orphans.Load(),
		Sessions: c.sessions.Load(), Closed: c.closed.Load(), Evicted: c.evicted.Load()}
}

// warn prints one line per reason for the relay's life. Reasons are the
// relay's own words: nothing a request carried is ever printed.
func (r *Relay) warn(reason string) {
	if _, seen := r.warned.LoadOrStore(reason, struct{}{}); !seen {
		fmt.Fprintf(r.o.Stderr, "fred otel-relay: %s (counted and skipped; this is said once)\n", reason)
	}
}

// ---- receiving --------------------------------------------------------

// ServeHTTP is the OTLP/HTTP receiver: POST /v1/logs, /v1/traces and
// /v1/metrics, Content-Type application/x-protobuf or application/json,
// optionally Content-Encoding gzip. It answers 200 with an empty export
// response once the request is decoded and its events held; 400 when the
// body is not OTLP, 413 when it is too large, 415 for another type or
// encoding, 503 with Retry-After when busy. No answer quotes the request.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var sig signal
	switch req.URL.Path {
	case "/v1/logs":
		sig = sigLogs
	case "/v1/traces":
		sig = sigTraces
	case "/v1/metrics":
		sig = sigMetrics
	default:
		http.Error(w, "not found: the relay receives POST /v1/logs, /v1/traces and /v1/metrics", http.StatusNotFound)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed: use POST", http.StatusMethodNotAllowed)
		return
	}
	refuse := func(code int, msg string) {
		r.st.refused.Add(1)
		r.warn("refused a request: " + msg)
		http.Error(w, msg, code)
	}
	var enc encoding
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		enc = encProto
	case "application/json":
		enc = encJSON
	default:
		refuse(http.StatusUnsupportedMediaType, "unsupported Content-Type: want application/x-protobuf or application/json")
		return
	}
	var gz bool
	switch strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))) {
	case "", "identity":
	case "gzip":
		gz = true
	default:
		refuse(http.StatusUnsupportedMediaType, "unsupported Content-Encoding: want gzip or none")
		return
	}
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-time.After(time.Second):
		r.st.refused.Add(1)
		r.warn("busy: a request waited over a second for its turn (the CLI retries it)")
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy, retry later", http.StatusServiceUnavailable)
		return
	case <-req.Context().Done():
		return
	}
	body, err := readBody(http.MaxBytesReader(w, req.Body, r.o.MaxBody), gz, r.o.MaxDecoded)
	if errors.Is(err, errTooLarge) {
		refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("request too large (over %d bytes as sent or %d decompressed)", r.o.MaxBody, r.o.MaxDecoded))
		return
	}
	if err != nil {
		refuse(http.StatusBadRequest, "unreadable body: "+err.Error())
		return
	}
	msg, err := decode(sig, enc, body)
	if err != nil {
		refuse(http.StatusBadRequest, err.Error())
		return
	}
	r.st.requests.Add(1)
	r.accept(msg)
	if enc == encJSON {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK) // an empty export response is zero bytes
}

// batch collects the facts of one request, by CLI session.
type batch struct {
	r       *Relay
	agent   *agent
	version string
	now     time.Time
	facts   map[string][]fact
	sizes   map[string]int
}

func (x *batch) add(sid string, f fact) {
	if sid == "" || len(sid) > 200 {
		x.r.st.noSession.Add(1)
		x.r.warn("events without a session id")
		return
	}
	if f.at.IsZero() {
		f.at = x.now
	}
	if f.end.Before(f.at) {
		f.end = f.at
	}
	f.text, f.args, f.result = f.text[:min(len(f.text), maxText)], f.args[:min(len(f.args), maxArgs)], f.result[:min(len(f.result), maxText)]
	x.r.st.facts.Add(1)
	x.facts[sid] = append(x.facts[sid], f)
	x.sizes[sid] += f.size()
}

func (x *batch) incomplete(string) {
	x.r.st.incomplete.Add(1)
	x.r.warn("events of " + x.agent.name + " without an attribute the mapping needs (a version that renamed it?)")
}

func (x *batch) unknown(string) {
	x.r.st.unknownEvent.Add(1)
	x.r.warn("events of " + x.agent.name + " the relay does not know (a newer version?)")
}

func (x *batch) ignored() { x.r.st.ignored.Add(1) }
func (x *batch) skipAux() { x.r.st.aux.Add(1) }

// Text a fact keeps: the library keeps only fingerprints and lengths, but
// the relay holds the text until then.
const (
	maxText = 256 << 10
	maxArgs = 64 << 10
)

// accept maps a decoded request to facts and holds them.
func (r *Relay) accept(msg proto.Message) {
	now := r.o.Now()
	service := func(res interface{ GetAttributes() kvs }) *agent {
		a := agentOf(str(res.GetAttributes(), "service.name"))
		if a == nil {
			r.warn("records of a service that is not Claude Code, Codex or Gemini CLI")
		}
		return a
	}
	switch m := msg.(type) {
	case *collogs.ExportLogsServiceRequest:
		for _, rl := range m.GetResourceLogs() {
			n := 0
			for _, sl := range rl.GetScopeLogs() {
				n += len(sl.GetLogRecords())
			}
			r.st.records.Add(int64(n))
			a := service(rl.GetResource())
			if a == nil {
				r.st.unknownService.Add(int64(n))
				continue
			}
			x := r.newBatch(a, a.version(rl.GetResource().GetAttributes()), now)
			for _, sl := range rl.GetScopeLogs() {
				for _, lr := range sl.GetLogRecords() {
					a.log(x, lr)
				}
			}
			r.hold(x)
		}
	case *coltrace.ExportTraceServiceRequest:
		for _, rs := range m.GetResourceSpans() {
			var spans []*tracepb.Span
			for _, ss := range rs.GetScopeSpans() {
				spans = append(spans, ss.GetSpans()...)
			}
			r.st.records.Add(int64(len(spans)))
			a := service(rs.GetResource())
			switch {
			case a == nil:
				r.st.unknownService.Add(int64(len(spans)))
			case a.spans == nil:
				r.st.ignored.Add(int64(len(spans))) // its logs say it all
			default:
				x := r.newBatch(a, a.version(rs.GetResource().GetAttributes()), now)
				a.spans(x, spans)
				r.hold(x)
			}
		}
	case *colmetrics.ExportMetricsServiceRequest:
		// Metrics repeat the logs' counts: decoded, checked, not used.
		for _, rm := range m.GetResourceMetrics() {
			n := 0
			for _, sm := range rm.GetScopeMetrics() {
				n += len(sm.GetMetrics())
			}
			if service(rm.GetResource()) == nil {
				r.st.unknownService.Add(int64(n))
			} else {
				r.st.ignored.Add(int64(n))
			}
		}
	}
}

func (r *Relay) newBatch(a *agent, version string, now time.Time) *batch {
	return &batch{r: r, agent: a, version: version, now: now, facts: map[string][]fact{}, sizes: map[string]int{}}
}

// hold adds a batch's facts to their sessions' buffers.
func (r *Relay) hold(x *batch) {
	if r.off || len(x.facts) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for sid, fs := range x.facts {
		key := x.agent.name + "\x00" + sid
		s := r.sessions[key]
		if s == nil {
			if len(r.sessions) >= r.o.MaxSessions {
				r.evictLocked()
			}
			s = newCLISession(key, x.agent, x.version)
			r.sessions[key] = s
		}
		if s.version == "" {
			s.version = x.version
		}
		if s.bytes+x.sizes[sid] > 2*r.o.SessionBytes {
			r.st.overflow.Add(int64(len(fs)))
			r.warn("a session sent events faster than they are recorded; the excess was dropped")
			continue
		}
		for _, f := range fs {
			s.pending = append(s.pending, held{fact: f, recv: x.now})
		}
		s.bytes += x.sizes[sid]
		s.lastRecv = x.now
	}
}

// evictLocked closes the longest idle session to make room.
func (r *Relay) evictLocked() {
	var oldest *cliSession
	for _, s := range r.sessions {
		if oldest == nil || s.lastRecv.Before(oldest.lastRecv) {
			oldest = s
		}
	}
	if oldest != nil {
		delete(r.sessions, oldest.key)
		r.closing = append(r.closing, oldest)
		r.st.evicted.Add(1)
		r.warn(fmt.Sprintf("more than %d CLI sessions at once: the longest idle was closed early", r.o.MaxSessions))
	}
}

// ---- recording --------------------------------------------------------

// work is the relay's one goroutine: every Tick it records what has
// settled and closes idle sessions, until Close.
func (r *Relay) work() {
	defer close(r.done)
	t := time.NewTicker(r.o.Tick)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.step(false)
		}
	}
}

// Flush records every event held now, settled or not (tests, shutdown).
func (r *Relay) Flush() { r.step(true) }

// step records settled events (all with force) and closes sessions that
// ended, went idle or were evicted.
func (r *Relay) step(force bool) {
	r.proc.Lock()
	defer r.proc.Unlock()
	now := r.o.Now()
	type work struct {
		s       *cliSession
		fs      []fact
		version string
		close   bool
	}
	var todo []work
	r.mu.Lock()
	for _, s := range r.closing {
		todo = append(todo, work{s: s, fs: takeAll(s), version: s.version, close: true})
	}
	r.closing = nil
	keys := slices.Sorted(maps.Keys(r.sessions))
	for _, k := range keys {
		s := r.sessions[k]
		var fs []fact
		if force || s.bytes > r.o.SessionBytes {
			fs = takeAll(s)
		} else {
			fs = takeSettled(s, now.Add(-r.o.Settle))
		}
		idle := now.Sub(s.lastRecv) >= r.o.Idle || (s.ended && now.Sub(s.lastRecv) >= r.o.Settle)
		if idle {
			fs = append(fs, takeAll(s)...)
			delete(r.sessions, k)
		}
		if len(fs) > 0 || idle {
			todo = append(todo, work{s: s, fs: fs, version: s.version, close: idle})
		}
	}
	r.mu.Unlock()
	for _, w := range todo {
		w.s.record(r.o.Telemetry, w.fs, w.version, now, &r.st)
		if w.close {
			r.closeSession(context.Background(), w.s, now)
		}
	}
}

func (r *Relay) closeSession(ctx context.Context, s *cliSession, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, r.o.CloseBudget+time.Second)
	defer cancel()
	s.close(ctx, now)
	if s.sess != nil {
		r.st.closed.Add(1)
	}
}

func takeAll(s *cliSession) []fact {
	out := make([]fact, len(s.pending))
	for i := range s.pending {
		out[i] = s.pending[i].fact
	}
	s.pending, s.bytes = nil, 0
	return out
}

func takeSettled(s *cliSession, before time.Time) []fact {
	var out []fact
	keep := s.pending[:0]
	bytes := 0
	for _, h := range s.pending {
		if !h.recv.After(before) {
			out = append(out, h.fact)
		} else {
			keep = append(keep, h)
			bytes += h.size()
		}
	}
	s.pending, s.bytes = keep, bytes
	return out
}

// Close stops the worker, records everything held and closes every
// session (each within Options.CloseBudget, all at once).
func (r *Relay) Close(ctx context.Context) {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	r.proc.Lock()
	defer r.proc.Unlock()
	now := r.o.Now()
	r.mu.Lock()
	all := append([]*cliSession(nil), r.closing...)
	for _, s := range r.sessions {
		all = append(all, s)
	}
	r.sessions, r.closing = map[string]*cliSession{}, nil
	var fss [][]fact
	var versions []string
	for _, s := range all {
		fss, versions = append(fss, takeAll(s)), append(versions, s.version)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for i, s := range all {
		s.record(r.o.Telemetry, fss[i], versions[i], now, &r.st)
		wg.Add(1)
		go func() { // owned by Close, which waits for it
			defer wg.Done()
			r.closeSession(ctx, s, now)
		}()
	}
	wg.Wait()
}

// heldBytes and heldSessions are what the relay holds now (tests).
func (r *Relay) heldBytes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.sessions {
		n += s.bytes
	}
	return n
}

func (r *Relay) heldSessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}
