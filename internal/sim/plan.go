package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/fredcode/fredtel/telemetry"
)

// The build the fleet runs: its models, tools and slash commands. Every name
// a session records is in these catalogs (the central route keeps nothing
// else).
const (
	Flash = "fred-flash"
	Pro   = "fred-pro"
)

var (
	// catalogModels are the models the simulated build offers.
	catalogModels = []string{Flash, Pro}
	// catalogTools is the tool catalog.
	catalogTools = []string{"read_file", "grep", "glob", "list_dir", "edit_file", "write_file", "bash", "web_fetch", "todo_write"}
	// catalogCommands is the slash-command catalog. Nobody in the fleet
	// ever runs bug, doctor, export, share or vim: the dead commands.
	catalogCommands = []string{"act", "bug", "clear", "compact", "config", "cost", "diff", "doctor", "export", "help",
		"init", "memory", "model", "plan", "resume", "review", "share", "telemetry", "undo", "vim"}
)

// readOnly are the tools plan mode uses.
var readOnly = []string{"read_file", "grep", "glob", "list_dir"}

// Shapes of the normal traffic: which tool the model asks for, how the user
// permits it, how long it runs (median and spread of a log-normal), how big
// its result is.
type toolShape struct {
	weight            float64
	auto, user        float64 // shares of auto_allowed and user_allowed; the rest is denied
	medianMs, sigma   float64
	medianBytes, bSig float64
	failRate          float64
}

var shapes = map[string]toolShape{
	"read_file":  {30, 0.97, 0.03, 12, 0.8, 3000, 1.0, 0.03},
	"grep":       {15, 0.97, 0.03, 60, 0.9, 1200, 1.2, 0.02},
	"glob":       {6, 0.98, 0.02, 25, 0.7, 400, 1.0, 0.01},
	"list_dir":   {5, 0.98, 0.02, 8, 0.6, 600, 0.8, 0.01},
	"edit_file":  {15, 0.55, 0.40, 20, 0.7, 300, 0.7, 0.06},
	"write_file": {5, 0.45, 0.47, 15, 0.7, 120, 0.6, 0.03},
	// The denial-heavy tools: users refuse a quarter of the shell commands
	// and a third of the fetches.
	"bash":       {18, 0.30, 0.45, 900, 1.5, 2500, 1.4, 0.12},
	"web_fetch":  {3, 0.20, 0.45, 700, 0.9, 9000, 1.0, 0.05},
	"todo_write": {3, 1.00, 0.00, 3, 0.4, 80, 0.3, 0.00},
}

// denialHeavy are the tools whose calls users deny most (by construction).
var denialHeavy = []string{"bash", "web_fetch"}

// Thresholds of the injected pathologies, chosen so that no plausible rule
// of an analysis confuses them with normal traffic.
const (
	// A stuck session has at least StuckRun flash turns, before any switch
	// to pro, that struggle: end in length or error, or ask for StuckCalls
	// or more tool calls (they come in a row, then the user usually
	// switches). Other sessions have at most 2: normal turns never ask for
	// more than maxNormalCalls, end in length at most once a session, and a
	// storm fails at most one turn.
	StuckRun       = 3
	StuckCalls     = 8
	maxNormalCalls = 6
	// A storm session has at least minStorm api_retry events (StormRetries
	// and more is a storm); other sessions at most maxNormalRetries.
	StormRetries     = 5
	minStorm         = 10
	maxNormalRetries = 3
)

// Rates of the pathologies, per session.
const (
	pStuck    = 0.08 // of flash sessions
	pStorm    = 0.06
	pLoop     = 0.10
	pPolling  = 0.06
	pNearMiss = 0.14
	pPlan     = 0.28
)

type stepKind uint8

const (
	stepTurn stepKind = iota
	stepCall
	stepCommand
	stepRetry
	stepMode
	stepSwap
)

// step is one thing the agent records, at an offset from the session start.
type step struct {
	kind    stepKind
	at, end time.Duration // end: turns and calls
	// turn
	mode, model string
	res         telemetry.TurnResult
	// call
	call telemetry.ToolCall
	// slash command as typed
	line string
	// api_retry
	attempt, status int
	delay, latency  time.Duration
	errType         string
	// mode_change, model_swap
	from, to string
}

