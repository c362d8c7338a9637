package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/servertest"
	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testdb"
)

func TestMain(m *testing.M) { servertest.Main(m) }

// TestFleetThroughTheRealServer: a fleet recorded through the client
// library and the real fredtel serve lands whole, per user, on both
// backends, at the server's default rate limit.
func TestFleetThroughTheRealServer(t *testing.T) {
	for _, b := range testdb.Backends {
		t.Run(b.Name, func(t *testing.T) {
			db := b.URL(t)
			proc := servertest.StartServer(t, db, "")
			ctx := context.Background()
			keys, err := sim.CreateKeys(ctx, db, 6)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			tr, err := sim.Run(ctx, sim.Config{Sessions: 150, Seed: 42, TempDir: t.TempDir()}, sim.Target{APIURL: "http://" + proc.URL, Keys: keys})
			if err != nil {
				t.Fatalf("%v\nserver: %s", err, proc.Stderr())
			}
			t.Logf("150 sessions in %v: %+v", time.Since(start), tr.Totals)
			for table, want := range map[string]int{"telemetry_sessions": tr.Totals.Sessions, "telemetry_turns": tr.Totals.Turns,
				"telemetry_tool_calls": tr.Totals.ToolCalls, "telemetry_events": tr.Totals.Events} {
				if got := testdb.QueryInt(t, db, "SELECT count(*) FROM "+table); got != want {
					t.Errorf("%s: %d rows, truth says %d", table, got, want)
				}
			}
			perUser := map[string]int{}
			for _, s := range tr.SessionsList {
				perUser[s.User]++
			}
			for u, n := range perUser {
				if got := testdb.QueryInt(t, db, fmt.Sprintf("SELECT count(*) FROM telemetry_sessions WHERE user_id = '%s'", u)); got != n {
					t.Errorf("%s: %d sessions stored, truth says %d", u, got, n)
				}
			}
			if len(perUser) < 3 {
				t.Errorf("sessions of %d users, want several", len(perUser))
			}
			if got := testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_sessions WHERE ended_at IS NULL"); got != 0 {
				t.Errorf("%d sessions without ended_at", got)
			}
		})
	}
}
