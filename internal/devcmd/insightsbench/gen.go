package main

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"

	"github.com/fredcode/fredtel/rules"
	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// The full-size fleet: 100,000 sessions of 20 turns of 5 tool calls and 10
// events each: 2,000,000 turns, 10,000,000 tool calls, 1,000,000 events.
const (
	fullSessions    = 100_000
	turnsPerSession = 20
	callsPerTurn    = 5
	eventsPerSess   = 10
	usersPerSession = 0.1 // 10,000 users at full size
)

var (
	tools    = []string{"bash", "read_file", "write_file", "edit", "grep", "list_dir", "web_fetch", "todo"}
	commands = []string{"help", "model", "plan", "clear", "compact", "telemetry", "undo", "diff", "cost", "init", "review", "bug"}
	// finish reasons by weight: 2 % length, 1 % error, 1 % cancelled.
	finishes = weighted(map[string]int{"stop": 46, "tool_calls": 50, "length": 2, "error": 1, "cancelled": 1})
)

// gen makes the fleet deterministically: each session's plan comes from
// its own generator seeded by (seed, index), so each table is generated
// in turn, streaming, without holding the fleet in memory.
type gen struct {
	seed     uint64
	sessions int
	users    int
	from, to time.Time
	hashes   []string // a pool of fingerprints
}

func newGen(seed uint64, scale float64, now time.Time) *gen {
	n := max(1, int(math.Round(fullSessions*scale)))
	g := &gen{seed: seed, sessions: n, users: max(1, int(float64(n)*usersPerSession)),
		to: now.UTC().Truncate(time.Millisecond), hashes: make([]string, 1<<14)}
	g.from = g.to.Add(-7 * 24 * time.Hour)
	for i := range g.hashes {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(i)^seed)
		g.hashes[i] = schema.Hash(sha256.Sum256(b[:])).String()
	}
	return g
}

// plan is one session's shape.
type plan struct {
	i                                  int
	rng                                *rand.Rand
	id                                 uuid.UUID
	user                               string
	start                              time.Time
	flash, stuck, swap, storm, planned bool
	loopTurn                           int // -1: none
	loopStuck                          bool
}

func (g *gen) plan(i int) *plan {
	rng := rand.New(rand.NewPCG(g.seed, uint64(i)))
	p := &plan{i: i, rng: rng, loopTurn: -1}
	span := g.to.Sub(g.from) - 12*time.Hour
	p.start = g.from.Add(time.Duration(rng.Int64N(int64(span))))
	p.id = g.uuid(rng, p.start)
	p.user = "u" + itoa(rng.IntN(g.users))
	p.flash = rng.IntN(10) < 6
	if p.flash {
		p.stuck = rng.IntN(100) < 3
		p.swap = rng.IntN(100) < 5
	}
	p.storm = rng.IntN(100) < 1
	p.planned = rng.IntN(100) < 20
	if rng.IntN(100) < 2 {
		p.loopTurn = 1 + rng.IntN(turnsPerSession-2)
		p.loopStuck = rng.IntN(2) == 0
	}
	return p
}

// uuid is UUIDv7-shaped: time-ordered, like the client's ids.
func (g *gen) uuid(rng *rand.Rand, t time.Time) uuid.UUID {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		u[i] = byte(ms >> (40 - 8*i))
	}
	binary.LittleEndian.PutUint64(u[6:14], rng.Uint64())
	binary.LittleEndian.PutUint16(u[14:], uint16(rng.Uint32()))
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u
}

func (p *plan) model(turn int) string {
	if !p.flash || (p.swap && turn >= 10) {
		return "fred-pro"
	}
	return "fred-flash"
}

func (g *gen) session(p *plan) schema.Session {
	cat := commands
	if p.i%3 == 0 {
		cat = commands[:10] // an older build
	}
	return schema.Session{
		SessionID: p.id, StartedAt: schema.TimeOf(p.start), EndedAt: schema.TimeOf(p.start.Add(turnsPerSession * 30 * time.Second)),
		Model: p.model(0), FredVersion: "1.4.2", RuntimeVersion: "go1.26.8", OS: "linux", Shell: "zsh",
		ToolCatalog: tools, CommandCatalog: cat, ModelCatalog: []string{"fred-flash", "fred-pro"}, Agent: "fred",
		UserID: p.user, ReceivedAt: schema.TimeOf(p.start), ClockOffsetMs: 0,
	}
}

