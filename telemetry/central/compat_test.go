package central_test

import (
	"context"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/telemetry/central"
)

// TestNewerClientKeepsItsRecords: this client speaks the newest schema
// version; a server deployed behind it, which accepts only version 1 (the
// real binary with --schema-versions 1), answers 422. The client keeps
// every record in its spool and sends nothing more that session; once the
// server knows the version, the next session delivers them, each once.
func TestNewerClientKeepsItsRecords(t *testing.T) {
	if schema.WireVersion < 2 {
		t.Fatal("this test needs a client newer than version 1")
	}
	db := testdb.Postgres(t)
	old := testkit.StartServer(t, db, "", "--schema-versions", "1")
	k := testkit.CreateKey(t, db, "alice")
	dir := fixture.LoggedIn(t, k)
	var stderr testkit.Buffer
	s := start(dir, "http://"+old.URL, &stderr, time.Second)
	n := record(s, 3)
	s.Close(context.Background())
	st := s.Stats()
	spooled, _ := central.SpoolSize(dir)
	if st.Dropped != 0 || st.Spooled == 0 || spooled == 0 {
		t.Fatalf("against a v1-only server: stats %+v, %d bytes spooled; want every record kept", st, spooled)
	}
	if got := testdb.Rows(t, db); got != 0 {
		t.Fatalf("the v1-only server stored %d rows of a v2 batch", got)
	}

	upgraded := testkit.StartServer(t, db, "")
	s = start(dir, "http://"+upgraded.URL, &stderr, time.Second)
	m := record(s, 1)
	want := n + 1 + m + 1 // each session's start and end are one row
	testkit.WaitFor(t, 10*time.Second, "the spooled records", func() bool { return testdb.Rows(t, db) >= want-1 })
	s.Close(context.Background())
	if got := testdb.Rows(t, db); got != want {
		t.Fatalf("%d rows after the upgrade, want %d (every spooled record once, and the new session)", got, want)
	}
	if left, _ := central.SpoolSize(dir); left != 0 {
		t.Fatalf("%d bytes left in the spool", left)
	}
	if n := testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_sessions WHERE ended_at IS NOT NULL"); n != 2 {
		t.Fatalf("%d sessions ended, want 2", n)
	}
}