// planKind is what a session does with plan mode.
type planKind uint8

const (
	planNone      planKind = iota
	planNormal             // plans, then acts
	planDropOff            // plans and never acts
	planBackEarly          // acts at most 2 turns, goes back to plan, then acts
	planStart              // starts in plan mode (no mode_change to plan), then acts
)

// session is the plan of one simulated session: everything it records,
// decided before it runs, from the seed and its index alone.
type session struct {
	index      int
	user       int
	start      time.Duration // from the fleet's window start
	length     time.Duration
	info       telemetry.SessionInfo
	version    string
	idSeed     [32]byte
	steps      []step
	stuck      bool
	storm      bool
	plan       planKind
	injected   []injection
	swapped    bool // a stuck session whose user switched to pro
	records    int  // records the session makes (its start and end count as two)
	outside    int  // values it records outside the catalogs (mistyped commands)
	retryTotal int
}

// injection is a loop or near miss put into a session on purpose.
type injection struct {
	kind    string // stuck, polling, run_of_2, alternating
	tool    string
	repeats int
	span    string // one_turn, per_turn, two_turns
}

// seedFor derives the record-id seed of session i from the fleet's seed.
func seedFor(seed uint64, i int) [32]byte {
	var b [24]byte
	copy(b[:8], "fredsim1")
	binary.LittleEndian.PutUint64(b[8:], seed)
	binary.LittleEndian.PutUint64(b[16:], uint64(i))
	return sha256.Sum256(b[:])
}

// gen builds one session's steps. The cursor t moves forward; every time is
// a whole millisecond (what the store keeps), so order survives storage.
type gen struct {
	r       *rand.Rand
	s       *session
	t       time.Duration
	mode    string
	model   string
	ctx     int // context tokens
	prevKey string
	n       int // calls made, for unique arguments
	lengths int // turns that ended in length (normal traffic: at most one)
}

func ms(f float64) time.Duration {
	if f < 1 {
		f = 1
	}
	if f > 6*3600*1000 {
		f = 6 * 3600 * 1000
	}
	return time.Duration(int64(f)) * time.Millisecond
}

func (g *gen) logn(median, sigma float64) float64 {
	return median * math.Exp(sigma*g.r.NormFloat64())
}

func (g *gen) geom(p float64, max int) int {
	n := 0
	for n < max && g.r.Float64() > p {
		n++
	}
	return n
}

func (g *gen) pick(weights map[string]float64, order []string) string {
	var sum float64
	for _, k := range order {
		sum += weights[k]
	}
	x := g.r.Float64() * sum
	for _, k := range order {
		x -= weights[k]
		if x < 0 {
			return k
		}
	}
	return order[len(order)-1]
}

