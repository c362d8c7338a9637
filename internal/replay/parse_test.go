package replay

import (
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func exampleLines() []string { return strings.Split(strings.TrimSuffix(Example, "\n"), "\n") }

func parse(t *testing.T, lines []string) (*Transcript, error) {
	t.Helper()
	return Parse("t.jsonl", strings.NewReader(strings.Join(lines, "\n")+"\n"))
}

func TestExampleIsComplete(t *testing.T) {
	tr, err := parse(t, exampleLines())
	if err != nil {
		t.Fatal(err)
	}
	if c := tr.Counts(); c != (Counts{Sessions: 1, Turns: 2, ToolCalls: 9, Events: 7}) {
		t.Fatalf("counts %+v", c)
	}
	types := map[string]bool{}
	fields := map[string]map[string]bool{}
	for _, l := range exampleLines() {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		k := m["type"].(string)
		if k == "event" {
			k = m["kind"].(string)
		}
		types[k] = true
		if fields[k] == nil {
			fields[k] = map[string]bool{}
		}
		for f := range m {
			fields[k][f] = true
		}
	}
	// Every line type, every event kind, and every field of each.
	for name, v := range map[string]any{"session_start": &sessionStartLine{}, "turn": &turnLine{}, "tool_call": &toolCallLine{},
		"slash_command": &slashCommandLine{}, "api_retry": &apiRetryLine{}, "mode_change": &fromToLine{}, "model_swap": &fromToLine{},
		"session_end": &sessionEndLine{}} {
		if !types[name] {
			t.Errorf("the example has no %s", name)
		}
		for _, f := range fieldsOf(v) {
			if !fields[name][f] {
				t.Errorf("no %s line of the example has %s", name, f)
			}
		}
	}
	// Arguments repeat within the session (the same object, once with its
	// keys in another order).
	seen := map[string]int{}
	for _, st := range tr.Sessions[0].Steps {
		if st.Call != nil {
			var v any
			json.Unmarshal(st.Call.Args, &v)
			c, _ := json.Marshal(v)
			seen[string(c)]++
		}
	}
	if len(seen) != 4 {
		t.Fatalf("%d distinct args, want 4: %v", len(seen), seen)
	}
}

// TestMalformedLines: every kind of malformed line is reported with its line
// number and field, and the transcript is refused as a whole.
func TestMalformedLines(t *testing.T) {
	ex := exampleLines()
	// with replaces line n (1-based) of the example; n = len+1 appends.
	with := func(n int, line string) []string {
		out := append([]string(nil), ex...)
		if n > len(out) {
			return append(out, line)
		}
		out[n-1] = line
		return out
	}
	insert := func(n int, line string) []string {
		out := append([]string(nil), ex[:n-1]...)
		out = append(out, line)
		return append(out, ex[n-1:]...)
	}
	start, turn, call := ex[0], ex[3], ex[4]
	for _, c := range []struct {
		name  string
		lines []string
		line  int
		field string
		says  string
	}{
		{"bad JSON", with(5, `{"type":"tool_call","tool_name":`), 5, "line", "not valid JSON"},
		{"not an object", with(5, `["tool_call"]`), 5, "line", "not a JSON object"},
		{"trailing data", with(5, call+` {}`), 5, "line", "not valid JSON"},
		{"no type", with(2, `{"kind":"slash_command","line":"/help"}`), 2, "type", "missing"},
		{"type not a string", with(2, `{"type":7}`), 2, "type", "want a string"},
		{"unknown type", with(2, `{"type":"note","text":"hi"}`), 2, "type", `unknown type "note"`},
		{"unknown field of session_start", with(1, strings.Replace(start, `"cwd"`, `"user":"alice","cwd"`, 1)), 1, "user", "unknown field of a session_start line"},
		{"unknown field of turn", with(4, strings.Replace(turn, `"mode"`, `"temperature":0.2,"mode"`, 1)), 4, "temperature", "unknown field of a turn line"},
		{"unknown field of tool_call", with(5, strings.Replace(call, `"args"`, `"cwd":"/tmp","args"`, 1)), 5, "cwd", "unknown field of a tool_call line"},
		{"unknown field of an event kind", with(2, `{"type":"event","kind":"slash_command","line":"/help","attempt":1}`), 2, "attempt", "unknown field of a slash_command event line"},
		{"unknown field of session_end", with(20, `{"type":"session_end","reason":"quit"}`), 20, "reason", "unknown field of a session_end line"},
		{"string for a number", with(4, strings.Replace(turn, `"prompt_tokens":1830`, `"prompt_tokens":"1830"`, 1)), 4, "prompt_tokens", "want a whole number, got string"},
		{"fraction for a number", with(5, strings.Replace(call, `"duration_ms":3`, `"duration_ms":3.5`, 1)), 5, "duration_ms", "want a whole number, got number 3.5"},
		{"string for a bool", with(1, strings.Replace(start, `"git_dirty":true`, `"git_dirty":"yes"`, 1)), 1, "git_dirty", "want true, false or null"},
		{"env value not a string", with(1, strings.Replace(start, `"EDITOR":"vim"`, `"EDITOR":1`, 1)), 1, "env", "want an object of strings"},
		{"tools not a list", with(1, strings.Replace(start, `"tools":["read_file","grep","bash","edit_file"]`, `"tools":"read_file"`, 1)), 1, "tools", "want a list of strings"},
		{"args not an object", with(5, strings.Replace(call, `{"path":"checkout/cart.go"}`, `"checkout/cart.go"`, 1)), 5, "args", "want a JSON object, got a string"},
		{"args missing", with(5, strings.Replace(call, `"args":{"path":"checkout/cart.go"},`, ``, 1)), 5, "args", "missing"},
		{"bad ts", with(3, strings.Replace(ex[2], `2026-03-02T09:14:07.121Z`, `yesterday`, 1)), 3, "ts", `got "yesterday"`},
		{"ts not a string", with(3, strings.Replace(ex[2], `"2026-03-02T09:14:07.121Z"`, `1772442847`, 1)), 3, "ts", "want a string"},
		{"model missing", with(1, strings.Replace(start, `"model":"fred-flash-2",`, ``, 1)), 1, "model", "missing"},
		{"bad fred_version", with(1, strings.Replace(start, `"1.4.2"`, `"latest"`, 1)), 1, "fred_version", "not a version"},
		{"bad mode", with(4, strings.Replace(turn, `"mode":"plan"`, `"mode":"yolo"`, 1)), 4, "mode", `"yolo" is not one of act, plan`},
		{"bad finish_reason", with(4, strings.Replace(turn, `"tool_calls","duration_ms"`, `"done","duration_ms"`, 1)), 4, "finish_reason", `"done" is not one of`},
		{"bad api_error_type", with(4, strings.Replace(turn, `"api_error_type":null`, `"api_error_type":"boom"`, 1)), 4, "api_error_type", `"boom" is not one of`},
		{"negative tokens", with(4, strings.Replace(turn, `"cached_tokens":1024`, `"cached_tokens":-1`, 1)), 4, "cached_tokens", "-1 is outside 0"},
		{"tool_name missing", with(5, strings.Replace(call, `"tool_name":"read_file",`, ``, 1)), 5, "tool_name", "missing"},
		{"bad permission", with(5, strings.Replace(call, `"auto_allowed"`, `"yes"`, 1)), 5, "permission", `"yes" is not one of auto_allowed, user_allowed, denied`},
		{"event kind missing", with(2, `{"type":"event","line":"/help"}`), 2, "kind", "missing"},
		{"unknown event kind", with(2, `{"type":"event","kind":"keypress"}`), 2, "kind", `unknown event kind "keypress"`},
		{"slash line without slash", with(2, `{"type":"event","kind":"slash_command","line":"mode plan"}`), 2, "line", "starting with /"},
		{"api_retry attempt missing", with(8, strings.Replace(ex[7], `"attempt":1,`, ``, 1)), 8, "attempt", "missing"},
		{"api_retry bad status", with(8, strings.Replace(ex[7], `"status":429`, `"status":700`, 1)), 8, "status", "700 is outside 0 … 599"},
		{"api_retry bad error_type", with(8, strings.Replace(ex[7], `"rate_limit"`, `"slow"`, 1)), 8, "error_type", `"slow" is not one of`},
		{"mode_change bad to", with(3, strings.Replace(ex[2], `"to":"plan"`, `"to":"auto"`, 1)), 3, "to", `"auto" is not one of act, plan`},
		{"model_swap from missing", with(12, strings.Replace(ex[11], `"from":"fred-flash-2",`, ``, 1)), 12, "from", "missing"},
		{"tool_call before any turn", insert(2, call), 2, "type", "tool_call before any turn of its session"},
		{"tool_call after a slash command", insert(12, call), 12, "type", "after the slash command on line 11, which ends the turn of line 4"},
		{"second session_start", insert(3, start), 3, "type", "a second session_start: the session started on line 1"},
		{"no session_start", ex[1:], 1, "type", "event before any session_start"},
		{"line after session_end", with(21, turn), 21, "type", "turn after the session_end on line 20"},
		{"no session_end", ex[:19], 1, "session_end", "missing: the session that starts on this line is never ended"},
		{"empty transcript", nil, 1, "session_start", "missing: the transcript holds no session"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr, err := parse(t, c.lines)
			var errs Errors
			if !errors.As(err, &errs) || tr != nil {
				t.Fatalf("want Errors and no transcript, got %v (%v)", err, tr)
			}
			e := errs[0]
			want := "t.jsonl:" + strconv.Itoa(c.line) + ": " + c.field + ": "
			if e.Line != c.line || e.Field != c.field || !strings.HasPrefix(e.Error(), want) || !strings.Contains(e.Problem, c.says) {
				t.Fatalf("got %q, want %q…%q", err.Error(), want, c.says)
			}
		})
	}
}

