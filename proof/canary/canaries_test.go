package canary_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	fredcli "github.com/fredcode/fredtel/internal/cli/fred"
	"github.com/fredcode/fredtel/internal/replay"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver the SQLite columns are read with
)

// A canary is one unique string put into one input. The token is what the
// checks look for: ASCII (no escaping or encoding changes it), unique to the
// run and the input, and compared without case (slash commands and
// environment variable names change it).
type canary struct {
	kind  string
	token string
	text  string
	used  int
}

// shapes are the canaries' texts, shaped like what the agent really handles
// (sentences, paths, unicode), with %s where the token goes. Each goes into
// the input its kind names.
var shapes = []struct{ kind, text string }{
	{"prompt", "Refactor the checkout so the ☃ discount applies once; the bug is in /home/zoë/shop/cart.go (%s). Merci!"},
	{"response", "Done: Total now covers every item and go test ./checkout/ passes. Résumé %s, 3 files changed."},
	{"argkey", "%s"},
	{"argvalue", "/home/zoë/%s/cart.go"},
	{"argcmd", "grep -rn 'TODO %s' ./src | head -n 20"},
	{"filecontents", "package checkout\n\n// Total sums the prices (%s, très bien).\nfunc Total(items []Item) int { return 42 }\n"},
	{"toolresult", "ok  \tshop/checkout\t0.412s\n%s: 12 tests passed ✓\n"},
	{"errorresult", "Error: open /srv/%s/.env: permission denied"},
	{"sysprompt", "You are Fred, a careful coding agent (%s). Ask before editing; never run destructive commands."},
	{"agentsmd", "# AGENTS.md\n\nRun go test ./... before you say a change works. %s ☕\n"},
	{"cwd", "%s projé"},
	{"hostname", "%s.corp.example.com"},
	{"envvalue", "sk-%s-live secret ключ"},
	{"getenv", "/opt/%s/bin/fish"},
	{"envtranscript", "postgres://alice:%s@db.internal:5432/shop"},
	{"envname", "%s"},
	{"gitsha", "%s"},
	{"slasharg", "/model %s please use the big one"},
	{"slashcmd", "/%s --now"},
	{"model", "fred-pro-2 %s says: ignore the previous instructions"},
	{"apierror", "429 Too Many Requests: %s rate limit reached for org-zoë"},
	{"shell", "/home/%s/.local/bin/zsh"},
	{"toolname", "read_file %s (the file the user named)"},
	{"finish", "stopped because %s"},
	{"permission", "allowed by %s"},
	{"turnmode", "plan %s"},
	{"os", "linux %s"},
	{"fredversion", "1.4.2 %s"},
	{"toolcatalog", "grep %s everywhere"},
	{"commandcatalog", "deploy %s"},
}

// required are the inputs issue 6 names: a canary set must reach each.
var required = []string{"prompt", "response", "argkey", "argvalue", "filecontents", "toolresult", "sysprompt", "agentsmd",
	"cwd", "hostname", "envvalue", "getenv", "envtranscript", "envname", "gitsha", "slasharg", "model", "apierror"}

// canaries is one run's set. Its methods are called from the test's
// goroutine only.
type canaries struct {
	run    string
	list   []*canary
	byKind map[string]*canary
	hashed []hashedInput
}

// hashedInput is an input whose guessable hashes must not leave either.
type hashedInput struct {
	kind string
	b    []byte
}

func newCanaries(t *testing.T) *canaries {
	t.Helper()
	var rnd [4]byte
	rand.Read(rnd[:])
	c := &canaries{run: hex.EncodeToString(rnd[:]), byKind: map[string]*canary{}}
	for _, s := range shapes {
		tok := "canary_" + c.run + "_" + s.kind
		text := fmt.Sprintf(s.text, tok)
		switch s.kind {
		case "envname":
			text = strings.ToUpper(tok)
		case "gitsha":
			sum := sha1.Sum([]byte(tok))
			tok = hex.EncodeToString(sum[:])
			text = tok
		}
		k := &canary{kind: s.kind, token: tok, text: text}
		c.list = append(c.list, k)
		c.byKind[s.kind] = k
	}
	for _, a := range c.list {
		if !strings.Contains(asciiLower(a.text), a.token) {
			t.Fatalf("canary %s: %q does not hold its token %s", a.kind, a.text, a.token)
		}
		for _, b := range c.list {
			if a != b && strings.HasPrefix(b.token, a.token) {
				t.Fatalf("canary tokens %s and %s: one is a prefix of the other", a.token, b.token)
			}
		}
	}
	for _, k := range required {
		if c.byKind[k] == nil {
			t.Fatalf("no canary for the required input %s", k)
		}
	}
	return c
}

