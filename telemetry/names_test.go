package telemetry

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
)

// The names of issue 12: each fits the tool, model or command pattern (or
// nearly), and each would identify someone or something if it reached the
// central tables.
var (
	mcpTool      = "mcp__acme-payroll-prod__export_salaries"
	codexMCPTool = "acme-payroll__export_salaries"
	email        = "alice@example.com"
	credsURL     = "https://bob:hunter2@db.internal/prod"
	path         = "/home/alice/models/finetuned.bin"
	sentence     = "please-delete-prod-db-now"
)

// hostileSession drives a session whose every name (model, tool, slash
// command, model swap) is one of the names above; the build's catalogs are
// read_file and bash, model and help, fred-flash-2 and fred-pro-2.
func hostileSession(s *Session) {
	for _, c := range []string{"/" + email, "/" + sentence, "/" + mcpTool, "/model " + credsURL, "/help"} {
		s.SlashCommand(c)
	}
	s.ModelSwap("fred-flash-2", email)
	s.ModelSwap(credsURL, path)
	s.ModelSwap(sentence, "fred-pro-2")
	for _, m := range []string{email, credsURL, path, sentence, "fred-pro-2"} {
		t := s.BeginTurn("act", m)
		for _, tool := range []string{mcpTool, codexMCPTool, email, credsURL, path, sentence, "read_file"} {
			t.ToolCall(ToolCall{Name: tool, Args: []byte(`{}`), Result: "ok", Permission: "auto_allowed"})
		}
		t.End(TurnResult{FinishReason: "stop"})
	}
}

func hostileInfo() SessionInfo {
	return SessionInfo{
		Model: sentence,
		// An embedder that lists a user-configured MCP tool among its own:
		// it is left out of the catalog, so it cannot vouch for the name.
		Tools:    []string{"read_file", "bash", mcpTool},
		Commands: []string{"model", "help"},
		Models:   []string{"fred-flash-2", "fred-pro-2", "fred-pro-2", "not a model name"},
	}
}

// TestCentralNamesComeFromClosedVocabularies: on the central route every
// model, tool and command name is one of the build's catalogs or a fixed
// word of the schema; none of issue 12's names reaches the payload, in any
// field. The self-hosted route keeps the names that fit the patterns.
func TestCentralNamesComeFromClosedVocabularies(t *testing.T) {
	opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	s := Start(opts, hostileInfo())
	hostileSession(s)
	s.Close(context.Background())
	payload, n := sink.all()
	if n == 0 {
		t.Fatal("nothing was sent: the check would be vacuous")
	}
	for _, name := range []string{mcpTool, codexMCPTool, email, credsURL, path, sentence, "acme", "payroll", "salaries", "alice", "hunter2", "finetuned", "delete"} {
		for _, e := range encodings(name) {
			if strings.Contains(payload, e) {
				t.Fatalf("%q reached the central payload (as %q):\n%s", name, e, payload)
			}
		}
	}
	b := sink.decoded(t)
	sess := b.Sessions[0]
	if !reflect.DeepEqual(sess.ToolCatalog, []string{"read_file", "bash"}) || !reflect.DeepEqual(sess.CommandCatalog, []string{"model", "help"}) ||
		!reflect.DeepEqual(sess.ModelCatalog, []string{"fred-flash-2", "fred-pro-2"}) {
		t.Errorf("catalogs: tools %q, commands %q, models %q; want the build's own names, checked and without repeats",
			sess.ToolCatalog, sess.CommandCatalog, sess.ModelCatalog)
	}
	allowed := func(catalog, fixed []string) map[string]bool {
		m := set(catalog)
		for _, f := range fixed {
			m[f] = true
		}
		return m
	}
	models := allowed(sess.ModelCatalog, schema.FixedModelNames())
	tools := allowed(sess.ToolCatalog, schema.FixedToolNames())
	cmds := allowed(sess.CommandCatalog, schema.FixedCommandNames())
	var gotTools, gotModels []string
	check := func(kind string, ok map[string]bool, name string) {
		if !ok[name] {
			t.Errorf("%s %q is neither in the session's catalog nor a fixed word", kind, name)
		}
	}
	check("model", models, sess.Model)
	for _, tr := range b.Turns {
		check("model", models, tr.Model)
		gotModels = append(gotModels, tr.Model)
	}
	for _, c := range b.ToolCalls {
		check("tool", tools, c.ToolName)
		gotTools = append(gotTools, c.ToolName)
	}
	var gotCmds []string
	for _, e := range b.Events {
		var p map[string]string
		json.Unmarshal(e.Props, &p)
		switch e.Name {
		case "slash_command":
			check("command", cmds, p["command"])
			gotCmds = append(gotCmds, p["command"])
		case "model_swap":
			check("model", models, p["from"])
			check("model", models, p["to"])
			gotModels = append(gotModels, p["from"]+">"+p["to"])
		}
	}
	// And the fixed word is the right one.
	if sess.Model != "custom" {
		t.Errorf("session model %q, want custom", sess.Model)
	}
	if got := strings.Join(gotTools[:7], " "); got != "mcp mcp other other other other read_file" {
		t.Errorf("tools recorded as %s", got)
	}
	if got := strings.Join(gotCmds, " "); got != "other other other model help" {
		t.Errorf("commands recorded as %s", got)
	}
	if got := strings.Join(gotModels, " "); got != "custom custom custom custom fred-pro-2 fred-flash-2>custom custom>custom custom>fred-pro-2" {
		t.Errorf("models recorded as %s", got)
	}

	// Self-hosted: the user's own database keeps the model and tool names
	// that fit the patterns (a tool name has no @ or /, a model does not
	// start with /: those become other). A command outside the catalog is a
	// typed word, not a name: other there too.
	opts = testOptions(configDir(t, false, false), map[string]string{"DSC_TELEMETRY_DB_URL": "sqlite:/x.db"}, &testkit.Buffer{})
	local := &memLocal{}
	opts.SelfHosted = func(context.Context, string) (LocalSink, error) { return local, nil }
	s = Start(opts, hostileInfo())
	hostileSession(s)
	s.Close(context.Background())
	js, _ := json.Marshal(local.batches)
	for _, want := range []string{`"tool_name":"` + mcpTool, `"tool_name":"` + codexMCPTool, `"tool_name":"` + sentence,
		`"model":"` + email, `"model":"` + credsURL, `"model":"` + sentence, `"command":"other"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("self-hosted lost the real name %s", want)
		}
	}
	if strings.Contains(string(js), `"command":"`+sentence) {
		t.Error("self-hosted recorded a typed command outside the catalog")
	}
}