func TestParseAcceptsBlankLinesCRLFAndSeveralSessions(t *testing.T) {
	two := strings.ReplaceAll(Example+"\n"+Example, "\n", "\r\n")
	tr, err := Parse("two", strings.NewReader(two))
	if err != nil {
		t.Fatal(err)
	}
	if c := tr.Counts(); c != (Counts{Sessions: 2, Turns: 4, ToolCalls: 18, Events: 14}) {
		t.Fatalf("counts %+v", c)
	}
	if tr.Sessions[1].Line != 22 || tr.Sessions[1].EndLine != 41 {
		t.Fatalf("second session on lines %d-%d", tr.Sessions[1].Line, tr.Sessions[1].EndLine)
	}
	// What the library receives of session_start: no cwd, hostname, git
	// SHA, env or runtime version (SessionInfo has no place for them).
	info := tr.Sessions[0].Info
	if info.Model != "fred-flash-2" || info.GitDirty == nil || !*info.GitDirty || info.Shell != "/bin/zsh" || len(info.Tools) != 4 {
		t.Fatalf("info %+v", info)
	}
}

func TestLayout(t *testing.T) {
	tr, err := parse(t, exampleLines())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	s := tr.Sessions[0]

	// Default: ts ignored, durations kept, the transcript ends now.
	plan, err := tr.layout(false, now)
	if err != nil {
		t.Fatal(err)
	}
	tm := plan[0]
	if !tm.end.Equal(now) {
		t.Fatalf("ends %v, want now", tm.end)
	}
	prev := tm.start
	for j, st := range s.Steps {
		if tm.at[j].Before(prev) || tm.at[j].After(now) {
			t.Fatalf("line %d at %v, after %v (now %v)", st.Line, tm.at[j], prev, now)
		}
		prev = tm.at[j]
		if st.Turn != nil && tm.turnEnd[j].Sub(tm.at[j]) != st.Turn.Duration {
			t.Fatalf("turn of line %d lasts %v", st.Line, tm.turnEnd[j].Sub(tm.at[j]))
		}
	}

	// --keep-times: every line at its ts.
	plan, err = tr.layout(true, now)
	if err != nil {
		t.Fatal(err)
	}
	tm = plan[0]
	if !tm.start.Equal(s.TS) || !tm.end.Equal(s.EndTS) {
		t.Fatalf("session %v-%v", tm.start, tm.end)
	}
	for j, st := range s.Steps {
		if !tm.at[j].Equal(st.TS) {
			t.Fatalf("line %d at %v, want %v", st.Line, tm.at[j], st.TS)
		}
	}
	// It checks, before anything starts, what the ingest API would refuse.
	if err := tr.checkWindow(plan, now); err == nil || !strings.HasPrefix(err.Error(), "t.jsonl:1: ts: 2026-03-02T09:14:05Z is more than 30 days ago") ||
		!strings.Contains(err.Error(), "(20 lines of this transcript are)") {
		t.Fatalf("window: %v", err)
	}
	if err := tr.checkWindow(plan, s.TS.Add(time.Hour)); err != nil {
		t.Fatalf("window an hour later: %v", err)
	}

	// --keep-times needs the start of every session.
	lines := exampleLines()
	lines[0] = strings.Replace(lines[0], `"ts":"2026-03-02T09:14:05.000Z",`, ``, 1)
	tr, err = parse(t, lines)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.layout(true, now); err == nil || err.Error() != "t.jsonl:1: ts: missing: --keep-times needs the time every session started" {
		t.Fatalf("keep-times without a start: %v", err)
	}
}

// TestDocsShowTheExample: docs/transcript.md shows the example --example
// prints, verbatim.
func TestDocsShowTheExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/transcript.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```jsonl\n"+Example+"```\n") {
		t.Fatal("docs/transcript.md does not show the example verbatim")
	}
}