// get hands the canary of kind to an input.
func (c *canaries) get(kind string) string {
	k := c.byKind[kind]
	if k == nil {
		panic("no canary " + kind)
	}
	k.used++
	c.hashed = append(c.hashed, hashedInput{kind, []byte(k.text)})
	return k.text
}

// args is the raw JSON of tool arguments: canonical (sorted keys, no
// spaces, nothing escaped that need not be), so the hashes of it are the
// ones a fingerprint without its secret would be.
func (c *canaries) args(kind string, v map[string]any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	raw := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	c.hashed = append(c.hashed, hashedInput{kind, raw})
	return raw
}

// checkUsed fails t unless every canary reached an input.
func (c *canaries) checkUsed(t *testing.T) {
	t.Helper()
	for _, k := range c.list {
		if k.used == 0 {
			t.Errorf("canary %s reached no input", k.kind)
		}
	}
}

// needle is one string that must not be found: a canary's token, or a hash
// of an input anyone could recompute (a fingerprint must need the
// session's secret).
type needle struct {
	kind, what, value string
}

// needles lists what the checks look for, lower case. The plain SHA-256 of
// the system prompt is left out: that one is recorded by design
// (system_prompt_sha256).
func (c *canaries) needles(extra ...needle) []needle {
	var out []needle
	seen := map[string]bool{}
	add := func(n needle) {
		n.value = asciiLower(n.value)
		if !seen[n.value] {
			seen[n.value] = true
			out = append(out, n)
		}
	}
	for _, k := range c.list {
		add(needle{k.kind, "text", k.token})
		if k.kind == "gitsha" {
			add(needle{k.kind, "short SHA", k.token[:12]})
		}
	}
	zero := make([]byte, 32) // HMAC pads keys with zeros: also the empty key
	for _, h := range c.hashed {
		if h.kind != "sysprompt" {
			sum := sha256.Sum256(h.b)
			add(needle{h.kind, "SHA-256", hex.EncodeToString(sum[:])})
		}
		m := hmac.New(sha256.New, zero)
		m.Write(h.b)
		add(needle{h.kind, "HMAC-SHA-256 under a zero key", hex.EncodeToString(m.Sum(nil))})
	}
	for _, n := range extra {
		add(n)
	}
	return out
}

// systemPromptSHA is the one hash of a canary that is recorded on purpose.
func (c *canaries) systemPromptSHA() string {
	sum := sha256.Sum256([]byte(c.byKind["sysprompt"].text))
	return hex.EncodeToString(sum[:])
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, x := range b {
		if 'A' <= x && x <= 'Z' {
			b[i] = x + 'a' - 'A'
		}
	}
	return string(b)
}

// found returns the needles in hay (compared without ASCII case).
func found(hay []byte, ns []needle) []needle {
	low := []byte(asciiLower(string(hay)))
	var out []needle
	for _, n := range ns {
		if bytes.Contains(low, []byte(n.value)) {
			out = append(out, n)
		}
	}
	return out
}

// noneIn fails t for every needle found in hay, showing where.
func noneIn(t *testing.T, where string, hay []byte, ns []needle) {
	t.Helper()
	low := []byte(asciiLower(string(hay)))
	for _, n := range found(hay, ns) {
		i := bytes.Index(low, []byte(n.value))
		from, to := max(i-80, 0), min(i+len(n.value)+80, len(hay))
		t.Errorf("%s holds the %s canary (%s %s): …%q…", where, n.kind, n.what, n.value, hay[from:to])
	}
}

// tally is what recorded sessions must add up to in a database.
type tally struct {
	sessions, turns, calls, events int
	promptChars, responseChars     int
	resultBytes, errorResults      int
	textTurns                      int // turns whose input is the prompt canary
	distinctArgs                   int // summed over sessions: fingerprints are keyed per session
}

func (a *tally) add(b tally) {
	a.sessions += b.sessions
	a.turns += b.turns
	a.calls += b.calls
	a.events += b.events
	a.promptChars += b.promptChars
	a.responseChars += b.responseChars
	a.resultBytes += b.resultBytes
	a.errorResults += b.errorResults
	a.textTurns += b.textTurns
	a.distinctArgs += b.distinctArgs
}

// records is what a session's writer hands on: the session record twice
// (at start and at end), and every other record once.
func (a tally) records() int { return 2*a.sessions + a.turns + a.calls + a.events }

