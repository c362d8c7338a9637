// Package sim is `fredtel simulate`: a synthetic fleet of Fred users and
// sessions, recorded through the real client library (telemetry.Start,
// BeginTurn, ToolCall, End, the event calls; the privacy conversion, the
// queue, and the central sender or the self-hosted writer), with known
// pathologies injected and their ground truth ([Truth]) written down, so that
// the insights can be checked against it.
//
// # What a fleet looks like
//
// Users (a few run most sessions) run sessions of a build that offers
// fred-flash and fred-pro, nine tools and twenty slash commands. A session is
// a series of exchanges: a prompt, then agent turns that ask for tool calls
// until one stops. Durations, token counts, result sizes and think times are
// log-normal (heavy-tailed); the context grows with the results and shrinks
// with /compact and /clear. Into this go, at fixed rates: flash sessions that
// get stuck (turns that hit the length limit or ask for a pile of tool calls,
// then usually a switch to pro), retry storms, tool loops (the same call with
// the same result: stuck; with a changing result: polling), near misses that
// are not loops (a run of 2, A B A B), plan sessions that act, drop off or go
// back to plan too early, commands nobody runs, and tools users deny.
//
// # Determinism
//
// Everything a session records is decided from the seed and the session's
// index before it runs; its clock is the plan's (telemetry.Options.Now) and
// its record ids come from a seed derived from both (telemetry.Options.IDSeed).
// The same seed, sessions, users and end time make the same records, ids
// included, however the sessions are scheduled. Only the fingerprints differ
// from run to run: their key is a per-session secret the library never lets
// anyone choose.
//
// # Routing
//
// Each simulated user is a config folder of its own (in a temporary folder,
// removed afterwards) holding its key and the note that the first-run notice
// was shown: the same state `fred login` and a first session on a terminal
// leave behind, so the library routes centrally by its ordinary rules.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/fredcode/fredtel/telemetry/selfhost"
	"github.com/google/uuid"
)

// Config configures [Run].
type Config struct {
	// Sessions is the number of sessions (at least 1).
	Sessions int
	// Seed decides everything the fleet records.
	Seed uint64
	// Users is the number of users on the self-hosted route (default: one
	// per 25 sessions); on the central route, one per key.
	Users int
	// End: every session ends by then (default now). Sessions start within
	// Span before it (default 72 h, at most 29 days: the ingest API refuses
	// records older than 30 days).
	End  time.Time
	Span time.Duration
	// Concurrency is the number of sessions running at once (default 16).
	Concurrency int
	// Rate bounds the batches sent per second with each key (default 15,
	// below the ingest server's default of 20 with a burst of 40: a batch
	// refused with 429 at a session's exit would be spooled, not sent);
	// negative: no bound.
	Rate float64
	// TempDir is where the users' config folders are made (default the
	// system's); they are removed when Run returns.
	TempDir string
	// Progress, if set, is called after each session, from any goroutine.
	Progress func()
}

// Target is where the fleet's records go: the ingest API at APIURL with
// Keys, or the self-hosted database at DBURL.
type Target struct {
	APIURL string
	Keys   []UserKey
	DBURL  string
}

// UserKey is a user's API key. User may be empty: Run then asks the server
// (GET /v1/whoami).
type UserKey struct {
	User string
	Key  string
}

// Defaults.
const (
	DefaultSpan        = 72 * time.Hour
	DefaultConcurrency = 16
	DefaultRate        = 15
	maxSpan            = 29 * 24 * time.Hour
	maxBatch           = 500 // the library's default Options.MaxBatch
)

