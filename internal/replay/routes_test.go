package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	fredcli "github.com/fredcode/fredtel/internal/cli/fred"
	"github.com/fredcode/fredtel/internal/replay"
	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/jackc/pgx/v5"
)

// These tests replay transcripts through `fred telemetry replay` in-process
// (fredcli.Run, the code the fred binary runs) on every route, against
// the real ingest server, real PostgreSQL and real SQLite files.

func TestMain(m *testing.M) { testkit.Main(m) }

// fred runs the fred command in-process with env as its whole environment.
func fred(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb testkit.Buffer
	code := fredcli.Run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// write puts a transcript in a file of t's temporary folder.
func write(t *testing.T, transcript string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "session.jsonl")
	if err := os.WriteFile(p, []byte(transcript), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const apiKey = "fred_live_0123456789abcdefghijKLMN"

// expect is what a transcript must leave in a database, computed from the
// transcript itself.
type expect struct {
	sessions, turns, calls, events int
	distinctArgs                   int // sum over sessions of distinct arguments (canonical JSON)
	promptChars, responseChars     int
	resultBytes, errorResults      int
	turnMs, callMs                 int
}

func expected(t *testing.T, transcript string) expect {
	t.Helper()
	tr, err := replay.Parse("x", strings.NewReader(transcript))
	if err != nil {
		t.Fatal(err)
	}
	var e expect
	e.sessions = len(tr.Sessions)
	for _, s := range tr.Sessions {
		args := map[string]bool{}
		for _, st := range s.Steps {
			switch {
			case st.Turn != nil:
				e.turns++
				e.promptChars += utf8.RuneCountInString(st.Turn.Result.UserInput)
				e.responseChars += utf8.RuneCountInString(st.Turn.Result.AssistantText)
				e.turnMs += int(st.Turn.Duration.Milliseconds())
			case st.Call != nil:
				e.calls++
				var v any
				if err := json.Unmarshal(st.Call.Args, &v); err != nil {
					t.Fatal(err)
				}
				c, _ := json.Marshal(v) // sorted keys: equal objects, equal text
				args[string(c)] = true
				e.resultBytes += len(st.Call.Result)
				if strings.HasPrefix(st.Call.Result, "Error:") {
					e.errorResults++
				}
				e.callMs += int(st.Call.Duration.Milliseconds())
			default:
				e.events++
			}
		}
		e.distinctArgs += len(args)
	}
	return e
}

// check compares the rows of the table set with prefix (telemetry_ or
// dsc_) at url with e.
func check(t *testing.T, url, prefix string, e expect) {
	t.Helper()
	q := func(sql string) int { return testdb.QueryInt(t, url, strings.ReplaceAll(sql, "T_", prefix)) }
	for sql, want := range map[string]int{
		"SELECT count(*) FROM T_sessions WHERE ended_at IS NOT NULL AND ended_at >= started_at": e.sessions,
		"SELECT count(*) FROM T_turns":      e.turns,
		"SELECT count(*) FROM T_tool_calls": e.calls,
		"SELECT count(*) FROM T_events":     e.events,
		// Fingerprints: equal for equal arguments within a session, and
		// different across sessions (a key per session).
		"SELECT count(*) FROM (SELECT DISTINCT session_id, args_fingerprint FROM T_tool_calls) x": e.distinctArgs,
		"SELECT count(DISTINCT args_fingerprint) FROM T_tool_calls":                               e.distinctArgs,
		"SELECT coalesce(sum(prompt_chars), 0) FROM T_turns":                                      e.promptChars,
		"SELECT coalesce(sum(response_chars), 0) FROM T_turns":                                    e.responseChars,
		"SELECT coalesce(sum(result_bytes), 0) FROM T_tool_calls":                                 e.resultBytes,
		"SELECT count(*) FROM T_tool_calls WHERE result_is_error":                                 e.errorResults,
		"SELECT coalesce(sum(duration_ms), 0) FROM T_turns":                                       e.turnMs,
		"SELECT coalesce(sum(duration_ms), 0) FROM T_tool_calls":                                  e.callMs,
		"SELECT coalesce(sum(num_tool_calls), 0) FROM T_turns":                                    e.calls,
	} {
		if got := q(sql); got != want {
			t.Errorf("%s = %d, want %d", strings.ReplaceAll(sql, "T_", prefix), got, want)
		}
	}
}

// TestCentral: the example through the real ingest server into PostgreSQL.
// --keep-times with times the server would refuse is refused first, and
// sends nothing.
func TestCentral(t *testing.T) {
	db := testdb.Postgres(t)
	p := testkit.StartServer(t, db, "")
	dir := fixture.LoggedIn(t, testkit.CreateKey(t, db, "alice"))
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": "http://" + p.URL}
	file := write(t, replay.Example)

	code, out, errs := fred(t, env, "", "telemetry", "replay", "--keep-times", file)
	if code != 1 || !strings.HasPrefix(errs, "fred telemetry replay: "+file+":1: ts: 2026-03-02T09:14:05Z is more than 30 days ago") ||
		!strings.Contains(errs, "nothing was replayed") || out != "" {
		t.Fatalf("keep-times, old transcript, central: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit")); !os.IsNotExist(err) {
		t.Fatalf("something was sent: %v", err)
	}

	code, out, errs = fred(t, env, "", "telemetry", "replay", file)
	want := "replayed " + file + ": 1 session, 2 turns, 9 tool calls, 7 events → central → http://" + p.URL + " as fred_live_"
	if code != 0 || !strings.HasPrefix(out, want) || !strings.HasSuffix(out, ": 20 records written\n") || errs != "" {
		t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errs)
	}
	e := expected(t, replay.Example)
	check(t, db, "telemetry_", e)
	if n := testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_turns WHERE user_id = 'alice'"); n != 2 {
		t.Fatalf("%d turns of alice", n)
	}
}

