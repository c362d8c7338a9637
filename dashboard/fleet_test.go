package dashboard

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/google/uuid"
)

// fleet writes n sessions through the store, as the ingest server would,
// with every problem the pages show: stuck flash sessions that swap to
// pro, retry storms, stuck and polling loops, plan sessions, denials and
// dead commands. Deterministic; the sessions end before now.
func fleet(t testing.TB, url string, set schema.Set, n int, now time.Time) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, url, store.Options{Set: set, Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seq := 0
	id := func() uuid.UUID {
		seq++
		return uuid.MustParse(fmt.Sprintf("0190b000-0000-7000-8000-%012d", seq))
	}
	fp := func(k int) schema.Hash { return sha256.Sum256([]byte(fmt.Sprint(k))) }
	batches := map[string]*store.Batch{}
	var users []string
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("user-%02d", i%7)
		b := batches[user]
		if b == nil {
			b = &store.Batch{UserID: user}
			batches[user] = b
			users = append(users, user)
		}
		start := now.Add(-time.Duration(n-i) * 11 * time.Minute)
		at := func(ms int) schema.Time { return schema.TimeOf(start.Add(time.Duration(ms) * time.Millisecond)) }
		model := "fred-flash"
		if i%3 == 0 {
			model = "fred-pro"
		}
		s := schema.Session{SessionID: id(), StartedAt: at(0), EndedAt: at(600_000), Model: model, FredVersion: "1.4.0",
			RuntimeVersion: "go1.26.8", OS: "linux", Shell: "bash", ToolCatalog: []string{"read_file", "grep", "bash", "edit_file"},
			CommandCatalog: []string{"help", "plan", "model", "compact", "vim", "doctor"}, ModelCatalog: []string{"fred-flash", "fred-pro"}, Agent: "fred"}
		b.Sessions = append(b.Sessions, s)
		ev := func(ms int, p interface {
			EventName() string
			Props() schema.Props
		}) {
			b.Events = append(b.Events, schema.Event{EventID: id(), SessionID: s.SessionID, TS: at(ms), Name: p.EventName(), Props: p.Props()})
		}
		turns := 3 + i%5
		for k := 0; k < turns; k++ {
			tm, mode, finish := model, "act", "tool_calls"
			if k == turns-1 {
				finish = "stop"
			}
			if i%4 == 1 && k < 2 {
				mode = "plan"
			}
			stuck := i%6 == 2 && model == "fred-flash"
			if stuck && k < 3 {
				finish = "length"
			}
			if stuck && k >= 3 {
				tm = "fred-pro"
			}
			ncalls := 1 + (i+k)%4
			if i%5 == 0 && k == 1 {
				ncalls = 5
			}
			tu := schema.Turn{TurnID: id(), SessionID: s.SessionID, Seq: int64(k), StartedAt: at(k * 60_000), Model: tm, Mode: mode,
				PromptTokens: int64(800 + 300*k + 17*i), CompletionTokens: int64(90 + 11*k + i%13), FinishReason: finish,
				DurationMs: int64(400 + 350*((i*7+k*3)%11)), NumToolCalls: int64(ncalls)}
			if i%9 == 4 && k == 0 {
				tu.APIErrorType = "rate_limit"
				tu.FinishReason = "error"
			}
			b.Turns = append(b.Turns, tu)
			for c := 0; c < ncalls; c++ {
				tool := []string{"read_file", "grep", "bash", "edit_file"}[(i+k+c)%4]
				args, res := 1000*i+10*k+c, 1000*i+10*k+c
				if i%5 == 0 && k == 1 { // a stuck loop: the same read, the same result
					tool, args, res = "read_file", 7, 7
				}
				if i%10 == 3 && k == 1 && c < 3 { // polling: the same bash, changing results
					tool, args = "bash", 9
				}
				perm := "auto_allowed"
				if tool == "bash" || tool == "edit_file" {
					perm = []string{"user_allowed", "denied", "user_allowed"}[(i+c)%3]
				}
				outcome := "ok"
				if (i+k+c)%17 == 0 {
					outcome = "error"
				}
				b.ToolCalls = append(b.ToolCalls, schema.ToolCall{CallID: id(), SessionID: s.SessionID, TurnID: tu.TurnID, Seq: int64(c),
					StartedAt: at(k*60_000 + 100*c), ToolName: tool, ArgsFingerprint: fp(args), Permission: perm,
					DurationMs: int64(20 + 13*((i+c)%9)), Outcome: outcome, ResultBytes: int64(100 * (c + 1)), ResultFingerprint: fp(res)})
			}
			if stuck && k == 2 {
				ev(k*60_000+50_000, schema.ModelSwapProps{From: "fred-flash", To: "fred-pro"})
			}
			if i%4 == 1 && k == 1 {
				ev(k*60_000+50_000, schema.ModeChangeProps{From: "plan", To: "act"})
			}
		}
		retries := i % 3
		if i%8 == 3 {
			retries = 7 // a storm
		}
		for a := 0; a < retries; a++ {
			ev(1000+a*200, schema.APIRetryProps{Attempt: int64(a + 1), DelayMs: int64(250 << min(a, 5)), ErrorType: []string{"rate_limit", "overloaded"}[a%2], Status: 429})
		}
		if i%2 == 0 {
			ev(500, schema.SlashCommandProps{Command: []string{"help", "plan", "model", "compact"}[i%4]})
		}
	}
	for _, u := range users {
		if _, err := st.Write(ctx, batches[u]); err != nil {
			t.Fatalf("write %s: %v", u, err)
		}
	}
}
