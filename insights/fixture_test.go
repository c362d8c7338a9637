package insights

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/fredcode/fredtel/rules"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/google/uuid"
)

// fx builds hand-made records and writes them through the store, as the
// ingest server would.
type fx struct {
	t       testing.TB
	n       int
	base    time.Time
	batches map[string]*store.Batch // by user
	owner   map[uuid.UUID]string
	order   []string
	// marked says which sessions' calls carry run marks, as a schema v3
	// client writes them (nil: none, as older clients).
	marked func(session int) bool
}

// markRuns sets run_start and run_len on the calls of the marked sessions
// as the client does (rules.Run over the calls in order).
func (f *fx) markRuns(b *store.Batch) {
	if f.marked == nil {
		return
	}
	turnSeq := map[uuid.UUID]int64{}
	for _, t := range b.Turns {
		turnSeq[t.TurnID] = t.Seq
	}
	index := map[uuid.UUID]int{}
	for i, s := range b.Sessions {
		index[s.SessionID] = i
	}
	order := make([]*schema.ToolCall, 0, len(b.ToolCalls))
	for i := range b.ToolCalls {
		order = append(order, &b.ToolCalls[i])
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, c := order[i], order[j]
		if a.SessionID != c.SessionID {
			return a.SessionID.String() < c.SessionID.String()
		}
		if turnSeq[a.TurnID] != turnSeq[c.TurnID] {
			return turnSeq[a.TurnID] < turnSeq[c.TurnID]
		}
		return a.Seq < c.Seq
	})
	type key struct {
		tool string
		args schema.Hash
	}
	runs := map[uuid.UUID]*rules.Run[key, uuid.UUID]{}
	for _, c := range order {
		if !f.marked(index[c.SessionID]) {
			continue
		}
		r := runs[c.SessionID]
		if r == nil {
			r = &rules.Run[key, uuid.UUID]{}
			runs[c.SessionID] = r
		}
		start, n := r.Next(key{c.ToolName, c.ArgsFingerprint}, c.CallID)
		c.RunStart, c.RunLen = schema.OptUUID{UUID: start}, schema.IntOf(n)
	}
}

func newFx(t testing.TB) *fx {
	return &fx{t: t, base: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC),
		batches: map[string]*store.Batch{}, owner: map[uuid.UUID]string{}}
}

func (f *fx) id() uuid.UUID {
	f.n++
	return uuid.MustParse(fmt.Sprintf("0190a000-0000-7000-8000-%012d", f.n))
}

// at is minute m after the fixture's base time.
func (f *fx) at(m float64) schema.Time {
	return schema.TimeOf(f.base.Add(time.Duration(m * float64(time.Minute))))
}

func (f *fx) batch(user string) *store.Batch {
	b := f.batches[user]
	if b == nil {
		b = &store.Batch{UserID: user}
		f.batches[user] = b
		f.order = append(f.order, user)
	}
	return b
}

// hash is a fingerprint named by a small number; 0 is none.
func hash(n int) schema.Hash {
	if n == 0 {
		return schema.Hash{}
	}
	return sha256.Sum256([]byte(fmt.Sprint(n)))
}

type sess struct {
	f     *fx
	id    uuid.UUID
	user  string
	start float64 // minutes after base
	turns int
}

// session starts a session of user at minute start on model.
func (f *fx) session(user string, start float64, model string, commands ...string) *sess {
	if commands == nil {
		commands = []string{}
	}
	s := schema.Session{
		SessionID: f.id(), StartedAt: f.at(start), Model: model, FredVersion: "1.2.3", RuntimeVersion: "go1.26.8",
		OS: "linux", Shell: "bash", ToolCatalog: []string{"bash", "read_file", "grep"}, CommandCatalog: commands,
		ModelCatalog: []string{"fred-flash", "fred-pro"}, Agent: "fred",
	}
	b := f.batch(user)
	b.Sessions = append(b.Sessions, s)
	f.owner[s.SessionID] = user
	return &sess{f: f, id: s.SessionID, user: user, start: start}
}

type turnSpec struct {
	model, mode, finish string
	calls               int64
	in, out, ms         int64
	apiErr              string
}

// turn adds the next turn (seq in order) and returns its id.
func (s *sess) turn(ts turnSpec) uuid.UUID {
	f := s.f
	if ts.mode == "" {
		ts.mode = "act"
	}
	if ts.finish == "" {
		ts.finish = "stop"
	}
	if ts.model == "" {
		ts.model = "fred-pro"
	}
	t := schema.Turn{TurnID: f.id(), SessionID: s.id, Seq: int64(s.turns), StartedAt: f.at(s.start + float64(s.turns)),
		Model: ts.model, Mode: ts.mode, PromptTokens: ts.in, CompletionTokens: ts.out, FinishReason: ts.finish,
		DurationMs: ts.ms, NumToolCalls: ts.calls, APIErrorType: schema.OptString(ts.apiErr)}
	s.turns++
	b := f.batch(s.user)
	b.Turns = append(b.Turns, t)
	return t.TurnID
}

// call adds a tool call to turn; args and result name fingerprints
// (result 0: none, as schema v1 records).
func (s *sess) call(turn uuid.UUID, seq int, tool string, args, result int, perm string, ms int64) {
	f := s.f
	if perm == "" {
		perm = "auto_allowed"
	}
	c := schema.ToolCall{CallID: f.id(), SessionID: s.id, TurnID: turn, Seq: int64(seq), StartedAt: f.at(s.start),
		ToolName: tool, ArgsFingerprint: hash(args), Permission: perm, DurationMs: ms, Outcome: "ok", ResultFingerprint: hash(result)}
	b := f.batch(s.user)
	b.ToolCalls = append(b.ToolCalls, c)
}

// event adds an event at minute m of the session.
func (s *sess) event(m float64, p interface {
	EventName() string
	Props() schema.Props
}) {
	f := s.f
	e := schema.Event{EventID: f.id(), SessionID: s.id, TS: f.at(s.start + m), Name: p.EventName(), Props: p.Props()}
	b := f.batch(s.user)
	b.Events = append(b.Events, e)
}

// write stores everything in a fresh, migrated database at url.
func (f *fx) write(url string, set schema.Set) { f.writeOnly(url, set, nil) }

// writeOnly writes the batches of the users keep accepts (nil: all).
func (f *fx) writeOnly(url string, set schema.Set, keep func(user string) bool) {
	f.t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{Set: set, Migrate: true})
	if err != nil {
		f.t.Fatal(err)
	}
	defer st.Close()
	for _, u := range f.order {
		if keep != nil && !keep(u) {
			continue
		}
		f.markRuns(f.batches[u])
		if _, err := st.Write(ctx, f.batches[u]); err != nil {
			f.t.Fatalf("write %s: %v", u, err)
		}
	}
}

func isNoData(err error) bool { return errors.Is(err, ErrNoData) }

// end sets the session's ended_at to minute m after its start.
func (s *sess) end(m float64) {
	b := s.f.batch(s.user)
	for i := range b.Sessions {
		if b.Sessions[i].SessionID == s.id {
			b.Sessions[i].EndedAt = s.f.at(s.start + m)
		}
	}
}
