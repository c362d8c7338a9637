package telemetry

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
	"golang.org/x/term"
)

// Options configure telemetry for one session. The zero value is usable.
type Options struct {
	// FredVersion is the CLI's version (semver).
	FredVersion string
	// NoTelemetry is the --no-telemetry flag: off for this session only.
	NoTelemetry bool
	// Getenv reads the environment (default os.Getenv). Tests pass a map.
	Getenv func(string) string
	// Stderr receives the notice and one-line warnings (default os.Stderr).
	Stderr io.Writer
	// StderrIsTerminal overrides the terminal check of Stderr (default:
	// Stderr is an *os.File on a terminal).
	StderrIsTerminal func() bool
	// Central receives the central route's batches. Without one (and
	// without NewCentral) the central route records nothing: no notice, no
	// goroutine. With FRED_TELEMETRY_DEBUG=1 a DebugSink on Stderr takes
	// its place.
	Central CentralSink
	// NewCentral makes the central sink once the route is known to be
	// central (telemetry/central.New): nothing is built on other routes.
	NewCentral func(CentralConfig) (CentralSink, error)
	// SelfHosted opens the user's database for DSC_TELEMETRY_DB_URL
	// (telemetry/selfhost.Open). Without one that route records nothing
	// and says so once; it never falls back to the central route.
	SelfHosted LocalOpener
	// QueueBytes bounds the memory of records waiting to be written
	// (default 8 MiB). Records beyond it are dropped and counted.
	QueueBytes int
	// MaxBatch is the number of records that triggers a write before
	// FlushInterval (default 500).
	MaxBatch int
	// FlushInterval is the longest a record waits in the queue (default 2 s).
	FlushInterval time.Duration
	// CloseBudget bounds Close on the central route (default 100 ms):
	// two thirds for the final send, the rest to spool what is left,
	// or, when everything was sent, to deliver earlier sessions' spool.
	// It also bounds the wait of /telemetry off.
	CloseBudget time.Duration
	// SelfHostedCloseBudget bounds Close on the self-hosted route (default
	// 1 s): there is no spool, and the first session of a new database may
	// still be creating its tables. A database that is down fails fast and
	// costs nothing like it.
	SelfHostedCloseBudget time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// IDSeed, when set, seeds the record ids (UUIDv7: the time from Now, the
	// rest from this seed) instead of crypto/rand, so that a simulation run
	// again with the same seed and clock makes the same ids (fredtel
	// simulate). Ids are not secrets, but two sessions given one seed make
	// the same ids, and the server refuses a second user's session id: only
	// simulations and tests set it. The fingerprint key is random whatever
	// this says.
	IDSeed *[32]byte
	// OnHint, when set, is told what the live rules find in the session as
	// it happens (a loop, a fast model that keeps struggling): the rules
	// and definitions of `fredtel insights`. It runs on every route, off
	// included, since a hint helps the user and sends nothing; it is
	// called synchronously from the recording call that completed the
	// pattern, so it should only hand the hint over.
	OnHint func(Hint)
	// FastModels names the fast models for the stuck rule (default: names
	// containing rules.FastWords).
	FastModels []string
}

func (o *Options) defaults() {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.StderrIsTerminal == nil {
		w := o.Stderr
		o.StderrIsTerminal = func() bool {
			f, ok := w.(*os.File)
			return ok && term.IsTerminal(int(f.Fd()))
		}
	}
	orDefault(&o.QueueBytes, 8<<20)
	orDefault(&o.MaxBatch, 500)
	orDefault(&o.FlushInterval, 2*time.Second)
	orDefault(&o.CloseBudget, 100*time.Millisecond)
	orDefault(&o.SelfHostedCloseBudget, time.Second)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FredVersion == "" {
		o.FredVersion = "0.0.0"
	}
}

// orDefault sets *p to def where it was left zero (or made negative).
func orDefault[T ~int | ~int64 | ~float64](p *T, def T) {
	if *p <= 0 {
		*p = def
	}
}

