package canary_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/proof"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
)

func TestMain(m *testing.M) { testkit.Main(m) }

func mapEnv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestCentral: sessions with a canary in every input go the central route
// every way they can — delivered to the real server, held in the spool by
// an endpoint that never answers and delivered by the next session, replayed
// from a transcript, spooled by a refused endpoint, printed by
// FRED_TELEMETRY_DEBUG — and no canary, nor a hash of one anyone could
// recompute, is in a pg_dump of the whole central database, in any file of
// the client's config dir, in what the commands printed, or in the server's
// log. Row counts, lengths and the system prompt's hash show the canaries
// did reach the library.
func TestCentral(t *testing.T) {
	ctx := context.Background()
	db := testdb.Postgres(t)
	// The server binary is built before the test moves into the canary
	// folder, which is outside the module.
	srv := testkit.StartServer(t, db, "")
	dir := fixture.LoggedIn(t, testkit.CreateKey(t, db, "alice"))
	api := "http://" + srv.URL
	hole, accepted := blackhole(t)
	c := newCanaries(t)
	cwd := c.enterCwd(t)
	var stderr, printed testkit.Buffer
	var want tally

	// 1. The process environment, to an endpoint that accepts and never
	// answers: the records wait in the spool. First, so that a leak the
	// server would refuse shows here before anything else fails.
	c.setenv(t, map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": hole})
	s := telemetry.Start(telemetry.Options{FredVersion: c.get("fredversion"), Stderr: &stderr, NewCentral: central.New,
		CloseBudget: time.Second}, c.info())
	n := c.record(s)
	s.Close(ctx)
	if st := s.Stats(); st.Spooled != int64(n.records()) || st.Written != 0 {
		t.Fatalf("session to a blackhole: %+v, want %d records spooled", st, n.records())
	}
	testkit.WaitFor(t, 5*time.Second, "the session's connection to the blackhole", func() bool { return accepted() > 0 })
	spool, spoolFiles := folder(t, filepath.Join(dir, "spool"))
	if spoolFiles == 0 {
		t.Fatal("the spool is empty")
	}
	noneIn(t, "the spool of a session that could not send", spool, c.needles())
	want.add(n) // session 4 delivers them

	// 2. The library API with its environment through Options.Getenv, to
	// the server.
	e := c.env(map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api})
	info := c.info()
	info.OS = c.get("os")
	s = telemetry.Start(telemetry.Options{FredVersion: "1.4.2", Getenv: e.get, Stderr: &stderr, NewCentral: central.New,
		CloseBudget: 10 * time.Second}, info)
	n = c.record(s)
	s.Close(ctx)
	if st := s.Stats(); st.Written != int64(n.records()) || st.Dropped+st.Spooled != 0 {
		t.Fatalf("session to the server: %+v, want %d records written; stderr:\n%s", st, n.records(), stderr.String())
	}
	if !e.askedFor("SHELL") {
		t.Fatal("the library never read SHELL through Options.Getenv: the getenv canary reached nothing")
	}
	want.add(n)

	// 3. A transcript (cwd, hostname, git SHA, environment) through `fred
	// telemetry replay`, to the server.
	text := c.transcript(cwd)
	file := writeTranscript(t, text)
	nt := transcriptTally(t, text)
	code, out, errs := fred(mapEnv(map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api}), "telemetry", "replay", file)
	printed.Write([]byte(out + errs))
	if code != 0 || !strings.Contains(out, fmt.Sprintf(": %d records written;", nt.records())) {
		t.Fatalf("replay to the server: exit %d\n%s\n%s", code, out, errs)
	}
	want.add(nt)

	// 4. The library API again: this session delivers the spool first.
	e = c.env(map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": api})
	info = c.info()
	info.Shell = c.get("shell")
	s = telemetry.Start(telemetry.Options{FredVersion: "1.4.2", Getenv: e.get, Stderr: &stderr, NewCentral: central.New,
		FlushInterval: 20 * time.Millisecond, CloseBudget: 10 * time.Second}, info)
	testkit.WaitFor(t, 30*time.Second, "the spooled session's delivery", func() bool { b, _ := central.SpoolSize(dir); return b == 0 })
	n = c.record(s)
	s.Close(ctx)
	if st := s.Stats(); st.Written != int64(n.records()) || st.Dropped+st.Spooled != 0 {
		t.Fatalf("session delivering the spool: %+v, want %d records written; stderr:\n%s", st, n.records(), stderr.String())
	}
	want.add(n)

	// 5. The transcript to a refused port: spooled, and left there.
	code, out, errs = fred(mapEnv(map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": "http://127.0.0.1:1"}), "telemetry", "replay", file)
	printed.Write([]byte(out + errs))
	if code != 0 || !strings.Contains(out, fmt.Sprintf(": 0 records written, %d spooled", nt.records())) {
		t.Fatalf("replay to a refused port: exit %d\n%s\n%s", code, out, errs)
	}

	// 6. FRED_TELEMETRY_DEBUG prints the batches instead of sending them.
	code, out, errs = fred(mapEnv(map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": hole, "FRED_TELEMETRY_DEBUG": "1"}), "telemetry", "replay", file)
	debug := debugBatches(errs)
	printed.Write([]byte(out + errs))
	if code != 0 || len(debug) == 0 {
		t.Fatalf("replay under FRED_TELEMETRY_DEBUG: exit %d, %d batches printed\n%s\n%s", code, len(debug), out, errs)
	}

	// 7. What `fred telemetry show` shows the user.
	code, shown, errs := fred(mapEnv(map[string]string{"FRED_CONFIG_DIR": dir}), "telemetry", "show")
	printed.Write([]byte(shown + errs))
	sentShown, spooledShown := strings.Count("\n"+shown, "\n# sent "), strings.Count("\n"+shown, "\n# spooled ")
	if code != 0 || sentShown == 0 || spooledShown == 0 {
		t.Fatalf("fred telemetry show: exit %d, %d sent and %d spooled batches shown\n%s%s", code, sentShown, spooledShown, shown, errs)
	}
	c.checkUsed(t)
	ns := c.needles()

	// The database: first that the canaries' records are all there.
	testdb.Counts(t, db, map[string]int{
		"SELECT count(*) FROM telemetry_sessions WHERE user_id = 'alice' AND ended_at IS NOT NULL":        want.sessions,
		"SELECT count(*) FROM telemetry_turns":                                                            want.turns,
		"SELECT count(*) FROM telemetry_tool_calls":                                                       want.calls,
		"SELECT count(*) FROM telemetry_events":                                                           want.events,
		"SELECT coalesce(sum(prompt_chars), 0) FROM telemetry_turns":                                      want.promptChars,
		"SELECT coalesce(sum(response_chars), 0) FROM telemetry_turns":                                    want.responseChars,
		"SELECT coalesce(sum(result_bytes), 0) FROM telemetry_tool_calls":                                 want.resultBytes,
		"SELECT count(*) FROM telemetry_tool_calls WHERE result_is_error":                                 want.errorResults,
		"SELECT count(DISTINCT args_fingerprint) FROM telemetry_tool_calls":                               want.distinctArgs,
		"SELECT count(*) FROM (SELECT DISTINCT session_id, args_fingerprint FROM telemetry_tool_calls) x": want.distinctArgs,
		// The system prompt and AGENTS.md reached the library: their hashes
		// are recorded.
		"SELECT count(*) FROM telemetry_sessions WHERE system_prompt_sha256 = '" + c.systemPromptSHA() + "' AND agents_md_hash IS NOT NULL AND git_dirty": want.sessions,
		// Every shell path reached it, and only its basename was kept: SHELL
		// from Options.Getenv (fish), from the process (bash), from
		// SessionInfo and the transcript (zsh).
		"SELECT count(*) FROM telemetry_sessions WHERE shell = 'fish'": 1,
		"SELECT count(*) FROM telemetry_sessions WHERE shell = 'bash'": 1,
		"SELECT count(*) FROM telemetry_sessions WHERE shell = 'zsh'":  2,
	})

	dump := testdb.PGDump(t, db)
	tables, rows := dumpRows(dump)
	total := 0
	for table, n := range map[string]int{"telemetry_sessions": want.sessions, "telemetry_turns": want.turns,
		"telemetry_tool_calls": want.calls, "telemetry_events": want.events} {
		if rows[table] != n {
			t.Errorf("the dump has %d rows of %s, want %d", rows[table], table, n)
		}
	}
	for _, n := range rows {
		total += n
	}
	if !bytes.Contains(dump, []byte(c.systemPromptSHA())) {
		t.Error("the dump lacks the system prompt's SHA-256")
	}
	noneIn(t, "the pg_dump of the central database", dump, ns)
	hostNote := "the machine's hostname not looked for (under 6 characters)"
	if h, err := os.Hostname(); err == nil && len(h) >= 6 {
		var data []byte // without pg_dump's comments, which name its build
		for _, l := range bytes.Split(dump, []byte("\n")) {
			if !bytes.HasPrefix(l, []byte("--")) {
				data = append(append(data, l...), '\n')
			}
		}
		if bytes.Contains(data, []byte(h)) {
			t.Errorf("the pg_dump of the central database holds this machine's hostname %q", h)
		}
		hostNote = "nor the machine's hostname"
	}

	// Everything the client keeps, shows and prints.
	files, nfiles := folder(t, dir)
	noneIn(t, "the config dir", files, ns)
	spoolBatches, spoolBytes := central.SpoolSize(dir)
	if spoolBatches == 0 {
		t.Error("the spool is empty at the end: the refused replay left nothing there")
	}
	noneIn(t, "what the sessions and commands printed", []byte(stderr.String()+printed.String()), ns)
	noneIn(t, "the server's log", []byte(srv.Stderr()), ns)
	if t.Failed() {
		return
	}
	proof.Figure(t, "canary", "central route: the whole central database",
		"0 of %d canaries (%d needles with their guessable hashes) in a %s pg_dump of %d tables, %d rows (%d sessions, %d turns, %d tool calls, %d events); %s",
		len(c.list), len(ns), kib(len(dump)), tables, total, want.sessions, want.turns, want.calls, want.events, hostNote)
	proof.Figure(t, "canary", "central route: what the client keeps and prints",
		"0 canaries in %d files of the config dir (spool: %s, %d bytes; audit: %d sent and %d spooled batches shown), the batches FRED_TELEMETRY_DEBUG printed (%d), the server's log",
		nfiles, nof(spoolBatches, "batch"), spoolBytes, sentShown, spooledShown, len(debug))
	proof.Figure(t, "canary", "central route: the canaries reached the library",
		"%d prompt and %d response characters, %d result bytes, %d distinct fingerprints, the system prompt's SHA-256 in all %d sessions",
		want.promptChars, want.responseChars, want.resultBytes, want.distinctArgs, want.sessions)
}