// TestSelfHosted: the example into the user's own PostgreSQL and SQLite
// databases, with and without text, and two sessions in one file.
func TestSelfHosted(t *testing.T) {
	for _, be := range testdb.Backends {
		for _, noText := range []bool{false, true} {
			t.Run(be.Name+map[bool]string{false: "/text", true: "/no-text"}[noText], func(t *testing.T) {
				t.Parallel()
				url := be.URL(t)
				// Logged in and DO_NOT_TRACK too: DSC_TELEMETRY_DB_URL wins
				// (SPEC §2), and FRED_TELEMETRY_DEBUG would print any
				// central batch.
				env := map[string]string{"FRED_CONFIG_DIR": fixture.LoggedIn(t, apiKey), "DSC_TELEMETRY_DB_URL": url, "DO_NOT_TRACK": "1",
					"FRED_TELEMETRY_DEBUG": "1", "FRED_API_URL": "http://127.0.0.1:1"}
				if noText {
					env["DSC_TELEMETRY_NO_TEXT"] = "1"
				}
				two := replay.Example + "\n" + replay.Example
				code, out, errs := fred(t, env, two, "telemetry", "replay", "-")
				if code != 0 || !strings.Contains(out, "replayed stdin: 2 sessions, 4 turns, 18 tool calls, 14 events → self-hosted → ") ||
					!strings.HasSuffix(out, ": 40 records written\n") || errs != "" {
					t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errs)
				}
				e := expected(t, two)
				if e.distinctArgs != 8 {
					t.Fatalf("distinct args %d", e.distinctArgs)
				}
				check(t, url, "dsc_", e)
				withText := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input = 'Yes, fix it and run the tests.' AND assistant_text LIKE 'Fixed: %'")
				anyText := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input IS NOT NULL OR assistant_text IS NOT NULL")
				if noText && anyText != 0 || !noText && withText != 2 {
					t.Fatalf("no-text %v: %d turns with text, %d with the example's", noText, anyText, withText)
				}
				// Fields the transcript gives are what the rows hold.
				for sql, want := range map[string]int{
					"SELECT count(*) FROM dsc_sessions WHERE model = 'fred-flash-2' AND fred_version = '1.4.2' AND os = 'linux' AND shell = 'zsh' AND git_dirty AND agents_md_hash IS NOT NULL AND system_prompt_sha256 IS NOT NULL": 2,
					"SELECT count(*) FROM dsc_events WHERE name = 'slash_command' AND props LIKE '%\"command\":\"mode\"%'":                                                                                                           4,
				} {
					if !strings.HasPrefix(url, "sqlite:") {
						sql = strings.ReplaceAll(sql, "props LIKE", "props::text LIKE")
						sql = strings.ReplaceAll(sql, `"command":"mode"`, `"command": "mode"`)
					}
					if n := testdb.QueryInt(t, url, sql); n != want {
						t.Errorf("%s = %d, want %d", sql, n, want)
					}
				}
			})
		}
	}
}