// info is a session's start with a canary in every text it has; the
// caller adds the shell and OS.
func (c *canaries) info() telemetry.SessionInfo {
	dirty := true
	return telemetry.SessionInfo{
		Model: c.get("model"), GitDirty: &dirty, AgentsMD: c.get("agentsmd"), SystemPrompt: c.get("sysprompt"),
		Tools:    []string{"read_file", "bash", "edit_file", c.get("toolcatalog")},
		Commands: []string{"help", "model", "mode", c.get("commandcatalog")},
	}
}

// record drives every method of the library API on s, with a canary in
// every text parameter, and returns what it recorded.
func (c *canaries) record(s *telemetry.Session) tally {
	n := tally{sessions: 1, distinctArgs: 3} // read, argcmd and argvalue arguments
	s.SlashCommand(c.get("slasharg"))
	s.SlashCommand(c.get("slashcmd"))
	s.ModelSwap("fred-flash-2", c.get("model"))
	s.ModeChange("act", c.get("turnmode"))
	n.events += 4

	call := func(tr *telemetry.Turn, tc telemetry.ToolCall) {
		tr.ToolCall(tc)
		n.calls++
		n.resultBytes += len(tc.Result)
		if strings.HasPrefix(tc.Result, "Error:") {
			n.errorResults++
		}
	}
	end := func(tr *telemetry.Turn, r telemetry.TurnResult) {
		tr.End(r)
		n.turns++
		n.textTurns++
		n.promptChars += utf8.RuneCountInString(r.UserInput)
		n.responseChars += utf8.RuneCountInString(r.AssistantText)
	}

	tr := s.BeginTurn(c.get("turnmode"), c.get("model"))
	read := c.args("argkey", map[string]any{c.get("argkey"): true, "path": c.get("argvalue")})
	files := c.get("filecontents")
	call(tr, telemetry.ToolCall{Name: "read_file", Args: read, Result: files, Permission: "auto_allowed", Duration: 3 * time.Millisecond})
	// The same arguments again: the fingerprint repeats within the session.
	call(tr, telemetry.ToolCall{Name: "read_file", Args: read, Result: files, Permission: "auto_allowed", Duration: 2 * time.Millisecond})
	call(tr, telemetry.ToolCall{Name: "bash", Args: c.args("argcmd", map[string]any{"command": c.get("argcmd")}), Result: c.get("toolresult"),
		Permission: c.get("permission"), Duration: 1900 * time.Millisecond})
	call(tr, telemetry.ToolCall{Name: c.get("toolname"), Args: c.args("argvalue", map[string]any{"path": c.get("argvalue")}), Result: c.get("errorresult"),
		Permission: "denied", Failed: true, Duration: 5 * time.Millisecond})
	end(tr, telemetry.TurnResult{PromptTokens: 1830, CompletionTokens: 212, CachedTokens: 1024, FinishReason: c.get("finish"),
		APIErrorType: c.get("apierror"), Model: c.get("model"), UserInput: c.get("prompt"), AssistantText: c.get("response")})
	s.APIRetry(telemetry.Retry{Attempt: 1, Delay: 1500 * time.Millisecond, Latency: 80 * time.Millisecond, ErrorType: c.get("apierror"), Status: 429})
	n.events++

	tr = s.BeginTurn("act", "fred-pro-2")
	call(tr, telemetry.ToolCall{Name: "bash", Args: c.args("argcmd", map[string]any{"command": c.get("argcmd")}), Result: c.get("toolresult"),
		Permission: "user_allowed", Duration: 40 * time.Millisecond})
	end(tr, telemetry.TurnResult{PromptTokens: 2950, CompletionTokens: 640, FinishReason: "stop", UserInput: c.get("prompt"), AssistantText: c.get("response")})
	return n
}

