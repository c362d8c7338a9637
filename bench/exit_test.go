package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry/central"
)

const (
	exitRecords = 20                     // records of one short CLI session
	exitRuns    = 200                    // runs per client and endpoint
	sdkSlowRuns = 3                      // posthog/segment runs against a blackhole (each Close waits out a 10 s HTTP timeout)
	sdkCellCap  = 20 * time.Second       // posthog/segment: stop a cell's runs after this long (at least sdkSlowRuns)
	fredTarget  = 100 * time.Millisecond // fred's p99 target on every endpoint
)

// TestExitCost is the wall time a short CLI session spends in Close, against
// a healthy sink, a refused port and a blackhole. It takes minutes, so it
// runs only with BENCH_EXIT=1 (scripts/bench-clients sets it).
func TestExitCost(t *testing.T) {
	if os.Getenv("BENCH_EXIT") == "" {
		t.Skip("takes minutes: set BENCH_EXIT=1 (scripts/bench-clients does)")
	}
	endpoints := []struct{ name, url string }{
		{"healthy", newSink(t, "").URL()},
		{"refused", refusedURL(t)},
		{"blackhole", testkit.Blackhole(t)},
	}
	dir := fredDir(t)
	type row struct {
		client, endpoint string
		d                []time.Duration
		note             string
	}
	var rows []row
	for _, ep := range endpoints {
		// fred: a session of 20 records (the session's start, a turn of
		// 18 tool calls and its end), then Close alone is timed. One
		// config dir, its spool purged between runs, outside the timing.
		var d []time.Duration
		var spooled, lost int64
		for range exitRuns {
			if err := central.PurgeSpool(dir); err != nil {
				t.Fatal(err)
			}
			s := startFred(t, fredOptions(dir, ep.url))
			turn := s.BeginTurn("act", "fred-flash-2")
			for range exitRecords - 2 {
				turn.ToolCall(toolCall)
			}
			turn.End(telemetryTurnResult)
			t0 := time.Now()
			s.Close(context.Background())
			d = append(d, time.Since(t0))
			st := s.Stats()
			spooled += st.Spooled
			lost += st.Dropped
		}
		central.PurgeSpool(dir)
		rows = append(rows, row{"fred", ep.name, d, fmt.Sprintf("records spooled %d, dropped %d", spooled, lost)})

		// posthog-go and analytics-go: enqueue 20 events, time Close. A
		// fresh transport per run, as a new process has.
		runs := exitRuns
		if ep.name == "blackhole" {
			runs = sdkSlowRuns
		}
		for _, sdk := range sdks {
			run := func(url string) time.Duration {
				tr := freshTransport()
				defer tr.CloseIdleConnections()
				c, enqueue := sdk.open(t, url, tr)
				for range exitRecords {
					enqueue()
				}
				t0 := time.Now()
				c.Close()
				return time.Since(t0)
			}
			var d []time.Duration
			cell := time.Now()
			for i := 0; i < runs && (i < sdkSlowRuns || time.Since(cell) < sdkCellCap); i++ {
				d = append(d, run(ep.url))
			}
			note := ""
			if len(d) < exitRuns {
				note = fmt.Sprintf("fewer runs: each Close is slow here (cap %d runs or %v)", runs, sdkCellCap)
			}
			rows = append(rows, row{sdk.name, ep.name, d, note})
		}
	}
	fmt.Printf("\nexit cost: wall time of Close after a %d-record session\n", exitRecords)
	fmt.Printf("%-8s %-10s %12s %12s %12s %5s  %s\n", "client", "endpoint", "p50", "p99", "max", "runs", "note")
	met := true
	for _, r := range rows {
		p50, p99, mx := pct(r.d, 50), pct(r.d, 99), slices.Max(r.d)
		fmt.Printf("%-8s %-10s %12s %12s %12s %5d  %s\n", r.client, r.endpoint, ms(p50), ms(p99), ms(mx), len(r.d), r.note)
		if r.client == "fred" && p99 > fredTarget {
			met = false
		}
	}
	verdict := "met"
	if !met {
		verdict = "NOT met"
	}
	fmt.Printf("summary: exit fred p99 <= %v on every endpoint: %s\n", fredTarget, verdict)
}

// pct is the p-th percentile of d by nearest rank.
func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