// Run plans the fleet, records every session through the client library to
// target, and returns the ground truth. It fails when any session did not
// deliver every record it made (the truth would not describe the data).
func Run(ctx context.Context, cfg Config, target Target) (*Truth, error) {
	if cfg.Sessions < 1 {
		return nil, fmt.Errorf("sessions: want at least 1, got %d", cfg.Sessions)
	}
	selfHosted := target.DBURL != ""
	if selfHosted == (target.APIURL != "") {
		return nil, errors.New("give either an ingest API URL with keys, or a database URL")
	}
	if !selfHosted && len(target.Keys) == 0 {
		return nil, errors.New("no API key to send with")
	}
	if cfg.End.IsZero() {
		cfg.End = time.Now()
	}
	cfg.End = cfg.End.UTC().Truncate(time.Millisecond)
	if cfg.Span == 0 {
		cfg.Span = DefaultSpan
	}
	if cfg.Span < time.Hour || cfg.Span > maxSpan {
		return nil, fmt.Errorf("span %v: want between 1h and %v", cfg.Span, maxSpan)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	route := "central"
	var users []string
	if selfHosted {
		route = "self-hosted"
		n := cfg.Users
		if n <= 0 {
			n = max(1, (cfg.Sessions+24)/25)
		}
		for u := range n {
			users = append(users, fmt.Sprintf("user-%03d", u+1))
		}
		// Tables first, once, with a clear error when the database is not
		// there (sessions would each retry in silence).
		st, err := store.Open(ctx, target.DBURL, store.Options{Set: schema.SelfHostedSet, Migrate: true, MaxConns: 1})
		if err != nil {
			return nil, err
		}
		if st.Location().Memory() {
			st.Close()
			return nil, errors.New("an in-memory SQLite database lives only as long as one session's connection: give a file (sqlite:PATH)")
		}
		if st.Location().Dialect == schema.SQLite {
			// Each session opens the file for itself and SQLite takes one
			// writer at a time: more sessions at once only queue for the
			// lock, and a write that waits past the library's write timeout
			// is lost.
			cfg.Concurrency = min(cfg.Concurrency, 2)
		}
		st.Close()
	} else {
		target.APIURL = strings.TrimRight(target.APIURL, "/")
		for i := range target.Keys {
			// The first key is always asked about: a wrong URL, or keys
			// created in another database than the server's, fail here
			// with one clear line rather than in every session.
			if target.Keys[i].User == "" || i == 0 {
				u, err := whoami(ctx, target.APIURL, target.Keys[i].Key)
				if err != nil {
					if target.Keys[i].User != "" {
						err = fmt.Errorf("%w; is the key's database the server's?", err)
					}
					return nil, err
				}
				target.Keys[i].User = u
			}
			users = append(users, target.Keys[i].User)
		}
	}

	plans := planFleet(cfg.Seed, cfg.Sessions, len(users), cfg.Span)
	base := cfg.End.Add(-cfg.Span)

	root, err := os.MkdirTemp(cfg.TempDir, "fredtel-sim-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(root)

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var done atomic.Int64
	var (
		firstErr error
		errOnce  sync.Once
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	pacers := make([]*pacer, len(users))
	for i := range pacers {
		pacers[i] = newPacer(cfg.Rate)
	}
	ids := make([]uuid.UUID, len(plans))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ln := &lane{n: w, root: root, dirs: map[int]string{}, end: cfg.End}
			for i := range jobs {
				if ctx.Err() != nil {
					continue
				}
				p := plans[i]
				var id uuid.UUID
				var err error
				if selfHosted {
					id, err = runSession(ctx, p, base, ln, "", "", target.DBURL, nil)
				} else {
					k := target.Keys[p.user]
					id, err = runSession(ctx, p, base, ln, target.APIURL, k.Key, "", pacers[p.user])
				}
				if err != nil {
					fail(fmt.Errorf("session %d of %d (user %s): %w", i+1, len(plans), users[p.user], err))
					continue
				}
				ids[i] = id
				done.Add(1)
				if cfg.Progress != nil {
					cfg.Progress()
				}
			}
		}()
	}
feed:
	for i := range plans {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if parent.Err() != nil {
		// Stopped (Ctrl-C): the sessions cut short say nothing more.
		return nil, fmt.Errorf("interrupted after %d of %d sessions", done.Load(), len(plans))
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return truth(cfg.Seed, route, plans, ids, users, base), nil
}

// planFleet decides the sessions of a fleet: the same arguments, the same plans.
func planFleet(seed uint64, sessions, users int, span time.Duration) []*session {
	plans := make([]*session, sessions)
	for i := range plans {
		p := planSession(seed, i, users)
		// When in the window it runs: anywhere, as long as it ends by the
		// window's end.
		r := rand.New(rand.NewPCG(seed^0x5eed, uint64(i)))
		if p.length < span {
			p.start = time.Duration(r.Int64N(int64((span-p.length)/time.Millisecond))) * time.Millisecond
		} else {
			p.start = span - p.length
		}
		plans[i] = p
	}
	return plans
}

// lane is one worker's set of user config folders: a user may run sessions
// on several machines at once, never two in one folder.
type lane struct {
	n    int
	root string
	dirs map[int]string
	end  time.Time
}

func (l *lane) dir(user int, key string) (string, error) {
	if d, ok := l.dirs[user]; ok {
		return d, nil
	}
	d := filepath.Join(l.root, fmt.Sprintf("u%03d-w%02d", user, l.n))
	if key != "" {
		if err := telemetry.SaveCredentials(d, telemetry.Credentials{APIKey: key}); err != nil {
			return "", err
		}
		// The notice was shown when this user first ran Fred on a terminal.
		if err := telemetry.SavePrefs(d, telemetry.Prefs{NoticeShownAt: l.end.Add(-40 * 24 * time.Hour).Format(time.RFC3339)}); err != nil {
			return "", err
		}
	} else if err := os.MkdirAll(d, 0o700); err != nil {
		return "", err
	}
	l.dirs[user] = d
	return d, nil
}

// clock is a session's Options.Now: the planned time of what it records.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }

// lockedBuffer collects a session's warnings.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 4096 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (w *lockedBuffer) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// Close budgets: the agent's (100 ms) exist so that Fred exits at once; a
// simulated session waits for its records to be written (Close returns as
// soon as they are), and only a server that stops answering costs this long.
const (
	closeBudget   = 30 * time.Second
	flushInterval = 250 * time.Millisecond
)

// runSession records one session through the library and returns its id.
func runSession(ctx context.Context, p *session, base time.Time, ln *lane, apiURL, key, dbURL string, pace *pacer) (uuid.UUID, error) {
	dir, err := ln.dir(p.user, key)
	if err != nil {
		return uuid.UUID{}, err
	}
	env := map[string]string{"FRED_CONFIG_DIR": dir}
	if dbURL != "" {
		env["DSC_TELEMETRY_DB_URL"] = dbURL
	} else {
		env["FRED_API_URL"] = apiURL
		// Batches this session will send (the library sends one when 500
		// records are queued, and the rest at Close).
		if err := pace.wait(ctx, (p.records+maxBatch-1)/maxBatch+min(1, p.records/maxBatch)); err != nil {
			return uuid.UUID{}, err
		}
	}
	var warnings lockedBuffer
	clk := &clock{}
	start := base.Add(p.start)
	clk.set(start)
	seed := p.idSeed
	opts := telemetry.Options{
		FredVersion:           p.version,
		Getenv:                func(k string) string { return env[k] },
		Stderr:                &warnings,
		StderrIsTerminal:      func() bool { return false },
		FlushInterval:         flushInterval,
		CloseBudget:           closeBudget,
		SelfHostedCloseBudget: closeBudget,
		Now:                   clk.now,
		IDSeed:                &seed,
	}
	want := telemetry.Central
	if dbURL != "" {
		opts.SelfHosted, want = selfhost.Open, telemetry.SelfHosted
	} else {
		opts.NewCentral = central.New
	}
	sess := telemetry.Start(opts, p.info)
	if r := sess.Route(); r.Kind != want {
		sess.Close(ctx)
		return uuid.UUID{}, fmt.Errorf("the client did not route %s: %s", want, r.Status())
	}
	record(sess, clk, start, p)
	clk.set(start.Add(p.length))
	closeCtx := ctx
	if ctx.Err() != nil {
		// Interrupted: the fleet stops within a second, what is unsent is
		// lost (Close would otherwise give a cancelled write its whole
		// budget to notice).
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		closeCtx = c
	}
	sess.Close(closeCtx)
	st := sess.Stats()
	written := st.Written
	if dbURL == "" && st.Spooled > 0 && st.Dropped == 0 && st.Written+st.Spooled == st.Recorded && ctx.Err() == nil {
		// The last write was refused for a while (503 from a loaded
		// server) and the records went to the spool, as Fred's would:
		// deliver them as the user's next session would, so the fleet is
		// whole.
		cfg := telemetry.CentralConfig{APIURL: apiURL, APIKey: key, ConfigDir: dir, FredVersion: p.version, Stderr: &warnings, Getenv: opts.Getenv}
		if err := drainSpool(ctx, cfg); err != nil {
			fmt.Fprintf(&warnings, "sim: %v\n", err)
		} else {
			written += st.Spooled
		}
	}
	if st.Recorded != int64(p.records) || written != st.Recorded || st.Replaced != int64(p.outside) || st.Panics > 0 {
		msg := fmt.Sprintf("%d records planned, %d recorded, %d written, %d dropped, %d spooled, %d values replaced (%d planned)", p.records,
			st.Recorded, st.Written, st.Dropped, st.Spooled, st.Replaced, p.outside)
		if w := strings.TrimSpace(warnings.String()); w != "" {
			msg += ": " + strings.SplitN(w, "\n", 2)[0]
		}
		return uuid.UUID{}, errors.New(msg)
	}
	return sess.ID(), nil
}

// drainSpool sends the spool of cfg's config folder until it is empty,
// within closeBudget, waiting a second after each failed try.
func drainSpool(ctx context.Context, cfg telemetry.CentralConfig) error {
	snd, err := central.New(cfg)
	if err != nil {
		return err
	}
	defer snd.Close(ctx)
	deadline := time.Now().Add(closeBudget)
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		done, err := snd.SendBacklog(sctx)
		cancel()
		if err == nil && done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the spool was not delivered within %v: %v", closeBudget, err)
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
}

// record makes the library calls of a session, each at its planned time.
func record(sess *telemetry.Session, clk *clock, start time.Time, p *session) {
	var turn *telemetry.Turn
	var res telemetry.TurnResult
	var turnEnd time.Time
	endTurn := func() {
		if turn != nil {
			clk.set(turnEnd)
			turn.End(res)
			turn = nil
		}
	}
	for _, s := range p.steps {
		at := start.Add(s.at)
		switch s.kind {
		case stepTurn:
			endTurn()
			clk.set(at)
			turn = sess.BeginTurn(s.mode, s.model)
			res, turnEnd = s.res, start.Add(s.end)
		case stepCall:
			c := s.call
			c.StartedAt = at
			clk.set(start.Add(s.end)) // recorded when the call returns
			turn.ToolCall(c)
		case stepRetry:
			clk.set(at)
			sess.APIRetry(telemetry.Retry{Attempt: s.attempt, Delay: s.delay, Latency: s.latency, ErrorType: s.errType, Status: s.status})
		case stepCommand:
			endTurn()
			clk.set(at)
			sess.SlashCommand(s.line)
		case stepMode:
			endTurn()
			clk.set(at)
			sess.ModeChange(s.from, s.to)
		case stepSwap:
			endTurn()
			clk.set(at)
			sess.ModelSwap(s.from, s.to)
		}
	}
	endTurn()
}

// pacer spaces one key's batches: rate per second, with a small burst.
type pacer struct {
	mu       sync.Mutex
	tat      time.Time // when the next batch may go, theoretically
	interval time.Duration
	burst    time.Duration
}

func newPacer(rate float64) *pacer {
	if rate < 0 {
		return &pacer{}
	}
	iv := time.Duration(float64(time.Second) / rate)
	return &pacer{interval: iv, burst: 10 * iv}
}

func (p *pacer) wait(ctx context.Context, batches int) error {
	if p == nil || p.interval == 0 {
		return nil
	}
	p.mu.Lock()
	now := time.Now()
	if p.tat.Before(now.Add(-p.burst)) {
		p.tat = now.Add(-p.burst)
	}
	at := p.tat
	p.tat = p.tat.Add(time.Duration(batches) * p.interval)
	p.mu.Unlock()
	// The reservation may go once its last batch fits in the burst.
	d := time.Until(at.Add(time.Duration(batches-1) * p.interval))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// whoami asks the ingest API whose key this is.
func whoami(ctx context.Context, apiURL, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/v1/whoami", nil)
	if err != nil {
		return "", fmt.Errorf("--url: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach the ingest API: %v", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return "", fmt.Errorf("the ingest API refused the key %s (401: unknown or revoked)", apikey.Shown(key))
	default:
		return "", fmt.Errorf("the ingest API answered %d to GET /v1/whoami", resp.StatusCode)
	}
	var who struct {
		UserID string `json:"user_id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&who); err != nil || !schema.PatUserID().Match(who.UserID) {
		return "", errors.New("the ingest API's answer to GET /v1/whoami has no valid user_id")
	}
	return who.UserID, nil
}