// planSession decides session i of a fleet of users.
func planSession(seed uint64, i, users int) *session {
	r := rand.New(rand.NewPCG(seed, uint64(i)*0x9e3779b97f4a7c15+1))
	s := &session{index: i, idSeed: seedFor(seed, i)}
	g := &gen{r: r, s: s, mode: "act"}
	// A few users run most sessions (Zipf-like weights).
	s.user = g.pickUser(users)
	versions := []string{"1.4.2", "1.5.0", "1.5.1"}
	s.version = versions[s.user%3] // users mostly keep one version
	if r.Float64() < 0.2 {
		s.version = versions[r.IntN(3)]
	}
	dirty := r.IntN(3)
	var gitDirty *bool
	if dirty < 2 {
		b := dirty == 1
		gitDirty = &b
	}
	agents := ""
	if r.Float64() < 0.6 {
		agents = fmt.Sprintf("# AGENTS.md of project %d\nRun go test before committing.\n", r.IntN(40))
	}
	g.model = Flash
	if r.Float64() < 0.3 {
		g.model = Pro
	}
	s.info = telemetry.SessionInfo{
		Model:        g.model,
		OS:           g.pick(map[string]float64{"linux": 55, "darwin": 40, "windows": 5}, []string{"linux", "darwin", "windows"}),
		Shell:        g.pick(map[string]float64{"zsh": 45, "bash": 40, "fish": 10, "pwsh": 5}, []string{"zsh", "bash", "fish", "pwsh"}),
		GitDirty:     gitDirty,
		AgentsMD:     agents,
		SystemPrompt: "You are Fred, a coding agent. Build " + s.version + ".",
		Tools:        catalogTools,
		Commands:     catalogCommands,
		Models:       catalogModels,
	}
	g.ctx = 2500

	// The pathologies of this session.
	if g.model == Flash && r.Float64() < pStuck {
		s.stuck = true
	}
	wantStorm := r.Float64() < pStorm
	var inj []injection
	if r.Float64() < pLoop {
		inj = append(inj, injection{kind: "stuck", repeats: 3 + g.geom(0.35, 7)})
	}
	if r.Float64() < pPolling {
		inj = append(inj, injection{kind: "polling", repeats: 3 + r.IntN(4)})
	}
	if r.Float64() < pNearMiss {
		if r.IntN(2) == 0 {
			inj = append(inj, injection{kind: "run_of_2", repeats: 2})
		} else {
			inj = append(inj, injection{kind: "alternating", repeats: 4 + r.IntN(3)})
		}
	}
	if !s.stuck && r.Float64() < pPlan {
		switch x := r.Float64(); {
		case x < 0.50:
			s.plan = planNormal
		case x < 0.75:
			s.plan = planDropOff
		case x < 0.90:
			s.plan = planBackEarly
		default:
			s.plan = planStart
		}
	}
	if s.plan == planDropOff {
		inj = nil // a session that only plans reads; its loops would be in plan turns, kept simple
	}

	exchanges := 1 + min(int(g.logn(3.5, 0.8)), 40)
	if r.Float64() < 0.05 {
		g.command("/resume")
	}
	if g.model == Flash && !s.stuck && r.Float64() < 0.06 {
		// Chooses the strong model before the first turn: not a stuck session.
		g.swap(Pro)
	}
	switch s.plan {
	case planStart:
		g.mode = "plan"
		for range 1 + r.IntN(2) {
			g.exchange(exOpts{})
		}
		g.switchMode("act")
	case planNormal:
		if r.Float64() < 0.3 {
			g.exchange(exOpts{})
		}
		g.switchMode("plan")
		for range 1 + r.IntN(3) {
			g.exchange(exOpts{})
		}
		g.switchMode("act")
	case planDropOff:
		g.switchMode("plan")
		for range 1 + r.IntN(3) {
			g.exchange(exOpts{})
		}
		g.end()
		return s
	case planBackEarly:
		g.switchMode("plan")
		g.exchange(exOpts{})
		g.switchMode("act")
		g.exchange(exOpts{maxIter: 1 + r.IntN(2)})
		g.switchMode("plan")
		g.exchange(exOpts{})
		g.switchMode("act")
	}
	stormAt := -1
	if wantStorm {
		stormAt = r.IntN(exchanges)
	}
	stuckAt := -1
	if s.stuck {
		stuckAt = r.IntN(min(exchanges, 3))
	}
	// Each injection gets an exchange of its own, before the exchange it
	// is drawn for (exchanges: after the last one).
	injAt := make([]int, len(inj))
	for k := range inj {
		injAt[k] = r.IntN(exchanges + 1) // exchanges+1: after the last normal one
	}
	for e := 0; e <= exchanges; e++ {
		for k := range inj {
			if injAt[k] == e {
				g.exchange(exOpts{inject: &inj[k]})
			}
		}
		if e == exchanges {
			break
		}
		if e == stuckAt {
			g.stuckExchange()
			if !s.swapped {
				break // gave up
			}
			continue
		}
		g.exchange(exOpts{storm: e == stormAt})
		g.between()
	}
	g.end()
	return s
}

func (g *gen) pickUser(users int) int {
	var sum float64
	for u := 0; u < users; u++ {
		sum += 1 / math.Pow(float64(u+1), 0.7)
	}
	x := g.r.Float64() * sum
	for u := 0; u < users; u++ {
		x -= 1 / math.Pow(float64(u+1), 0.7)
		if x < 0 {
			return u
		}
	}
	return users - 1
}

func (g *gen) add(st step) {
	g.s.steps = append(g.s.steps, st)
	g.s.records++
}