// SessionInfo describes a session at its start. Text fields are raw: the
// library reduces them (AgentsMD and SystemPrompt to hashes) and drops the
// rest; nothing here leaves the machine as text.
type SessionInfo struct {
	Model string
	// OS defaults to runtime.GOOS.
	OS string
	// Shell is the login shell (a path or a name); default $SHELL. Only its
	// basename from a fixed list is recorded, else "other".
	Shell string
	// GitDirty: uncommitted changes at start; nil outside a repository.
	GitDirty *bool
	// AgentsMD is the text of AGENTS.md, if any: recorded as an HMAC under
	// a per-install key.
	AgentsMD string
	// SystemPrompt is the system prompt text: recorded as its SHA-256.
	SystemPrompt string
	// Tools, Commands and Models are the build's own catalogs: the
	// built-in tools, the slash commands and the models this build offers
	// (never names the user configured or typed). They are sent in the
	// session record, and on the central route a name outside them is
	// recorded as a fixed word: a tool as "mcp" (an MCP server's tool) or
	// "other", a command as "other", a model as "custom". Names that do
	// not fit the schema's patterns, and tool names shaped like MCP tools
	// (mcp__server__tool, server__tool), are left out of the catalogs.
	Tools    []string
	Commands []string
	Models   []string
	// Agent is the agent CLI the session ran in when it is not Fred (the
	// OTLP relay records Claude Code, Codex and Gemini CLI sessions): one
	// of schema.SessionFields().Agent.Enum(), else "other". Default "fred".
	Agent string
	// AgentVersion is that agent's version where it says it (semver; else
	// null). Fred's own is fred_version.
	AgentVersion string
}

// NoticeText is printed once, on the first session that starts the central
// writer on a terminal.
const NoticeText = "Fred sends anonymized behavioral telemetry to improve the\nproduct. Run /telemetry off to opt out.\n"

// Stats counts what a session recorded and what became of it. Recording never
// returns an error; this is where failures show.
type Stats struct {
	Recorded int64 // records accepted into the queue
	Written  int64 // records handed to the sink successfully
	Dropped  int64 // records dropped: queue full, refused by the server, discarded by /telemetry off, or unsent at exit without a spool
	Spooled  int64 // records kept on disk at exit for the next session
	Replaced int64 // values outside the declaration, or names outside the session's catalogs, replaced by a fallback
	Failures int64 // failed writes (each retried while the queue allows)
	Panics   int64 // panics recovered inside the library
}

// Session records one CLI session. Its methods are safe for concurrent use,
// never block on I/O, never panic into the caller, and return nothing the
// agent must handle.
type Session struct {
	opts  Options
	dir   string
	state lifecycle // see lifecycle for the states and their transitions
	mu    sync.Mutex
	route Route // guarded by mu: /telemetry off changes it

	id      uuid.UUID
	ids     *idGen
	fp      *fingerprinter
	hints   *hints // nil without Options.OnHint
	runs    runMarks
	session schema.Session
	// The catalogs of the session record, as sets: the names the central
	// route keeps.
	cmds, tools, models map[string]bool
	names               sync.Map // tool name → recorded name
	turnSeq             atomic.Int64
	eventSeq            atomic.Int64

	// kind and noText are the route as it was when recording started; they
	// never change afterwards, so the hot path reads them without a lock.
	kind   RouteKind
	noText bool

	q     *queue
	stats struct {
		recorded, written, dropped, spooled, replaced, failures, panics atomic.Int64
	}
	warned sync.Once

	// run, the background goroutine, stops when stop is closed and closes
	// done when it returns. Close and TurnOff cancel its work: all of it
	// (TurnOff at once, Close when out of time), its sends (Close, when the
	// final flush's time is up: a send stuck on an endpoint that never
	// answers gives way to the spool), its backlog steps (Close, early: the
	// session's own records go first).
	stop, done                chan struct{}
	running                   bool // run was started (set by Start only)
	work, sends, backlogSteps scope
	// Close's plan, set before it closes stop: the final flush ends at
	// flushBy, the backlog at backlogBy, spooling at spoolBy.
	flushBy, backlogBy, spoolBy time.Time
}

// Start resolves the routing of SPEC §2 once and starts recording a session.
// On a route that is off, it starts nothing and writes nothing.
func Start(opts Options, info SessionInfo) *Session {
	opts.defaults()
	s := &Session{opts: opts, ids: newIDGen(opts.IDSeed), stop: make(chan struct{}), done: make(chan struct{})}
	if opts.OnHint != nil {
		s.hints = newHints(opts.OnHint, opts.FastModels, info.Models)
	}
	s.dir = ConfigDir(opts.Getenv)
	in := routeInput{noTelemetryFlag: opts.NoTelemetry, getenv: opts.Getenv}
	// Preferences and credentials are read only when a rule before them has
	// not already decided: --no-telemetry reads nothing at all.
	if !opts.NoTelemetry && opts.Getenv("DSC_TELEMETRY_DB_URL") == "" {
		in.prefs, in.prefsErr = LoadPrefs(s.dir)
		in.creds, in.credsErr = LoadCredentials(s.dir)
	}
	s.route = resolve(in)
	if s.route.Warning != "" {
		fmt.Fprintf(opts.Stderr, "fred: %s\n", s.route.Warning)
	}
	func() {
		defer s.recoverPanic()
		s.begin(info)
	}()
	return s
}

