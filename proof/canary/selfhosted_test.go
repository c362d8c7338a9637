package canary_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/proof"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/fredcode/fredtel/telemetry/selfhost"
)

// TestSelfHostedText: into the user's own database (PostgreSQL and SQLite)
// with text, the prompt and response canaries are in dsc_turns.user_input
// and dsc_turns.assistant_text, every one of them, and in no other column;
// every other canary is in no column, nor in the whole store (pg_dump, or
// the SQLite file's raw bytes), the config dir, or what was printed.
func TestSelfHostedText(t *testing.T) { selfHosted(t, false) }

// TestSelfHostedNoText: the same with DSC_TELEMETRY_NO_TEXT=1: no canary
// anywhere, the text columns empty, the lengths still recorded.
func TestSelfHostedNoText(t *testing.T) { selfHosted(t, true) }

func selfHosted(t *testing.T, noText bool) {
	for _, be := range testdb.Backends {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			url := be.URL(t)
			// Logged in, with an API that accepts connections: the user's
			// database wins (SPEC §2) and nothing may go there.
			hole, accepted := blackhole(t)
			dir := fixture.LoggedIn(t, "fred_live_0123456789abcdefghijKLMN")
			c := newCanaries(t)
			cwd := c.enterCwd(t)
			vars := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": hole, "DSC_TELEMETRY_DB_URL": url}
			if noText {
				vars["DSC_TELEMETRY_NO_TEXT"] = "1"
			}
			var stderr, printed testkit.Buffer
			var want tally
			options := func(getenv func(string) string, version string) telemetry.Options {
				return telemetry.Options{FredVersion: version, Getenv: getenv, Stderr: &stderr, SelfHosted: selfhost.Open,
					NewCentral: central.New, SelfHostedCloseBudget: 30 * time.Second}
			}
			written := func(what string, s *telemetry.Session, n tally) {
				t.Helper()
				if st := s.Stats(); st.Written != int64(n.records()) || st.Dropped != 0 {
					t.Fatalf("%s: %+v, want %d records written; stderr:\n%s", what, st, n.records(), stderr.String())
				}
				want.add(n)
			}

			e := c.env(vars)
			info := c.info()
			info.OS = c.get("os")
			s := telemetry.Start(options(e.get, "1.4.2"), info)
			n := c.record(s)
			s.Close(ctx)
			written("session with Options.Getenv", s, n)

			c.setenv(t, vars)
			info = c.info()
			info.Shell = c.get("shell")
			s = telemetry.Start(options(nil, c.get("fredversion")), info)
			n = c.record(s)
			s.Close(ctx)
			written("session with the process environment", s, n)

			text := c.transcript(cwd)
			nt := transcriptTally(t, text)
			code, out, errs := fred(mapEnv(vars), "telemetry", "replay", writeTranscript(t, text))
			printed.Write([]byte(out + errs))
			if code != 0 || !strings.Contains(out, fmt.Sprintf(": %d records written;", nt.records())) {
				t.Fatalf("replay: exit %d\n%s\n%s", code, out, errs)
			}
			want.add(nt)
			c.checkUsed(t)
			if n := accepted(); n != 0 {
				t.Errorf("the central API got %d connections from a self-hosted session", n)
			}

			// Which column may hold which canary: the text ones theirs,
			// when text is on; nothing else anywhere.
			prompt, response := c.byKind["prompt"], c.byKind["response"]
			allowed := func(n needle) string {
				switch {
				case noText || n.what != "text":
				case n.kind == "prompt":
					return "dsc_turns.user_input"
				case n.kind == "response":
					return "dsc_turns.assistant_text"
				}
				return ""
			}
			ns := c.needles()
			var others []needle
			for _, n := range ns {
				if allowed(n) == "" {
					others = append(others, n)
				}
			}

			// The whole store first, as it is on disk or as pg_dump sees
			// it (reading the columns opens the SQLite file again).
			var store []byte
			var storeWhat string
			if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
				raw, files := sqliteBytes(t, path)
				store, storeWhat = raw, fmt.Sprintf("the raw bytes of the SQLite database (%s, %s)", kib(len(raw)), nof(files, "file"))
			} else {
				store = testdb.PGDump(t, url)
				storeWhat = fmt.Sprintf("the %s pg_dump", kib(len(store)))
			}
			noneIn(t, storeWhat, store, others)

			cols := columns(t, url)
			tables := map[string]bool{}
			for _, col := range cols {
				tables[col.name[:strings.IndexByte(col.name, '.')]] = true
			}
			for n, in := range where(cols, ns) {
				for _, col := range in {
					if col != allowed(n) {
						t.Errorf("column %s holds the %s canary (%s %s)", col, n.kind, n.what, n.value)
					}
				}
			}
			if noText {
				if n := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input IS NULL AND assistant_text IS NULL"); n != want.turns {
					t.Errorf("%d of %d turns without text", n, want.turns)
				}
			} else {
				// Every turn's text is there, whole.
				for _, x := range []struct {
					col string
					k   *canary
				}{{"dsc_turns.user_input", prompt}, {"dsc_turns.assistant_text", response}} {
					if got := count(cols, x.col, x.k.text); got != want.textTurns {
						t.Errorf("%s holds the %s canary %d times, want %d", x.col, x.k.kind, got, want.textTurns)
					}
					if len(found(store, []needle{{x.k.kind, "text", x.k.token}})) == 0 {
						t.Errorf("%s lacks the %s canary: the search cannot see text there", storeWhat, x.k.kind)
					}
				}
			}
			testdb.Counts(t, url, map[string]int{
				"SELECT count(*) FROM dsc_sessions WHERE ended_at IS NOT NULL":                                 want.sessions,
				"SELECT count(*) FROM dsc_turns":                                                               want.turns,
				"SELECT count(*) FROM dsc_tool_calls":                                                          want.calls,
				"SELECT count(*) FROM dsc_events":                                                              want.events,
				"SELECT coalesce(sum(prompt_chars), 0) FROM dsc_turns":                                         want.promptChars,
				"SELECT coalesce(sum(response_chars), 0) FROM dsc_turns":                                       want.responseChars,
				"SELECT coalesce(sum(result_bytes), 0) FROM dsc_tool_calls":                                    want.resultBytes,
				"SELECT count(*) FROM dsc_tool_calls WHERE result_is_error":                                    want.errorResults,
				"SELECT count(DISTINCT args_fingerprint) FROM dsc_tool_calls":                                  want.distinctArgs,
				"SELECT count(*) FROM dsc_sessions WHERE system_prompt_sha256 = '" + c.systemPromptSHA() + "'": want.sessions,
				"SELECT count(*) FROM dsc_sessions WHERE agents_md_hash IS NOT NULL":                           want.sessions,
			})

			files, nfiles := folder(t, dir)
			noneIn(t, "the config dir", files, ns)
			noneIn(t, "what the sessions and the replay printed", []byte(stderr.String()+printed.String()), ns)
			if t.Failed() {
				return
			}
			route := "self-hosted with text (" + be.Name + ")"
			if noText {
				route = "self-hosted, DSC_TELEMETRY_NO_TEXT=1 (" + be.Name + ")"
				proof.Figure(t, "canary", route, "0 of %d canaries (%d needles with their guessable hashes) in %d columns of %d tables, %s, %d files of the config dir; %d turns without text, their %d prompt characters counted",
					len(c.list), len(ns), len(cols), len(tables), storeWhat, nfiles, want.turns, want.promptChars)
				return
			}
			proof.Figure(t, "canary", route, "prompt and response canaries in user_input and assistant_text of all %d turns and no other column; 0 of the other %d canaries (%d needles) in %d columns of %d tables, %s, %d files of the config dir",
				want.turns, len(c.list)-2, len(others), len(cols), len(tables), storeWhat, nfiles)
		})
	}
}