// command records a slash command as typed.
func (g *gen) command(line string) {
	name := strings.Fields(strings.TrimPrefix(line, "/"))[0]
	if !slices.Contains(catalogCommands, name) {
		g.s.outside++ // the library records it as other, and counts a replacement
	}
	g.add(step{kind: stepCommand, at: g.t, line: line})
	g.t += time.Millisecond
}

func (g *gen) switchMode(to string) {
	g.t += ms(g.logn(4000, 0.7))
	g.command("/" + to)
	g.add(step{kind: stepMode, at: g.t, from: g.mode, to: to})
	g.t += time.Millisecond
	g.mode = to
}

func (g *gen) swap(to string) {
	g.t += ms(g.logn(3000, 0.6))
	g.command("/model " + to)
	g.add(step{kind: stepSwap, at: g.t, from: g.model, to: to})
	g.t += time.Millisecond
	g.model = to
}

// between is what happens between two exchanges: the user thinks, and
// sometimes runs a command or changes model.
func (g *gen) between() {
	g.t += ms(min(g.logn(40000, 1.0), 30*60*1000))
	r := g.r
	if r.Float64() < 0.22 {
		w := map[string]float64{"clear": 6, "compact": 8, "cost": 4, "diff": 6, "undo": 4, "help": 3, "init": 1,
			"review": 2, "telemetry": 0.8, "config": 0.8, "memory": 0.2, "hlep": 0.4, "stauts": 0.3}
		c := g.pick(w, []string{"clear", "compact", "cost", "diff", "undo", "help", "init", "review", "telemetry", "config", "memory", "hlep", "stauts"})
		line := "/" + c
		switch c {
		case "clear":
			g.ctx = 2500
		case "compact":
			g.ctx = g.ctx / 4
			line = "/compact keep the test plan"
		case "review":
			line = "/review internal/auth"
		}
		g.command(line)
		g.t += ms(g.logn(3000, 0.6))
	}
	if g.model == Pro && !g.s.stuck && r.Float64() < 0.05 {
		g.swap(Flash) // back to the cheap model for routine work
	}
}

type exOpts struct {
	storm   bool
	maxIter int
	inject  *injection
}

// iter is one turn being planned: its calls and how it ends.
type iter struct {
	calls   []*telemetry.ToolCall // nil entries: a normal call, filled in at emission
	finish  string
	apiErr  string
	retries int
	errType string
	length  bool
}

// exchange is one user prompt and the agent iterations that answer it.
func (g *gen) exchange(o exOpts) {
	r := g.r
	k := 1 + g.geom(0.4, 9)
	if o.maxIter > 0 {
		k = o.maxIter
	}
	its := make([]*iter, k)
	for i := range its {
		it := &iter{finish: "tool_calls"}
		if i == k-1 {
			it.finish = "stop"
			switch x := r.Float64(); {
			case g.lengths == 0 && (x < 0.02 && g.model == Pro || x < 0.03 && g.model == Flash):
				it.finish, it.length = "length", true
				g.lengths++
			case x < 0.04:
				it.finish = "cancelled"
			case x < 0.042:
				it.finish = "content_filter"
			}
		} else {
			it.calls = make([]*telemetry.ToolCall, 1+g.geom(0.5, maxNormalCalls-1))
		}
		its[i] = it
	}
	if o.inject != nil {
		its = g.inject(its, o.inject)
	}
	if o.storm {
		its = g.storm(its)
	} else {
		for _, it := range its {
			if g.s.retryTotal < maxNormalRetries && r.Float64() < 0.03 {
				it.retries = 1
				if r.Float64() < 0.2 && g.s.retryTotal < maxNormalRetries-1 {
					it.retries = 2
				}
				it.errType = g.pick(map[string]float64{"rate_limit": 45, "overloaded": 30, "server_error": 10, "timeout": 10, "connection": 5},
					[]string{"rate_limit", "overloaded", "server_error", "timeout", "connection"})
				g.s.retryTotal += it.retries
			}
		}
	}
	input := prompts[r.IntN(len(prompts))]
	for i, it := range its {
		in := ""
		if i == 0 {
			in = input
		}
		g.turn(it, in)
		if i < len(its)-1 {
			g.t += ms(g.logn(40, 0.5))
		}
	}
}

