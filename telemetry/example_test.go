package telemetry_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/fredcode/fredtel/telemetry"
)

// A whole session as an agent loop records it. Here the session is
// self-hosted into an in-memory sink, so the example shows what would be
// written; in Fred the sinks are the central sender and selfhost.Open.
func Example() {
	dir, _ := os.MkdirTemp("", "fred-example")
	defer os.RemoveAll(dir)
	env := map[string]string{"FRED_CONFIG_DIR": dir, "DSC_TELEMETRY_DB_URL": "sqlite:example.db", "DSC_TELEMETRY_NO_TEXT": "1"}
	sink := &printSink{}
	sess := telemetry.Start(telemetry.Options{
		FredVersion: "1.4.2",
		Getenv:      func(k string) string { return env[k] },
		SelfHosted:  func(context.Context, string) (telemetry.LocalSink, error) { return sink, nil },
	}, telemetry.SessionInfo{
		Model:        "fred-flash-2",
		SystemPrompt: "You are Fred.",
		Tools:        []string{"read_file", "bash"},
		Commands:     []string{"help", "model"},
	})
	fmt.Println(sess.Status())

	sess.SlashCommand("/model fred-pro-2")
	sess.ModelSwap("fred-flash-2", "fred-pro-2")
	turn := sess.BeginTurn("act", "fred-pro-2")
	turn.ToolCall(telemetry.ToolCall{
		Name: "read_file", Args: []byte(`{"path": "main.go"}`),
		Result: "package main…", Permission: "auto_allowed", Duration: 4 * time.Millisecond,
	})
	sess.APIRetry(telemetry.Retry{Attempt: 1, Delay: 2 * time.Second, Latency: 340 * time.Millisecond, ErrorType: "rate_limit", Status: 429})
	turn.End(telemetry.TurnResult{
		PromptTokens: 1200, CompletionTokens: 80, FinishReason: "stop",
		UserInput: "what does main.go do?", AssistantText: "It starts the server.",
	})
	sess.Close(context.Background())

	fmt.Println(sink.summary)
	// Output:
	// self-hosted → sqlite:example.db (no text: DSC_TELEMETRY_NO_TEXT)
	// 2 sessions, 1 turns (prompt 21 chars, text kept: false), 1 tool calls (read_file, 15 result bytes), 3 events
}

type printSink struct{ summary string }

func (p *printSink) Write(_ context.Context, b *telemetry.LocalBatch) error {
	var t, c string
	for _, x := range b.Turns {
		t = fmt.Sprintf("prompt %d chars, text kept: %v", x.PromptChars, x.UserInput != "")
	}
	for _, x := range b.ToolCalls {
		c = fmt.Sprintf("%s, %d result bytes", x.ToolName, x.ResultBytes)
	}
	p.summary = fmt.Sprintf("%d sessions, %d turns (%s), %d tool calls (%s), %d events", len(b.Sessions), len(b.Turns), t, len(b.ToolCalls), c, len(b.Events))
	return nil
}

func (p *printSink) Close() error { return nil }
