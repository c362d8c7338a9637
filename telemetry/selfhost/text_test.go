package selfhost_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/selfhost"
	"github.com/google/uuid"
)

// TestNULInTextIsStoredNotRetriedForever: a NUL (or invalid UTF-8) in
// user_input or assistant_text made PostgreSQL refuse the whole batch, which
// the client retried until its queue was full, losing the session's other
// records (issue 12 §6). Now the value is stored with U+FFFD in the NUL's
// place, counted as replaced, and every other record is stored.
func TestNULInTextIsStoredNotRetriedForever(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		url := be.URL(t)
		var stderr testkit.Buffer
		s := session(t, url, false, &stderr)
		record(s) // 2 turns, 4 tool calls, 1 event
		tr := s.BeginTurn("act", "fred-flash-2")
		tr.End(telemetry.TurnResult{FinishReason: "stop", UserInput: "before\x00after", AssistantText: "bad \xff utf-8 and \x00"})
		record(s)
		s.Close(context.Background())
		st := s.Stats()
		if st.Written != st.Recorded || st.Dropped != 0 || st.Replaced != 2 {
			t.Fatalf("stats %+v, want every record written and 2 values replaced; stderr %q", st, stderr.String())
		}
		testdb.Counts(t, url, map[string]int{
			"SELECT count(*) FROM dsc_turns":      5,
			"SELECT count(*) FROM dsc_tool_calls": 8,
			"SELECT count(*) FROM dsc_events":     2,
			"SELECT count(*) FROM dsc_turns WHERE user_input = 'before\uFFFDafter' AND assistant_text = 'bad \uFFFD utf-8 and \uFFFD'": 1,
		})
		if stderr.String() != "" {
			t.Errorf("stderr: %q", stderr.String())
		}
	})
}

// TestRefusedBatchIsDroppedNotRetried: a batch the database refuses (a
// value outside a CHECK constraint, which the session never produces but a
// batch built elsewhere can hold) is a SendError with Drop, so the session
// drops it once instead of retrying it forever; text with a NUL in a batch
// built elsewhere is made storable by the sink itself.
func TestRefusedBatchIsDroppedNotRetried(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		url := be.URL(t)
		k, err := selfhost.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer k.Close()
		sess := schema.Session{SessionID: uuid.Must(uuid.NewV7()), StartedAt: schema.TimeOf(time.Now()), Model: "m", FredVersion: "1.0.0",
			RuntimeVersion: "go1.26", OS: "linux", Shell: "bash"}
		turn := schema.Turn{TurnID: uuid.Must(uuid.NewV7()), SessionID: sess.SessionID, Seq: 1, StartedAt: sess.StartedAt, Model: "m",
			Mode: "act", FinishReason: "stop", UserInput: "a\x00b"}
		if err := k.Write(context.Background(), &telemetry.LocalBatch{Sessions: []schema.Session{sess}, Turns: []schema.Turn{turn}}); err != nil {
			t.Fatalf("a NUL in a batch built outside a session: %v", err)
		}
		bad := turn
		bad.TurnID, bad.PromptTokens = uuid.Must(uuid.NewV7()), -1
		err = k.Write(context.Background(), &telemetry.LocalBatch{Turns: []schema.Turn{bad}})
		var se *telemetry.SendError
		if !errors.As(err, &se) || !se.Drop {
			t.Fatalf("refused batch: %v, want a SendError with Drop", err)
		}
		if n := testdb.QueryInt(t, url, "SELECT count(*) FROM dsc_turns WHERE user_input = 'a\uFFFDb'"); n != 1 {
			t.Errorf("%d turns with the NUL replaced, want 1", n)
		}
	})
}

// TestSQLiteFileIsTheOwners: a new self-hosted SQLite file, which holds
// prompt text, is created 0600, its WAL too (issue 12 §6: main made it
// world-readable).
func TestSQLiteFileIsTheOwners(t *testing.T) {
	url := testdb.SQLite(t)
	path := strings.TrimPrefix(url, "sqlite:")
	var stderr testkit.Buffer
	s := session(t, url, false, &stderr)
	record(s)
	s.Close(context.Background())
	if s.Stats().Written == 0 {
		t.Fatalf("nothing written: %q", stderr.String())
	}
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			if p != path && errors.Is(err, os.ErrNotExist) {
				continue // checkpointed away at close
			}
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", p, m)
		}
	}
}