// storm gives each iteration of the exchange several retries, and makes some
// fail for good, until the session has at least StormRetries.
func (g *gen) storm(its []*iter) []*iter {
	r := g.r
	et := "rate_limit"
	if r.IntN(3) == 0 {
		et = "overloaded"
	}
	for len(its) < 3 {
		its = append(its[:len(its)-1], &iter{finish: "tool_calls", calls: make([]*telemetry.ToolCall, 1)}, its[len(its)-1])
	}
	n := 0
	for n < minStorm {
		n = 0
		failed := false
		for _, it := range its {
			it.errType = et
			it.retries = 2 + r.IntN(4)
			if !failed && r.Float64() < 0.3 {
				// Gives up after 6 attempts: the turn fails (once a
				// session, so a storm alone never looks like a stuck
				// session).
				it.retries, it.finish, it.apiErr, it.calls, failed = 6, "error", et, nil, true
			}
			n += it.retries
		}
	}
	g.s.retryTotal += n
	g.s.storm = true
	return its
}

// inject puts a loop or a near miss into the iterations.
func (g *gen) inject(its []*iter, in *injection) []*iter {
	r := g.r
	mk := func(tool, args, result string, failed bool) *telemetry.ToolCall {
		return &telemetry.ToolCall{Name: tool, Args: []byte(args), Result: result, Failed: failed, Permission: "auto_allowed"}
	}
	var seq []*telemetry.ToolCall
	switch in.kind {
	case "stuck":
		var c *telemetry.ToolCall
		switch r.IntN(3) {
		case 0:
			c = mk("bash", `{"command":"go build ./..."}`, "Error: internal/auth/token.go:41:2: undefined: refreshToken", true)
			c.Permission = "user_allowed"
		case 1:
			c = mk("read_file", `{"path":"internal/auth/session.go","offset":0}`, strings.Repeat("package auth\n", 90), false)
		default:
			c = mk("grep", `{"pattern":"func refreshToken","path":"."}`, "no matches", false)
		}
		in.tool = c.Name
		for range in.repeats {
			seq = append(seq, c)
		}
	case "polling":
		in.tool = "bash"
		run := 4000 + r.IntN(900)
		for i := range in.repeats {
			res := fmt.Sprintf("run %d: in_progress (%d of %d jobs done)", run, i, in.repeats)
			if i == in.repeats-1 {
				res = fmt.Sprintf("run %d: completed: success", run)
			}
			c := mk("bash", fmt.Sprintf(`{"command":"gh run view %d --json status"}`, run), res, false)
			c.Permission = "user_allowed"
			seq = append(seq, c)
		}
	case "run_of_2":
		in.tool = "read_file"
		c := mk("read_file", `{"path":"go.sum","limit":40}`, "module example.com/app\n\ngo 1.26\n", false)
		seq = []*telemetry.ToolCall{c, c}
	case "alternating":
		in.tool = "read_file"
		a := mk("read_file", `{"path":"internal/api/handler.go","offset":120}`, strings.Repeat("func handle() {}\n", 40), false)
		b := mk("edit_file", `{"path":"internal/api/handler.go","old":"x","new":"y"}`, "Error: old text not found", true)
		for i := range in.repeats {
			if i%2 == 0 {
				seq = append(seq, a)
			} else {
				seq = append(seq, b)
			}
		}
	}
	defer func() { g.s.injected = append(g.s.injected, *in) }()
	// Where the run lands: one turn, one call per turn, or across two turns.
	mode := r.IntN(4)
	if len(seq) > 5 && mode >= 2 {
		mode = 0
	}
	switch {
	case mode <= 1: // one call per turn, as a model that keeps asking does
		in.span = "per_turn"
		out := make([]*iter, 0, len(its)+len(seq))
		for _, c := range seq {
			out = append(out, &iter{finish: "tool_calls", calls: []*telemetry.ToolCall{c}})
		}
		return append(out, its...)
	case mode == 2: // all in one turn
		in.span = "one_turn"
		return append([]*iter{{finish: "tool_calls", calls: seq}}, its...)
	default: // split over the end of one turn and the start of the next
		in.span = "two_turns"
		a := 1 + r.IntN(len(seq)-1)
		first := &iter{finish: "tool_calls", calls: append([]*telemetry.ToolCall{nil}, seq[:a]...)}
		second := &iter{finish: "tool_calls", calls: append(append([]*telemetry.ToolCall{}, seq[a:]...), nil)}
		return append([]*iter{first, second}, its...)
	}
}