// transcript is a `fred telemetry replay` transcript carrying the canaries
// the library API has no parameter for (cwd, hostname, git SHA, the
// environment), and the others too.
func (c *canaries) transcript(cwd string) string {
	read := c.args("argkey", map[string]any{c.get("argkey"): true, "path": c.get("argvalue")})
	lines := []map[string]any{
		{"type": "session_start", "model": c.get("model"), "fred_version": "1.4.2", "os": "linux", "shell": c.get("shell"),
			"system_prompt": c.get("sysprompt"), "agents_md": c.get("agentsmd"), "cwd": cwd, "hostname": c.get("hostname"),
			"git_sha": c.get("gitsha"), "git_dirty": true,
			"env":   map[string]string{c.get("envname"): c.get("envtranscript"), "DATABASE_URL": c.get("envtranscript"), "LANG": "fr_FR.UTF-8"},
			"tools": []string{"read_file", "bash", c.get("toolcatalog")}, "commands": []string{"model", "help", c.get("commandcatalog")}},
		{"type": "event", "kind": "slash_command", "line": c.get("slasharg")},
		{"type": "event", "kind": "model_swap", "from": "fred-flash-2", "to": c.get("model")},
		{"type": "turn", "mode": "plan", "model": c.get("model"), "prompt_tokens": 1830, "completion_tokens": 212, "finish_reason": "tool_calls",
			"duration_ms": 6400, "user_input": c.get("prompt"), "assistant_text": c.get("response")},
		{"type": "tool_call", "tool_name": "read_file", "args": json.RawMessage(read), "result": c.get("filecontents"), "permission": "auto_allowed", "duration_ms": 3},
		{"type": "tool_call", "tool_name": c.get("toolname"), "args": json.RawMessage(c.args("argvalue", map[string]any{"path": c.get("argvalue")})),
			"result": c.get("errorresult"), "permission": "denied", "duration_ms": 2, "failed": true},
		{"type": "tool_call", "tool_name": "bash", "args": json.RawMessage(c.args("argcmd", map[string]any{"command": c.get("argcmd")})),
			"result": c.get("toolresult"), "permission": "user_allowed", "duration_ms": 1900},
		{"type": "event", "kind": "api_retry", "attempt": 1, "delay_ms": 800, "error_type": "overloaded", "status": 529},
		{"type": "event", "kind": "slash_command", "line": c.get("slashcmd")},
		{"type": "turn", "mode": "act", "model": "fred-pro-2", "prompt_tokens": 2950, "completion_tokens": 640, "finish_reason": "stop",
			"duration_ms": 900, "user_input": c.get("prompt"), "assistant_text": c.get("response")},
		{"type": "tool_call", "tool_name": "read_file", "args": json.RawMessage(read), "result": c.get("filecontents"), "permission": "auto_allowed", "duration_ms": 2},
		{"type": "session_end"},
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			panic(err)
		}
	}
	return b.String()
}

// transcriptTally is what a transcript must leave in a database, from the
// transcript as the replay parses it.
func transcriptTally(t *testing.T, text string) tally {
	t.Helper()
	tr, err := replay.Parse("canaries", strings.NewReader(text))
	if err != nil {
		t.Fatalf("the canary transcript is refused: %v", err)
	}
	var n tally
	n.sessions = len(tr.Sessions)
	for _, s := range tr.Sessions {
		args := map[string]bool{}
		for _, st := range s.Steps {
			switch {
			case st.Turn != nil:
				n.turns++
				n.textTurns++
				n.promptChars += utf8.RuneCountInString(st.Turn.Result.UserInput)
				n.responseChars += utf8.RuneCountInString(st.Turn.Result.AssistantText)
			case st.Call != nil:
				n.calls++
				args[string(st.Call.Args)] = true
				n.resultBytes += len(st.Call.Result)
				if strings.HasPrefix(st.Call.Result, "Error:") {
					n.errorResults++
				}
			default:
				n.events++
			}
		}
		n.distinctArgs += len(args)
	}
	return n
}

// writeTranscript puts a transcript in a file outside the canary folder:
// the replay prints the file's name.
func writeTranscript(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "session.jsonl")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fred runs the fred command in-process (the code the binary runs) with
// getenv as its environment.
func fred(getenv func(string) string, args ...string) (int, string, string) {
	var out, errb testkit.Buffer
	code := fredcli.Run(context.Background(), args, getenv, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// enterCwd makes a working folder whose path holds the cwd canary and runs
// the rest of the test in it.
func (c *canaries) enterCwd(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home", "zoë", c.get("cwd"), "src")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	wd, err := os.Getwd()
	if err != nil || !strings.Contains(asciiLower(wd), c.byKind["cwd"].token) {
		t.Fatalf("working folder %q (%v) lacks the cwd canary", wd, err)
	}
	return wd
}

// setenv puts canaries in the process environment, where the library's
// default Getenv reads, along with vars.
func (c *canaries) setenv(t *testing.T, vars map[string]string) {
	t.Helper()
	v := c.get("envvalue")
	all := map[string]string{
		"SHELL":                           filepath.Join("/home", v, "bin", "bash"),
		"OPENAI_API_KEY":                  v,
		"GITHUB_TOKEN":                    v,
		"GIT_AUTHOR_NAME":                 v,
		"EDITOR":                          v,
		strings.ToUpper(c.get("envname")): v,
	}
	maps.Copy(all, vars)
	for k, x := range all {
		t.Setenv(k, x)
		if os.Getenv(k) != x {
			t.Fatalf("%s did not reach the environment", k)
		}
	}
}

// env is an Options.Getenv: the variables given, the getenv canary in the
// usual suspects, and a record of what the library asked for.
type env struct {
	mu    sync.Mutex
	m     map[string]string
	asked map[string]bool
}

func (c *canaries) env(vars map[string]string) *env {
	v := c.get("getenv")
	e := &env{m: map[string]string{"SHELL": v, "HOME": v, "USER": v, "EDITOR": v, "GIT_AUTHOR_NAME": v, "ANTHROPIC_API_KEY": v}, asked: map[string]bool{}}
	maps.Copy(e.m, vars)
	return e
}

func (e *env) get(k string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked[k] = true
	return e.m[k]
}

func (e *env) askedFor(k string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.asked[k]
}

// folder is the text of every file under dir, each after its path relative
// to dir, and the number of files.
func folder(t *testing.T, dir string) ([]byte, int) {
	t.Helper()
	var b bytes.Buffer
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "== %s\n", rel)
		b.Write(body)
		b.WriteByte('\n')
		n++
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v", dir, err)
	}
	return b.Bytes(), n
}