// TestKeepTimes: with --keep-times every record carries the transcript's
// times (through the replay clock, Options.Now).
func TestKeepTimes(t *testing.T) {
	url := testdb.SQLite(t)
	env := map[string]string{"FRED_CONFIG_DIR": t.TempDir(), "DSC_TELEMETRY_DB_URL": url}
	if code, out, errs := fred(t, env, "", "telemetry", "replay", "--keep-times", write(t, replay.Example)); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	tr, _ := replay.Parse("x", strings.NewReader(replay.Example))
	steps, got := tr.Sessions[0].Steps, 0
	for _, st := range steps {
		got += testdb.QueryInt(t, url, fmt.Sprintf(`SELECT (SELECT count(*) FROM dsc_turns WHERE started_at = '%[1]s')
			+ (SELECT count(*) FROM dsc_tool_calls WHERE started_at = '%[1]s') + (SELECT count(*) FROM dsc_events WHERE ts = '%[1]s')`,
			st.TS.Format("2006-01-02T15:04:05.000Z")))
	}
	if got != len(steps) {
		t.Fatalf("%d of %d records at their ts", got, len(steps))
	}
	if n := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_sessions WHERE started_at = '2026-03-02T09:14:05.000Z' AND ended_at = '2026-03-02T09:16:02.000Z'"); n != 1 {
		t.Fatal("the session's times are not the transcript's")
	}
}

// debugBatches parses the batches FRED_TELEMETRY_DEBUG printed.
func debugBatches(t *testing.T, stderr string) []telemetry.RemoteBatch {
	t.Helper()
	var out []telemetry.RemoteBatch
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.HasPrefix(line, "fred: telemetry debug: batch ") {
			continue
		}
		var b telemetry.RemoteBatch
		if err := json.Unmarshal([]byte(line[strings.Index(line, "not sent): ")+len("not sent): "):]), &b); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		out = append(out, b)
	}
	return out
}

// TestDebug: on the central route FRED_TELEMETRY_DEBUG prints the exact
// batches on stderr and sends nothing.
func TestDebug(t *testing.T) {
	dir := fixture.LoggedIn(t, apiKey)
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_TELEMETRY_DEBUG": "1", "FRED_API_URL": "http://127.0.0.1:1"}
	code, out, errs := fred(t, env, "", "telemetry", "replay", write(t, replay.Example))
	if code != 0 || !strings.HasSuffix(out, ": 20 records printed on stderr, not sent (FRED_TELEMETRY_DEBUG)\n") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	e := expected(t, replay.Example)
	var sessions, turns, calls, events, prompt, results int
	fps := map[string]bool{}
	for _, b := range debugBatches(t, errs) {
		sessions += len(b.Sessions)
		turns += len(b.Turns)
		calls += len(b.ToolCalls)
		events += len(b.Events)
		for _, x := range b.Turns {
			prompt += int(x.PromptChars)
		}
		for _, x := range b.ToolCalls {
			results += int(x.ResultBytes)
			fps[fmt.Sprint(x.ArgsFingerprint)] = true
		}
	}
	if sessions != 2 || turns != e.turns || calls != e.calls || events != e.events || prompt != e.promptChars || results != e.resultBytes || len(fps) != e.distinctArgs {
		t.Fatalf("printed %d sessions, %d turns, %d calls (%d fingerprints), %d events, %d prompt chars, %d result bytes; want %+v",
			sessions, turns, calls, len(fps), events, prompt, results, e)
	}
	for _, sub := range []string{"audit", "spool"} {
		if _, err := os.Stat(filepath.Join(dir, sub)); !os.IsNotExist(err) {
			t.Errorf("debug wrote %s: %v", sub, err)
		}
	}
}