// stuckExchange: flash goes round in circles (turns that hit the length
// limit or ask for a pile of tool calls), then the user switches to pro,
// which finishes; or gives up.
func (g *gen) stuckExchange() {
	r := g.r
	bad := StuckRun + 1 + r.IntN(4)
	input := prompts[r.IntN(len(prompts))]
	for i := range bad {
		it := &iter{finish: "tool_calls"}
		if r.IntN(2) == 0 {
			it.finish, it.length = "length", true
		} else {
			it.calls = make([]*telemetry.ToolCall, StuckCalls+1+r.IntN(5))
		}
		in := ""
		if i == 0 {
			in = input
		}
		g.turn(it, in)
		g.t += ms(g.logn(60, 0.5))
	}
	if r.Float64() < 0.7 {
		g.s.swapped = true
		g.swap(Pro)
		g.exchange(exOpts{})
		g.between()
	}
}

var prompts = []string{
	"fix the failing test in internal/auth",
	"add a --json flag to the export command",
	"why does the build fail on windows?",
	"refactor the session cache to use an LRU",
	"write a migration that adds an index on created_at",
	"explain what handler.go does",
	"bump the go version and fix the deprecations",
	"the CI is red again, look at the last run",
}

var words = strings.Fields("the a change to function test file build error fix update refactor handler cache session token index query " +
	"result value check config option flag review plan step now then done next")