// turns calls emit for each turn of p and its tool calls.
func (g *gen) turns(p *plan, emit func(t *schema.Turn, calls []schema.ToolCall)) {
	rng := rand.New(rand.NewPCG(g.seed^0xabcdef, uint64(p.i)))
	calls := make([]schema.ToolCall, callsPerTurn)
	// The run marks a schema v3 client writes on each call.
	type key struct {
		tool string
		args schema.Hash
	}
	var run rules.Run[key, uuid.UUID]
	for j := 0; j < turnsPerSession; j++ {
		at := p.start.Add(time.Duration(j) * 30 * time.Second)
		mode := "act"
		if p.planned && j < 2 {
			mode = "plan"
		}
		finish := finishes[rng.IntN(len(finishes))]
		if p.stuck && j < 5 {
			finish = "length"
		}
		t := schema.Turn{TurnID: g.uuid(rng, at), SessionID: p.id, Seq: int64(j), StartedAt: schema.TimeOf(at),
			Model: p.model(j), Mode: mode, PromptTokens: 2000 + rng.Int64N(30000), CompletionTokens: 50 + int64(rng.ExpFloat64()*800),
			CachedTokens: rng.Int64N(2000), FinishReason: finish, DurationMs: 300 + int64(rng.ExpFloat64()*4000),
			NumToolCalls: callsPerTurn, PromptChars: rng.Int64N(4000), ResponseChars: rng.Int64N(20000),
			UserID: p.user, ReceivedAt: schema.TimeOf(at)}
		if finish == "error" {
			t.APIErrorType = "overloaded"
		}
		loopTool, loopArgs := tools[rng.IntN(len(tools))], g.hashes[rng.IntN(len(g.hashes))]
		for k := range calls {
			tool, args := tools[rng.IntN(len(tools))], g.hashes[rng.IntN(len(g.hashes))]
			result := g.hashes[rng.IntN(len(g.hashes))]
			if j == p.loopTurn {
				tool, args = loopTool, loopArgs
				if p.loopStuck {
					result = g.hashes[0]
				}
			}
			perm := "auto_allowed"
			switch r := rng.IntN(100); {
			case tool == "bash" && r < 35, r < 3:
				perm = "denied"
			case r < 20:
				perm = "user_allowed"
			}
			ca := at.Add(time.Duration(k) * time.Second)
			af, _ := schema.ParseHash(args)
			rf, _ := schema.ParseHash(result)
			calls[k] = schema.ToolCall{CallID: g.uuid(rng, ca), SessionID: p.id, TurnID: t.TurnID, Seq: int64(k), StartedAt: schema.TimeOf(ca),
				ToolName: tool, ArgsFingerprint: af, Permission: perm, DurationMs: 5 + int64(rng.ExpFloat64()*300), Outcome: "ok",
				ResultBytes: rng.Int64N(50000), ResultFingerprint: rf, UserID: p.user, ReceivedAt: schema.TimeOf(ca)}
			start, n := run.Next(key{tool, af}, calls[k].CallID)
			calls[k].RunStart, calls[k].RunLen = schema.OptUUID{UUID: start}, schema.IntOf(n)
		}
		emit(&t, calls)
	}
}

// events calls emit for each of p's events.
func (g *gen) events(p *plan, emit func(e *schema.Event)) {
	rng := rand.New(rand.NewPCG(g.seed^0x123456, uint64(p.i)))
	n := 0
	add := func(pr interface {
		EventName() string
		Props() schema.Props
	}) {
		at := p.start.Add(time.Duration(n) * 45 * time.Second)
		e := schema.Event{EventID: g.uuid(rng, at), SessionID: p.id, TS: schema.TimeOf(at), Name: pr.EventName(), Props: pr.Props(),
			Seq: schema.IntOf(int64(n)), UserID: p.user, ReceivedAt: schema.TimeOf(at)}
		emit(&e)
		n++
	}
	retries := 1 + rng.IntN(2)
	if p.storm {
		retries = 7
	}
	for a := 1; a <= retries; a++ {
		et := []string{"rate_limit", "rate_limit", "overloaded", "timeout"}[rng.IntN(4)]
		add(schema.APIRetryProps{Attempt: int64(a), DelayMs: int64(250 << min(a-1, 5)), ErrorType: et, Status: 429, LatencyMs: rng.Int64N(2000)})
	}
	if p.swap {
		add(schema.ModelSwapProps{From: "fred-flash", To: "fred-pro"})
	}
	if p.planned {
		add(schema.ModeChangeProps{From: "act", To: "plan"})
	}
	for n < eventsPerSess {
		// Commands 8 to 11 are never used: dead.
		add(schema.SlashCommandProps{Command: commands[rng.IntN(8)]})
	}
}

func weighted(w map[string]int) []string {
	var out []string
	for _, k := range []string{"stop", "tool_calls", "length", "error", "cancelled"} {
		for i := 0; i < w[k]; i++ {
			out = append(out, k)
		}
	}
	return out
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}