// begin finishes Start for the routes that record.
func (s *Session) begin(info SessionInfo) {
	switch s.route.Kind {
	case Off:
		return
	case Central:
		s.route = settle(s.route, &s.opts)
		if s.route.Kind != Central {
			return
		}
		switch {
		case envFlag(s.opts.Getenv("FRED_TELEMETRY_DEBUG")):
			s.opts.Central = DebugSink(s.opts.Stderr)
		case s.opts.Central == nil:
			c, err := s.opts.NewCentral(CentralConfig{APIURL: s.route.APIURL, APIKey: s.route.apiKey, ConfigDir: s.dir,
				FredVersion: s.opts.FredVersion, Stderr: s.opts.Stderr, Getenv: s.opts.Getenv})
			if err != nil || c == nil {
				if err != nil {
					s.warn("cannot start the telemetry sender: " + err.Error())
				}
				s.route = Route{Kind: Off, Rule: RuleNoSender, Detail: "the sender could not start"}
				return
			}
			s.opts.Central = c
		}
	case SelfHosted:
		if s.opts.SelfHosted == nil {
			s.warn(fmt.Sprintf("DSC_TELEMETRY_DB_URL is set but this build cannot write to a database; nothing is recorded (and nothing is sent to Fred)"))
			s.route.Detail = "this build cannot write to a database: nothing is recorded"
			return
		}
	}
	key := make([]byte, 32)
	crand.Read(key)
	s.fp = newFingerprinter(key)
	now := s.opts.Now()
	s.id = s.ids.next(now)
	s.kind, s.noText = s.route.Kind, s.route.NoText
	s.session = s.sessionRecord(info, now)
	s.q = newQueue(s.opts.QueueBytes, s.opts.MaxBatch)
	if s.route.Kind == Central && s.route.Rule == RuleNoticeUnseen {
		// The central writer starts now: show the notice first (nothing can
		// be sent before the writer runs), then remember it was shown.
		fmt.Fprintf(s.opts.Stderr, "\x1b[2m%s\x1b[0m", NoticeText)
		p, _ := LoadPrefs(s.dir)
		p.NoticeShownAt = now.UTC().Format(time.RFC3339)
		if err := SavePrefs(s.dir, p); err != nil {
			s.warn("cannot remember that the telemetry notice was shown: " + err.Error())
		}
		s.route.Rule = RuleCentral
	}
	push(s, s.session, sizeSession)
	s.work = newScope(context.Background())
	s.sends = newScope(s.work.ctx)
	s.backlogSteps = newScope(s.sends.ctx)
	s.state.move(stateOff, stateRecording)
	s.running = true
	go s.run(s.route)
}

var goVersion = regexp.MustCompile(`go[0-9]{1,2}\.[0-9]{1,3}(\.[0-9]{1,3})?((rc|beta)[0-9]{1,2})?`)

func (s *Session) clean(f *schema.Field, v string) string {
	c, ok := f.Clean(v)
	if !ok {
		s.stats.replaced.Add(1)
	}
	return c
}