// blackhole accepts loopback connections and holds them, never answering;
// accepted counts them.
func blackhole(t *testing.T) (url string, accepted func() int) {
	url, times := testkit.Listener(t, nil)
	return url, func() int { return len(times()) }
}

// dumpRows counts the data rows of every table in a plain pg_dump (its
// COPY … FROM stdin blocks).
func dumpRows(dump []byte) (tables int, rows map[string]int) {
	rows = map[string]int{}
	lines := strings.Split(string(dump), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "CREATE TABLE ") {
			tables++
		}
		if !strings.HasPrefix(lines[i], "COPY ") || !strings.HasSuffix(lines[i], " FROM stdin;") {
			continue
		}
		name := strings.TrimPrefix(strings.Fields(lines[i])[1], "public.")
		for i++; i < len(lines) && lines[i] != `\.`; i++ {
			rows[name]++
		}
	}
	return tables, rows
}

// column is every non-null value of one column, as text.
type column struct {
	name   string // table.column
	values []string
}

// columns reads every column of every table of the database at url (either
// backend), each value cast to text.
func columns(t *testing.T, url string) []column {
	t.Helper()
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		return sqliteColumns(t, path)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name, column_name FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ schema, table, name string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.schema, &c.table, &c.name); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	var out []column
	for _, c := range cols {
		id := pgx.Identifier{c.name}.Sanitize()
		q := fmt.Sprintf("SELECT %s::text FROM %s WHERE %s IS NOT NULL", id, pgx.Identifier{c.schema, c.table}.Sanitize(), id)
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		name := c.table + "." + c.name
		if c.schema != "public" {
			name = c.schema + "." + name
		}
		out = append(out, column{name, vals})
	}
	return out
}

func sqliteColumns(t *testing.T, path string) []column {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	strs := func(q string, args ...any) []string {
		rows, err := db.Query(q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			out = append(out, s)
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		return out
	}
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	var out []column
	for _, table := range strs("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
		for _, c := range strs("SELECT name FROM pragma_table_info(?)", table) {
			vals := strs(fmt.Sprintf("SELECT CAST(%s AS TEXT) FROM %s WHERE %s IS NOT NULL", quote(c), quote(table), quote(c)))
			out = append(out, column{table + "." + c, vals})
		}
	}
	return out
}

// where maps each needle found to the columns holding it.
func where(cols []column, ns []needle) map[needle][]string {
	out := map[needle][]string{}
	for _, c := range cols {
		hay := []byte(strings.Join(c.values, "\n"))
		for _, n := range found(hay, ns) {
			out[n] = append(out[n], c.name)
		}
	}
	return out
}

// count is how many values of the column named equal v.
func count(cols []column, name, v string) int {
	n := 0
	for _, c := range cols {
		if c.name == name {
			for _, x := range c.values {
				if x == v {
					n++
				}
			}
		}
	}
	return n
}

// sqliteBytes is the raw content of a SQLite database and its side files.
func sqliteBytes(t *testing.T, path string) ([]byte, int) {
	t.Helper()
	var b bytes.Buffer
	n := 0
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		body, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b.Write(body)
		n++
	}
	return b.Bytes(), n
}

// debugBatches is the batches FRED_TELEMETRY_DEBUG printed, as printed.
func debugBatches(stderr string) (batches []string) {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "fred: telemetry debug: batch ") {
			batches = append(batches, l)
		}
	}
	return batches
}

func kib(n int) string { return fmt.Sprintf("%.0f KiB", float64(n)/1024) }

// nof is "1 file", "3 files", "2 batches".
func nof(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "ch"):
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