// TestEmptyCommandCatalogRecordsNoWord: an embedder that declares no
// commands gets every command recorded as other on the central route, not
// whatever word was typed.
func TestEmptyCommandCatalogRecordsNoWord(t *testing.T) {
	opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	s := Start(opts, SessionInfo{})
	for _, c := range []string{"/help", "/" + sentence, "/deploy-acme-payroll"} {
		s.SlashCommand(c)
	}
	s.Close(context.Background())
	var got []string
	for _, e := range sink.decoded(t).Events {
		got = append(got, string(e.Props))
	}
	if strings.Join(got, " ") != `{"command":"other"} {"command":"other"} {"command":"other"}` {
		t.Errorf("with an empty catalog, commands recorded as %v", got)
	}
}

// TestSchemaV2Fields: the fields version 2 added are filled: the model
// catalog and agent of the session, the result fingerprint of a tool call
// (an HMAC under the session's key, like the arguments': never the text),
// the order of events, and how long a retried attempt took.
func TestSchemaV2Fields(t *testing.T) {
	opts, sink := centralOptions(configDir(t, true, true), &testkit.Buffer{})
	s := Start(opts, SessionInfo{Model: "fred-flash-2", Tools: []string{"bash"}, Models: []string{"fred-flash-2"}})
	tr := s.BeginTurn("act", "fred-flash-2")
	call := func(result string) {
		tr.ToolCall(ToolCall{Name: "bash", Args: []byte(`{"command":"go test ./..."}`), Result: result, Permission: "auto_allowed"})
	}
	call("FAIL: TestX")
	call("FAIL: TestX")
	call("ok")
	for i := range 5 {
		s.APIRetry(Retry{Attempt: i + 1, Delay: time.Duration(i) * time.Second, Latency: 1500 * time.Millisecond, ErrorType: "overloaded", Status: 529})
	}
	s.ModeChange("act", "plan")
	tr.End(TurnResult{FinishReason: "stop"})
	s.Close(context.Background())
	payload, _ := sink.all()
	b := sink.decoded(t)

	if sess := b.Sessions[0]; sess.Agent != "fred" || sess.AgentVersion != "" || !reflect.DeepEqual(sess.ModelCatalog, []string{"fred-flash-2"}) {
		t.Errorf("session agent %q, agent_version %q, model_catalog %q; want fred, null, the build's models", sess.Agent, sess.AgentVersion, sess.ModelCatalog)
	}
	if !strings.Contains(payload, `"agent_version":null`) {
		t.Errorf("agent_version is not null for fred:\n%s", payload)
	}
	fp := []schema.Hash{b.ToolCalls[0].ResultFingerprint, b.ToolCalls[1].ResultFingerprint, b.ToolCalls[2].ResultFingerprint}
	if fp[0].IsZero() || fp[0] != fp[1] || fp[0] == fp[2] {
		t.Errorf("result fingerprints %v: want equal for equal results, different for a different one", fp)
	}
	if b.ToolCalls[0].ArgsFingerprint != b.ToolCalls[2].ArgsFingerprint {
		t.Error("same arguments, different fingerprints")
	}
	// Keyed: not the plain SHA-256 of the result, and not its HMAC under
	// any key the test can name.
	if plain := sha256.Sum256([]byte("FAIL: TestX")); fp[0] == schema.Hash(plain) {
		t.Error("the result fingerprint is a plain SHA-256: a guess could be checked")
	}
	m := hmac.New(sha256.New, nil)
	m.Write([]byte("FAIL: TestX"))
	if fp[0] == schema.Hash(m.Sum(nil)) {
		t.Error("the result fingerprint is unkeyed")
	}
	if strings.Contains(payload, "TestX") {
		t.Error("the result text reached the payload")
	}
	for i, e := range b.Events {
		if !e.Seq.Known || e.Seq.V != int64(i) {
			t.Errorf("event %d (%s) has seq %+v, want %d", i, e.Name, e.Seq, i)
		}
	}
	if !strings.Contains(string(b.Events[0].Props), `"latency_ms":1500`) {
		t.Errorf("api_retry props %s lack latency_ms", b.Events[0].Props)
	}

	// Another session, same result: another key, another fingerprint.
	sink2 := &recSink{}
	opts.Central = sink2
	s = Start(opts, SessionInfo{Tools: []string{"bash"}})
	s.BeginTurn("act", "m").ToolCall(ToolCall{Name: "bash", Args: []byte(`{"command":"go test ./..."}`), Result: "FAIL: TestX"})
	s.Close(context.Background())
	if other := sink2.decoded(t).ToolCalls[0].ResultFingerprint; other == fp[0] {
		t.Error("two sessions gave one result the same fingerprint: the key must be per session")
	}
}