// TestOffRoutes: where telemetry is off, a replay records nothing, writes
// nothing and says why.
func TestOffRoutes(t *testing.T) {
	file := write(t, replay.Example)
	for _, c := range []struct {
		name   string
		setup  func(dir string) map[string]string
		args   []string
		status string
	}{
		{"--no-telemetry", func(dir string) map[string]string { return map[string]string{} }, []string{"--no-telemetry"}, "off for this session (--no-telemetry)"},
		{"--no-telemetry beats DSC_TELEMETRY_DB_URL", func(dir string) map[string]string {
			return map[string]string{"DSC_TELEMETRY_DB_URL": "sqlite:" + filepath.Join(dir, "x.db")}
		}, []string{"--no-telemetry"}, "off for this session (--no-telemetry)"},
		{"DO_NOT_TRACK", func(dir string) map[string]string { return map[string]string{"DO_NOT_TRACK": "1"} }, nil, "off (DO_NOT_TRACK is set)"},
		{"preference off", func(dir string) map[string]string { telemetry.SetTelemetry(dir, false); return nil }, nil, "off (turned off"},
		{"not logged in", func(dir string) map[string]string { telemetry.DeleteCredentials(dir); return nil }, nil, "off (not logged in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := fixture.LoggedIn(t, apiKey)
			env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_TELEMETRY_DEBUG": "1", "FRED_API_URL": "http://127.0.0.1:1"}
			for k, v := range c.setup(dir) {
				env[k] = v
			}
			before := testkit.Tree(dir)
			code, out, errs := fred(t, env, "", append(append([]string{}, c.args...), "telemetry", "replay", file)...)
			if code != 0 || !strings.Contains(out, "→ "+c.status) || !strings.HasSuffix(out, ": nothing recorded\n") || errs != "" {
				t.Fatalf("exit %d\nstdout %q\nstderr %q", code, out, errs)
			}
			if after := testkit.Tree(dir); after != before {
				t.Fatalf("files changed:\n%s---\n%s", before, after)
			}
		})
	}
}

// TestMalformedRecordsNothing: a transcript with one bad line is refused
// whole: FILE:LINE: field: problem, exit 1, and no session starts on any
// route (the database file is not even created, debug prints nothing).
func TestMalformedRecordsNothing(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(replay.Example, "\n"), "\n")
	bad := func(n int, line string) string {
		l := append([]string(nil), lines...)
		l[n-1] = line
		return strings.Join(l, "\n") + "\n"
	}
	for _, c := range []struct {
		name, transcript, want string
	}{
		{"bad JSON on the last line", bad(20, `{"type":"session_end"`), ":20: line: not valid JSON"},
		{"unknown field", bad(18, strings.Replace(lines[17], `"failed":false`, `"failed":false,"stdout":"x"`, 1)), ":18: stdout: unknown field of a tool_call line"},
		{"wrong type", bad(15, strings.Replace(lines[14], `"duration_ms":21500`, `"duration_ms":"21.5s"`, 1)), ":15: duration_ms: want a whole number, got string"},
		{"unknown type", bad(13, `{"type":"checkpoint"}`), `:13: type: unknown type "checkpoint"`},
		{"tool_call before any turn", strings.Replace(replay.Example, lines[1], lines[4], 1), ":2: type: tool_call before any turn of its session"},
		{"second session_start", strings.Replace(replay.Example, lines[2]+"\n", lines[0]+"\n"+lines[2]+"\n", 1), ":3: type: a second session_start"},
		{"no session_end", strings.Join(lines[:19], "\n"), ":1: session_end: missing"},
		{"missing session_start", strings.Join(lines[1:], "\n"), ":1: type: event before any session_start"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := write(t, c.transcript)
			db := filepath.Join(t.TempDir(), "never.db")
			for _, env := range []map[string]string{
				{"FRED_CONFIG_DIR": t.TempDir(), "DSC_TELEMETRY_DB_URL": "sqlite:" + db},
				{"FRED_CONFIG_DIR": fixture.LoggedIn(t, apiKey), "FRED_TELEMETRY_DEBUG": "1", "FRED_API_URL": "http://127.0.0.1:1"},
			} {
				code, out, errs := fred(t, env, "", "telemetry", "replay", file)
				if code != 1 || out != "" || !strings.HasPrefix(errs, "fred telemetry replay: "+file+c.want) ||
					!strings.HasSuffix(errs, "fred telemetry replay: "+file+": 1 problem; nothing was replayed\n") {
					t.Fatalf("exit %d\nstdout %q\nstderr %q\nwant %q", code, out, errs, c.want)
				}
				if strings.Contains(errs, "debug: batch") {
					t.Fatal("a batch was printed")
				}
				if _, err := os.Stat(db); !os.IsNotExist(err) {
					t.Fatalf("the database was created: %v", err)
				}
			}
		})
	}
	if code, _, errs := fred(t, nil, "", "telemetry", "replay"); code != 2 || !strings.Contains(errs, "fred telemetry replay: want one FILE") {
		t.Fatalf("no FILE: exit %d %q", code, errs)
	}
	if code, _, errs := fred(t, nil, "", "telemetry", "replay", "/nonexistent/x.jsonl"); code != 1 || !strings.HasPrefix(errs, "fred telemetry replay: open /nonexistent/x.jsonl") {
		t.Fatalf("missing file: exit %d %q", code, errs)
	}
	if code, out, _ := fred(t, nil, "", "telemetry", "replay", "--example"); code != 0 || out != replay.Example {
		t.Fatalf("--example: exit %d", code)
	}
}

