package relay

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	logspb "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/fredcode/fredtel/telemetry/selfhost"
)

func TestMain(m *testing.M) { testkit.Main(m) }

// folderWant is what one fixture session must become.
type folderWant struct {
	agent, version string // version "" : null
	turns          int
	finishes       string // the turns' finish reasons, in order
	calls          string // tool:permission:duration_ms, in order
	events         string // event names (and props), in order
}

var wants = map[string]folderWant{
	"claude-default": {agent: "claude-code", version: "2.1.197", turns: 2, finishes: "tool_calls stop",
		calls: "Bash:auto_allowed:77"},
	"claude-full": {agent: "claude-code", version: "2.1.197", turns: 2, finishes: "tool_calls stop",
		calls: "Bash:auto_allowed:101 Write:denied:3"},
	"claude-error-protobuf": {agent: "claude-code", version: "2.1.197", turns: 2, finishes: "tool_calls stop",
		calls: "Bash:auto_allowed:81", events: `api_retry{"attempt":1,"delay_ms":762,"error_type":"other","latency_ms":0,"status":0} api_retry{"attempt":2,"delay_ms":1191,"error_type":"other","latency_ms":0,"status":0}`},
	"claude-interactive": {agent: "claude-code", version: "2.1.197", turns: 2, finishes: "tool_calls stop",
		calls: "Bash:auto_allowed:129", events: `slash_command{"command":"cost"}`},
	"codex-default-protobuf": {agent: "codex", version: "0.171.0", turns: 2, finishes: "tool_calls stop",
		calls: "exec_command:auto_allowed:139"},
	"codex-full-json": {agent: "codex", version: "0.171.0", turns: 2, finishes: "tool_calls stop",
		calls: "exec_command:auto_allowed:132"},
	"gemini-full": {agent: "gemini-cli", turns: 2, finishes: "tool_calls stop", calls: "list_directory:auto_allowed:34"},
	"gemini-error": {agent: "gemini-cli", turns: 2, finishes: "tool_calls stop", calls: "list_directory:auto_allowed:17",
		events: `api_retry{"attempt":1,"delay_ms":5562,"error_type":"server_error","latency_ms":35,"status":503} api_retry{"attempt":2,"delay_ms":12787,"error_type":"server_error","latency_ms":12,"status":503}`},
	"gemini-interactive": {agent: "gemini-cli", turns: 2, finishes: "tool_calls stop", calls: "list_directory:user_allowed:174",
		events: `slash_command{"command":"stats"} mode_change{"from":"act","to":"plan"} slash_command{"command":"quit"}`},
}

// needles are what must never reach the central route: the prompt's
// canary, the fixtures' paths, file and host names, tool arguments and
// output, answers, error text, the CLIs' own ids.
var needles = []string{"SECRET-PROMPT-CANARY-42", "/tmp/work-", "hello.txt", "FAKE-ANSWER", "Fake title",
	"dir_path", "workdir", "bash_command", "full_command", "List files", "Chunk ID", "fake injected error", "notes.txt",
	"/opt/agents", "node_modules", "/usr/bin/node", "07bdb5b2-8e03-4837", "01a21c80-9897", "247c674a-f58f",
	"b08b66ca9c03f799", "94e1b5e4-813d", "fake-resp-1"}

// hostName is the fixtures' host name, a whole word.
var hostName = regexp.MustCompile(`(^|[^A-Za-z0-9])vm([^A-Za-z0-9]|$)`)

func folders(t *testing.T) []string {
	dirs, _ := filepath.Glob(filepath.Join(fixturesDir(t), "*"))
	var out []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	if len(out) != len(wants) {
		t.Fatalf("%d fixture folders, the test knows %d", len(out), len(wants))
	}
	return out
}

// replay sends every request of folder, in order, to a new relay with
// opts, every other one gzipped, and closes it.
func replay(t *testing.T, opts telemetry.Options, stderr *testkit.Buffer, folder string, extra ...request) Stats {
	t.Helper()
	r := New(Options{Telemetry: opts, Stderr: stderr})
	for i, rq := range append(fixtureRequests(t, folder), extra...) {
		if c := send(r, rq, i%2 == 1); c != 200 {
			t.Fatalf("%s: %s answered %d", filepath.Base(folder), rq.name, c)
		}
	}
	r.Close(context.Background())
	return r.Stats()
}