// TestRemoteBatchHoldsOnlyGeneratedRecords: the central route's queue, spool
// and audit log hold RemoteBatch values, whose records are the types
// generated from the Central fields of the declaration (schema's
// TestRemoteHasOnlyCentralFields checks those): the generated Remote()
// conversion is the client's enforcement point, and no other type can be
// queued there.
func TestRemoteBatchHoldsOnlyGeneratedRecords(t *testing.T) {
	want := map[string]reflect.Type{
		"sessions": reflect.TypeOf([]schema.RemoteSession{}), "turns": reflect.TypeOf([]schema.RemoteTurn{}),
		"tool_calls": reflect.TypeOf([]schema.RemoteToolCall{}), "events": reflect.TypeOf([]schema.RemoteEvent{}),
	}
	rt := reflect.TypeOf(RemoteBatch{})
	if rt.NumField() != len(want) {
		t.Fatalf("RemoteBatch has %d fields, want %d", rt.NumField(), len(want))
	}
	for i := range rt.NumField() {
		f := rt.Field(i)
		if w := want[f.Tag.Get("json")]; f.Type != w {
			t.Errorf("RemoteBatch.%s is %v, want %v", f.Name, f.Type, w)
		}
	}
}

// blockingSink never returns from Send or Close until released, whatever
// its context says: a sink that ignores cancellation.
type blockingSink struct {
	NoSpool
	entered chan struct{}
	release chan struct{}
}

func (b *blockingSink) Send(context.Context, *RemoteBatch) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return nil
}
func (b *blockingSink) Close(context.Context) error { <-b.release; return nil }

// TestEveryWaitIsBoundedByTheBudget: with a sink that ignores cancellation,
// neither /telemetry off nor the Close after it, nor a plain Close, waits
// much past the close budget (they used to wait for the sink without
// limit).
func TestEveryWaitIsBoundedByTheBudget(t *testing.T) {
	const budget = 50 * time.Millisecond
	for _, off := range []bool{true, false} {
		name := map[bool]string{true: "/telemetry off, then Close", false: "Close"}[off]
		t.Run(name, func(t *testing.T) {
			sink := &blockingSink{entered: make(chan struct{}, 1), release: make(chan struct{})}
			defer close(sink.release)
			opts := testOptions(configDir(t, true, true), nil, &testkit.Buffer{})
			opts.Central, opts.CloseBudget, opts.MaxBatch = sink, budget, 1
			s := Start(opts, SessionInfo{})
			s.BeginTurn("act", "m").End(TurnResult{FinishReason: "stop"})
			<-sink.entered // a Send is stuck in the sink
			returned := make(chan time.Duration)
			go func() {
				t0 := time.Now()
				if off {
					s.HandleSlash("off")
				}
				s.Close(context.Background())
				returned <- time.Since(t0)
			}()
			select {
			case d := <-returned:
				t.Logf("%s with a sink that ignores cancellation: %v (budget %v each)", name, d, budget)
			case <-time.After(5 * time.Second):
				t.Fatalf("%s still waiting on the sink after 5 s (budget %v)", name, budget)
			}
		})
	}
}