// markers are unique strings placed in every input the library must not let
// leave the machine.
var markers = []string{
	"QZXsysprompt", "QZXagentsmd", "QZXcwd", "QZXhostname", "QZXenvvalue", "QZXenvname",
	"QZXuserinput", "QZXassistant", "QZXargvalue", "QZXargkey", "QZXresult", "QZXslasharg",
	"5a1b2c3d4e5f60718293a4b5c6d7e8f9QZX0abcd", // the git SHA
}

const markerTranscript = `{"type":"session_start","model":"fred-flash-2","fred_version":"1.4.2","runtime_version":"go1.26.1","os":"linux","shell":"bash","system_prompt":"You are QZXsysprompt.","agents_md":"# QZXagentsmd","cwd":"/home/QZXcwd/src","hostname":"QZXhostname.local","git_sha":"5a1b2c3d4e5f60718293a4b5c6d7e8f9QZX0abcd","git_dirty":false,"env":{"TOKEN":"QZXenvvalue","QZXenvname":"1"},"tools":["read_file","bash"],"commands":["model","help"]}
{"type":"event","kind":"slash_command","line":"/model QZXslasharg"}
{"type":"event","kind":"model_swap","from":"fred-flash-2","to":"fred-pro-2"}
{"type":"turn","mode":"act","model":"fred-pro-2","prompt_tokens":10,"completion_tokens":5,"finish_reason":"stop","duration_ms":900,"user_input":"please QZXuserinput now","assistant_text":"done QZXassistant"}
{"type":"tool_call","tool_name":"read_file","args":{"path":"/home/QZXargvalue/a.go","QZXargkey":true},"result":"package QZXresult","permission":"auto_allowed","duration_ms":4}
{"type":"tool_call","tool_name":"read_file","args":{"QZXargkey":true,"path":"/home/QZXargvalue/a.go"},"result":"Error: QZXresult not found","permission":"auto_allowed","duration_ms":2,"failed":true}
{"type":"tool_call","tool_name":"bash","args":{"command":"cat QZXargvalue"},"result":"QZXresult","permission":"user_allowed","duration_ms":30}
{"type":"event","kind":"api_retry","attempt":2,"delay_ms":800,"error_type":"overloaded","status":529}
{"type":"session_end"}
`

func noMarker(t *testing.T, where, text string) {
	t.Helper()
	for _, m := range markers {
		if strings.Contains(text, m) {
			t.Errorf("%s holds %s:\n%s", where, m, text)
		}
	}
}

func pgText(t *testing.T, url, sql string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var s string
	if err := c.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func folderText(t *testing.T, dir string) (string, int) {
	t.Helper()
	var b strings.Builder
	n := 0
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			body, _ := os.ReadFile(p)
			b.WriteString(p + "\n")
			b.Write(body)
			b.WriteString("\n")
			n++
		}
		return nil
	})
	return b.String(), n
}