// TestFixturesCentral replays every fixture folder into the relay, on the
// central route to a real server: each session's rows are the CLI's
// turns, tool calls (permission, duration) and events, and nothing the
// CLIs sent as text is anywhere on the route: not in a pg_dump of the
// database, the spool, the audit log, the relay's output nor the server's.
func TestFixturesCentral(t *testing.T) {
	db := testdb.Postgres(t)
	srv := testkit.StartServer(t, db, "")
	var stderr testkit.Buffer
	var configs []string
	for _, folder := range folders(t) {
		name := filepath.Base(folder)
		dir := fixture.LoggedIn(t, testkit.CreateKey(t, db, name))
		configs = append(configs, dir)
		env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": "http://" + srv.URL}
		st := replay(t, telemetry.Options{FredVersion: "1.4.2", Getenv: func(k string) string { return env[k] },
			Stderr: &stderr, NewCentral: central.New, CloseBudget: 10 * time.Second}, &stderr, folder)
		if st.Sessions != 1 || st.Closed != 1 || st.UnknownEvent+st.Incomplete+st.UnknownService+st.NoSession != 0 {
			t.Errorf("%s: %+v", name, st)
		}
	}
	conn, err := sql.Open("pgx", db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, folder := range folders(t) {
		name := filepath.Base(folder)
		checkRows(t, conn, name, wants[name])
	}

	dump := string(testdb.PGDump(t, db))
	var spool bytes.Buffer
	for _, dir := range configs {
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() {
				b, _ := os.ReadFile(p)
				spool.Write(b)
			}
			return nil
		})
	}
	for what, text := range map[string]string{"the database": dump, "the config dirs (spool, audit log)": spool.String(),
		"the relay's output": stderr.String(), "the server's log": srv.Stderr()} {
		for _, n := range needles {
			if strings.Contains(text, n) {
				t.Errorf("%s holds %q", what, n)
			}
		}
		if hostName.MatchString(text) {
			t.Errorf("%s holds the host name", what)
		}
	}
	if !strings.Contains(dump, "claude-code") || !strings.Contains(spool.String(), `"agent":"gemini-cli"`) {
		t.Fatalf("the dump or the audit log holds no relayed session: the check above checked nothing")
	}
}

func checkRows(t *testing.T, conn *sql.DB, user string, w folderWant) {
	t.Helper()
	var sid, agent string
	var version sql.NullString
	var ended sql.NullTime
	if err := conn.QueryRow(`SELECT session_id::text, agent, agent_version, ended_at FROM telemetry_sessions WHERE user_id = $1`, user).
		Scan(&sid, &agent, &version, &ended); err != nil {
		t.Errorf("%s: the session: %v", user, err)
		return
	}
	if agent != w.agent || version.String != w.version || !ended.Valid {
		t.Errorf("%s: agent %q version %q ended %v, want %q %q and an end", user, agent, version.String, ended.Valid, w.agent, w.version)
	}
	list := func(q string) string {
		rows, err := conn.Query(q, sid)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}
	finishes := list(`SELECT finish_reason FROM telemetry_turns WHERE session_id = $1 ORDER BY seq`)
	if n := len(strings.Fields(finishes)); n != w.turns || finishes != w.finishes {
		t.Errorf("%s: turns %q, want %q", user, finishes, w.finishes)
	}
	calls := list(`SELECT c.tool_name || ':' || c.permission || ':' || c.duration_ms FROM telemetry_tool_calls c
		JOIN telemetry_turns t ON t.turn_id = c.turn_id WHERE c.session_id = $1 ORDER BY t.seq, c.seq`)
	if calls != w.calls {
		t.Errorf("%s: tool calls %q, want %q", user, calls, w.calls)
	}
	if n := list(`SELECT sum(num_tool_calls)::text FROM telemetry_turns WHERE session_id = $1`); n != strconv.Itoa(len(strings.Fields(w.calls))) {
		t.Errorf("%s: num_tool_calls sum %s", user, n)
	}
	events := list(`SELECT name || (SELECT json_object_agg(k, v ORDER BY k)::text FROM jsonb_each(props::jsonb) AS p(k, v))
		FROM telemetry_events WHERE session_id = $1 ORDER BY seq`)
	if strings.ReplaceAll(events, " ", "") != strings.ReplaceAll(w.events, " ", "") {
		t.Errorf("%s: events %s, want %s", user, events, w.events)
	}
}

// TestFixturesSelfHosted: in the user's own database the prompt's text is
// kept in user_input (and the answer in assistant_text), nowhere else.
func TestFixturesSelfHosted(t *testing.T) {
	db := testdb.Postgres(t)
	env := map[string]string{"FRED_CONFIG_DIR": t.TempDir(), "DSC_TELEMETRY_DB_URL": db}
	var stderr testkit.Buffer
	for _, folder := range folders(t) {
		replay(t, telemetry.Options{Getenv: func(k string) string { return env[k] }, Stderr: &stderr, SelfHosted: selfhost.Open}, &stderr, folder)
	}
	withPrompt := testdb.QueryInt(t, db, `SELECT count(*) FROM dsc_turns WHERE user_input LIKE '%SECRET-PROMPT-CANARY-42%'`)
	// claude-full, codex-full-json, gemini-full and gemini-error sent the prompt.
	if withPrompt != 4 {
		t.Fatalf("%d turns keep the prompt, want 4; stderr:\n%s", withPrompt, stderr.String())
	}
	if n := testdb.QueryInt(t, db, `SELECT count(*) FROM dsc_sessions`); n != len(wants) {
		t.Fatalf("%d sessions, want %d", n, len(wants))
	}
	dump := string(testdb.PGDump(t, db))
	if n := strings.Count(dump, "SECRET-PROMPT-CANARY-42"); n != withPrompt {
		t.Fatalf("the canary is %d times in the dump, %d times in user_input: it is somewhere else too", n, withPrompt)
	}
	for _, n := range []string{"/tmp/work-", "dir_path", "Chunk ID", "fake injected error"} {
		if strings.Contains(dump, n) {
			t.Errorf("the self-hosted database holds %q", n)
		}
	}
	if testdb.QueryInt(t, db, `SELECT count(*) FROM dsc_turns WHERE assistant_text LIKE 'FAKE-ANSWER%'`) == 0 {
		t.Error("no answer kept in assistant_text")
	}
}