func (s *Session) sessionRecord(info SessionInfo, now time.Time) schema.Session {
	osName := info.OS
	if osName == "" {
		osName = runtime.GOOS
	}
	shell := info.Shell
	if shell == "" {
		shell = s.opts.Getenv("SHELL")
	}
	shell = strings.TrimSuffix(strings.ToLower(filepath.Base(strings.ReplaceAll(shell, `\`, "/"))), ".exe")
	if shell == "" || shell == "." || shell == "/" {
		shell = "other"
	}
	tools := make([]string, 0, len(info.Tools))
	for _, t := range info.Tools {
		if !isMCPName(t) {
			tools = append(tools, t)
		}
	}
	rec := schema.Session{
		SessionID:      s.id,
		StartedAt:      schema.TimeOf(now),
		FredVersion:    s.clean(schema.SessionFields().FredVersion, s.opts.FredVersion),
		RuntimeVersion: s.clean(schema.SessionFields().RuntimeVersion, goVersion.FindString(runtime.Version())),
		OS:             s.clean(schema.SessionFields().OS, osName),
		Shell:          s.clean(schema.SessionFields().Shell, shell),
		ToolCatalog:    schema.SessionFields().ToolCatalog.CleanList(tools),
		CommandCatalog: schema.SessionFields().CommandCatalog.CleanList(normalizeCommands(info.Commands)),
		ModelCatalog:   schema.SessionFields().ModelCatalog.CleanList(info.Models),
		// Fred itself unless the embedder says which agent (the relay);
		// agent_version is for those: Fred's is fred_version.
		Agent: "fred",
	}
	if info.Agent != "" {
		rec.Agent = schema.OptString(s.clean(schema.SessionFields().Agent, info.Agent))
		if v, ok := schema.SessionFields().AgentVersion.Clean(info.AgentVersion); ok && info.AgentVersion != "" {
			rec.AgentVersion = schema.OptString(v)
		}
	}
	s.tools, s.cmds, s.models = set(rec.ToolCatalog), set(rec.CommandCatalog), set(rec.ModelCatalog)
	rec.Model = s.modelName(info.Model)
	if info.GitDirty != nil {
		rec.GitDirty = schema.BoolOf(*info.GitDirty)
	}
	if info.SystemPrompt != "" {
		rec.SystemPromptSHA256 = sha256.Sum256([]byte(info.SystemPrompt))
	}
	if info.AgentsMD != "" {
		if k, err := installKey(s.dir); err == nil {
			rec.AgentsMDHash = newFingerprinter(k).text(info.AgentsMD)
		} else {
			s.warn("cannot keep the per-install key: " + err.Error())
		}
	}
	return rec
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func normalizeCommands(cmds []string) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(c), "/"))
	}
	return out
}

// ID is the session's id, the session_id of its records (the zero UUID
// when the session records nothing). It is a random UUIDv7, sent on the
// central route anyway: an embedder may log it to find the session's records.
func (s *Session) ID() uuid.UUID { return s.id }

// Route is the routing decision of this session.
func (s *Session) Route() Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.route
}

// Status is the status line of /telemetry, with this session's counters
// when something went wrong.
func (s *Session) Status() string {
	line := s.Route().Status()
	st := s.Stats()
	var notes []string
	if st.Dropped > 0 {
		notes = append(notes, fmt.Sprintf("%d records dropped", st.Dropped))
	}
	if st.Failures > 0 {
		notes = append(notes, fmt.Sprintf("%d failed writes", st.Failures))
	}
	if len(notes) > 0 {
		line += " [" + strings.Join(notes, ", ") + "]"
	}
	return line
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{
		Recorded: s.stats.recorded.Load(), Written: s.stats.written.Load(), Dropped: s.stats.dropped.Load(), Spooled: s.stats.spooled.Load(),
		Replaced: s.stats.replaced.Load(), Failures: s.stats.failures.Load(), Panics: s.stats.panics.Load(),
	}
}

// Env returns the environment for a subprocess of the agent: base, plus
// DO_NOT_TRACK=1 when this session's telemetry is off, so the opt-out reaches
// the tools the agent runs.
func (s *Session) Env(base []string) []string {
	out := append([]string(nil), base...)
	if s.Route().Kind != Off {
		return out
	}
	for i, kv := range out {
		if strings.HasPrefix(kv, "DO_NOT_TRACK=") {
			out[i] = "DO_NOT_TRACK=1"
			return out
		}
	}
	return append(out, "DO_NOT_TRACK=1")
}

func (s *Session) warn(msg string) {
	// One line, whatever the error said (drivers like multi-line errors).
	msg = strings.Join(strings.Fields(msg), " ")
	s.warned.Do(func() { fmt.Fprintf(s.opts.Stderr, "fred: telemetry: %s\n", msg) })
}

// recoverPanic keeps a bug in the library from crashing the agent.
func (s *Session) recoverPanic() {
	if r := recover(); r != nil {
		s.stats.panics.Add(1)
		if s.opts.Getenv("FRED_TELEMETRY_DEBUG") != "" {
			fmt.Fprintf(s.opts.Stderr, "fred: telemetry: recovered panic: %v\n", r)
		}
	}
}