// TestNoTextLeavesTheMachine: a transcript whose every text, argument,
// result, path, host name, environment value and git SHA carries a marker,
// replayed on the central route: first to an unreachable API (so it lands in
// the spool), then to the real server. No
// marker is in the central database, the spool, the audit log, or the
// batches FRED_TELEMETRY_DEBUG prints.
func TestNoTextLeavesTheMachine(t *testing.T) {
	for _, m := range markers {
		if !strings.Contains(markerTranscript, m) {
			t.Fatalf("the transcript lacks %s", m)
		}
	}
	db := testdb.Postgres(t)
	p := testkit.StartServer(t, db, "")
	dir := fixture.LoggedIn(t, testkit.CreateKey(t, db, "alice"))
	file := write(t, markerTranscript)

	code, out, errs := fred(t, map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": "http://127.0.0.1:1"}, "", "telemetry", "replay", file)
	if code != 0 || !strings.Contains(out, "0 records written, 9 spooled") {
		t.Fatalf("unreachable API: exit %d\n%s\n%s", code, out, errs)
	}
	spool, n := folderText(t, filepath.Join(dir, "spool"))
	if n == 0 {
		t.Fatal("nothing was spooled")
	}
	noMarker(t, "the spool", spool)

	code, out, errs = fred(t, map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": "http://" + p.URL}, "", "telemetry", "replay", file)
	if code != 0 || !strings.Contains(out, ": 9 records written") {
		t.Fatalf("real API: exit %d\n%s\n%s", code, out, errs)
	}
	// The spooled session goes too, however short the replay's session:
	// the library delivers the spool from a session's start.
	if b, _ := central.SpoolSize(dir); b != 0 {
		t.Errorf("%d batches still spooled after a session against the real API", b)
	}
	check(t, db, "telemetry_", expected(t, markerTranscript+markerTranscript))
	var dump strings.Builder
	for _, table := range []string{"telemetry_sessions", "telemetry_turns", "telemetry_tool_calls", "telemetry_events"} {
		dump.WriteString(pgText(t, db, "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n'), '') FROM "+table+" t"))
	}
	if !strings.Contains(dump.String(), `"prompt_chars":23`) || !strings.Contains(dump.String(), `"command": "model"`) {
		t.Fatalf("the dump misses what it should hold:\n%s", dump.String())
	}
	noMarker(t, "the central database", dump.String())
	audit, n := folderText(t, filepath.Join(dir, "audit"))
	if n == 0 {
		t.Fatal("no audit log")
	}
	noMarker(t, "the audit log", audit)
	left, _ := folderText(t, filepath.Join(dir, "spool"))
	noMarker(t, "the spool", left)

	code, out, errs = fred(t, map[string]string{"FRED_CONFIG_DIR": fixture.LoggedIn(t, apiKey), "FRED_TELEMETRY_DEBUG": "1"}, "", "telemetry", "replay", file)
	if code != 0 || len(debugBatches(t, errs)) == 0 {
		t.Fatalf("debug: exit %d\n%s\n%s", code, out, errs)
	}
	noMarker(t, "the debug output", out+errs)
}

// TestLongTranscriptIsPaced: recording never blocks and the library's queue
// (8 MiB, text included on the self-hosted route) drops what does not fit,
// so a long transcript would lose records if the replay did not wait for
// the writer; it does, and nothing is lost.
func TestLongTranscriptIsPaced(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"type":"session_start","model":"fred-flash-2"}` + "\n")
	const turns, calls = 120, 3 // 120 turns of 100 KB of text: 12 MB
	for i := 0; i < turns; i++ {
		fmt.Fprintf(&b, `{"type":"turn","mode":"act","model":"fred-flash-2","finish_reason":"stop","duration_ms":10,"user_input":"%s","assistant_text":"%s"}`+"\n",
			strings.Repeat("u", 20_000), strings.Repeat("a", 80_000))
		for j := 0; j < calls; j++ {
			fmt.Fprintf(&b, `{"type":"tool_call","tool_name":"read_file","args":{"path":"f%d.go"},"result":"package f","permission":"auto_allowed","duration_ms":1}`+"\n", j)
		}
	}
	b.WriteString(`{"type":"session_end"}` + "\n")
	url := testdb.SQLite(t)
	env := map[string]string{"FRED_CONFIG_DIR": t.TempDir(), "DSC_TELEMETRY_DB_URL": url}
	code, out, errs := fred(t, env, "", "telemetry", "replay", write(t, b.String()))
	if code != 0 || !strings.HasSuffix(out, fmt.Sprintf(": %d records written\n", 2+turns+turns*calls)) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if n := testdb.QueryInt(t, url, "SELECT sum(length(user_input) + length(assistant_text)) FROM dsc_turns"); n != turns*100_000 {
		t.Fatalf("%d characters of text written, want %d", n, turns*100_000)
	}
}