// TestInsightsSeeACLILoop: a Codex session that runs the same command
// four times shows as a loop in the insights, under its agent only.
func TestInsightsSeeACLILoop(t *testing.T) {
	db := testdb.Postgres(t)
	srv := testkit.StartServer(t, db, "")
	dir := fixture.LoggedIn(t, testkit.CreateKey(t, db, "loop"))
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": "http://" + srv.URL}
	var stderr testkit.Buffer
	folder := filepath.Join(fixturesDir(t), "codex-full-json")
	opts := telemetry.Options{Getenv: func(k string) string { return env[k] }, Stderr: &stderr, NewCentral: central.New,
		CloseBudget: 10 * time.Second}
	st := replay(t, opts, &stderr, folder, repeatedToolResult(t, folder, "0006_v1_logs.json", "codex.tool_result", 3))
	if st.Sessions != 1 {
		t.Fatalf("%+v", st)
	}
	// Claude Code without OTEL_LOG_TOOL_DETAILS sends no arguments: the
	// same tool four times is not taken for a loop.
	claude := filepath.Join(fixturesDir(t), "claude-default")
	replay(t, opts, &stderr, claude, repeatedToolResult(t, claude, "0006_v1_logs.json", "tool_result", 3))
	rep, err := insights.Compute(context.Background(), db, insights.Options{Tables: "central", Agent: "claude-code"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.ToolCalls != 4 || len(rep.ToolLoops.Loops) != 0 {
		t.Fatalf("Claude Code's calls without arguments: %d calls, loops %+v", rep.Totals.ToolCalls, rep.ToolLoops.Loops)
	}
	rep, err = insights.Compute(context.Background(), db, insights.Options{Tables: "central", Agent: "codex"})
	if err != nil {
		t.Fatalf("%v; sessions: %d of codex", err, testdb.QueryInt(t, db, `SELECT count(*) FROM telemetry_sessions WHERE agent = 'codex'`))
	}
	if len(rep.ToolLoops.Loops) != 1 || rep.ToolLoops.Loops[0].ToolName != "exec_command" || rep.ToolLoops.Loops[0].Repeats != 4 {
		t.Fatalf("loops %+v, want one of exec_command × 4; stderr %s", rep.ToolLoops.Loops, stderr.String())
	}
	// Filtered by another agent, there is nothing.
	if _, err := insights.Compute(context.Background(), db, insights.Options{Tables: "central", Agent: "gemini-cli"}); !errors.Is(err, insights.ErrNoData) {
		t.Fatalf("the gemini-cli filter: %v, want no data", err)
	}
}

// repeatedToolResult is a logs request with the event of file n more
// times, same arguments and output, 200 ms apart after the file's last.
func repeatedToolResult(t *testing.T, folder, file, event string, n int) request {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(folder, file))
	if err != nil {
		t.Fatal(err)
	}
	var m collogs.ExportLogsServiceRequest
	if err := protojson.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	rl := m.ResourceLogs[0]
	var tool *logspb.LogRecord
	var last uint64
	for _, sl := range rl.ScopeLogs {
		for _, lr := range sl.LogRecords {
			if str(lr.Attributes, "event.name") == event {
				tool = lr
			}
			last = max(last, lr.ObservedTimeUnixNano, lr.TimeUnixNano)
		}
	}
	if tool == nil {
		t.Fatalf("no %s in %s", event, file)
	}
	var recs []*logspb.LogRecord
	for i := 1; i <= n; i++ {
		c := proto.Clone(tool).(*logspb.LogRecord)
		c.ObservedTimeUnixNano = last + uint64(i)*uint64(200*time.Millisecond)
		if c.TimeUnixNano != 0 {
			c.TimeUnixNano = c.ObservedTimeUnixNano
		}
		recs = append(recs, c)
	}
	rl.ScopeLogs = rl.ScopeLogs[:1]
	rl.ScopeLogs[0].LogRecords = recs
	out, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	return request{name: "repeated tool_result", path: "/v1/logs", contentType: "application/x-protobuf", body: out}
}