// text makes an assistant answer of about n characters.
func (g *gen) text(n int) string {
	var b strings.Builder
	for b.Len() < n {
		b.WriteString(words[g.r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.String()
}

// turn emits one iteration: the model call (with its retries), the tool
// calls, the end.
func (g *gen) turn(it *iter, input string) {
	r := g.r
	s := g.s
	ti := len(s.steps)
	g.add(step{kind: stepTurn, at: g.t, mode: g.mode, model: g.model})
	// Retries while waiting for the model.
	for a := 1; a <= it.retries; a++ {
		latency := ms(g.logn(300, 0.8)) // the failed attempt
		if it.errType == "timeout" {
			latency = 60 * time.Second
		}
		g.t += latency
		base := 500.0
		if it.errType == "overloaded" {
			base = 1000
		}
		delay := ms(math.Min(base*math.Pow(2, float64(a-1))*(0.5+r.Float64()), 30000))
		status := map[string]int{"rate_limit": 429, "overloaded": 529, "server_error": 500, "timeout": 0, "connection": 0}[it.errType]
		g.add(step{kind: stepRetry, at: g.t, attempt: a, delay: delay, latency: latency, errType: it.errType, status: status})
		g.t += delay
	}
	// The answer.
	maxOut := 8192
	perTok, first := 4.0, 300.0
	if g.model == Pro {
		maxOut, perTok, first = 16384, 12, 900
	}
	completion := int(min(g.logn(180, 0.9), float64(maxOut)))
	if len(it.calls) == 0 {
		completion = int(min(g.logn(450, 0.9), float64(maxOut)))
	}
	if it.length {
		completion = maxOut
	}
	if it.apiErr != "" {
		completion = 0
	}
	g.t += ms((first + float64(completion)*perTok) * math.Exp(0.35*r.NormFloat64()))
	prompt := g.ctx + len(input)/4
	cached := 0
	if g.ctx > 2500 {
		cached = int(float64(prompt) * (0.5 + 0.4*r.Float64()))
	}
	// The tool calls, one after another.
	for _, c := range it.calls {
		call := g.toolCall(c)
		call.StartedAt = time.Time{}
		d := call.Duration
		g.add(step{kind: stepCall, at: g.t, end: g.t + d, call: call})
		g.t += d
		g.ctx += min(len(call.Result)/4, 16000)
	}
	g.ctx += completion + len(input)/4
	window := 128000
	if g.model == Pro {
		window = 200000
	}
	g.ctx = min(g.ctx, window)
	res := telemetry.TurnResult{PromptTokens: prompt, CompletionTokens: completion, CachedTokens: cached,
		FinishReason: it.finish, APIErrorType: it.apiErr, UserInput: input}
	if completion > 0 {
		res.AssistantText = g.text(min(completion*3, 1500))
	}
	s.steps[ti].res = res
	s.steps[ti].end = g.t
}

// toolCall fills in a call: an injected one as given (with a duration), a
// normal one (nil) from the shapes, with arguments never equal to the call
// before it (so runs exist only where they were injected).
func (g *gen) toolCall(c *telemetry.ToolCall) telemetry.ToolCall {
	r := g.r
	if c != nil {
		call := *c
		sh := shapes[call.Name]
		call.Duration = ms(g.logn(sh.medianMs, sh.sigma/2))
		g.prevKey = call.Name + string(call.Args)
		g.n++
		return call
	}
	tools := catalogTools
	if g.mode == "plan" {
		tools = readOnly
	}
	w := make(map[string]float64, len(tools))
	for _, t := range tools {
		w[t] = shapes[t].weight
	}
	var call telemetry.ToolCall
	for {
		name := g.pick(w, tools)
		args := g.args(name)
		if name+args != g.prevKey {
			call = telemetry.ToolCall{Name: name, Args: []byte(args)}
			break
		}
	}
	g.n++
	g.prevKey = call.Name + string(call.Args)
	sh := shapes[call.Name]
	x := r.Float64()
	switch {
	case g.mode == "plan" || x < sh.auto:
		call.Permission = "auto_allowed"
	case x < sh.auto+sh.user:
		call.Permission = "user_allowed"
	default:
		call.Permission = "denied"
		call.Failed = true
		call.Result = "Error: the user denied this call"
		call.Duration = ms(g.logn(2, 0.5))
		return call
	}
	call.Duration = ms(g.logn(sh.medianMs, sh.sigma))
	size := int(min(g.logn(sh.medianBytes, sh.bSig), 256<<10))
	if r.Float64() < sh.failRate {
		call.Failed = true
		call.Result = "Error: " + g.text(min(size, 300))
		return call
	}
	call.Result = fmt.Sprintf("%s #%d\n", call.Name, g.n) + filler[:min(size, len(filler))]
	return call
}

var filler = strings.Repeat("lorem ipsum dolor sit amet, consectetur adipiscing elit; ", 4800)

var files = []string{"main.go", "go.mod", "internal/auth/token.go", "internal/auth/session.go", "internal/api/handler.go",
	"internal/api/routes.go", "internal/db/query.go", "internal/db/migrate.go", "cmd/app/main.go", "README.md",
	"internal/cache/lru.go", "internal/cache/lru_test.go", "Makefile", "internal/export/json.go", "docs/usage.md"}

var commands = []string{"go test ./...", "go vet ./...", "git status", "git diff --stat", "make lint", "ls -la", "go build ./cmd/app"}

// args are the arguments of a normal call (a fingerprint is all that is
// recorded of them).
func (g *gen) args(tool string) string {
	r := g.r
	f := files[r.IntN(len(files))]
	switch tool {
	case "read_file", "list_dir":
		return fmt.Sprintf(`{"path":%q}`, f)
	case "grep":
		return fmt.Sprintf(`{"pattern":"func %c","path":%q}`, 'A'+rune(r.IntN(26)), f)
	case "glob":
		return fmt.Sprintf(`{"pattern":"**/*%d.go"}`, r.IntN(20))
	case "edit_file", "write_file":
		return fmt.Sprintf(`{"path":%q,"edit":%d}`, f, g.n)
	case "bash":
		return fmt.Sprintf(`{"command":%q}`, commands[r.IntN(len(commands))])
	case "web_fetch":
		return fmt.Sprintf(`{"url":"https://pkg.go.dev/search?q=%d"}`, r.IntN(50))
	default:
		return fmt.Sprintf(`{"items":%d}`, g.n)
	}
}

// end closes the session some seconds after its last step.
func (g *gen) end() {
	g.t += ms(g.logn(5000, 0.8))
	g.s.length = g.t
	g.s.records += 2 // the session record, at start and with ended_at
}
