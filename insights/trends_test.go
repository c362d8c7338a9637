package insights

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

func trSum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// trPct is percentile_cont in Go, for the expectations.
func trPct(v []float64, p float64) float64 {
	sort.Float64s(v)
	h := p * float64(len(v)-1)
	lo := math.Floor(h)
	if int(lo)+1 >= len(v) {
		return v[int(lo)]
	}
	return v[int(lo)] + (h-lo)*(v[int(lo)+1]-v[int(lo)])
}

// TestTrends: the buckets sum to the report's totals, on both backends and
// table sets, to the byte alike; the bucket of each record is its
// session's; percentiles are percentile_cont of the bucket's turns.
func TestTrends(t *testing.T) {
	for _, set := range schema.Sets() {
		t.Run(set.String(), func(t *testing.T) {
			t.Parallel()
			var got [2][]byte
			for bi, be := range testdb.Backends {
				f := newFx(t)
				mixedFleet(f, 40) // sessions every 10 minutes from the base, 390 minutes
				url := be.URL(t)
				f.write(url, set)
				ctx := context.Background()
				tr, err := ComputeTrends(ctx, url, Options{Tables: set.String()}, 60)
				if err != nil {
					t.Fatalf("%s: %v", be.Name, err)
				}
				r, err := Compute(ctx, url, Options{Tables: set.String()})
				if err != nil {
					t.Fatal(err)
				}
				if tr.StepMs != (15*time.Minute).Milliseconds() || len(tr.T) != 27 || tr.T[0] != f.base.Unix() {
					t.Fatalf("%s: step %d ms, %d buckets from %d; want 15 min, 27, %d", be.Name, tr.StepMs, len(tr.T), tr.T[0], f.base.Unix())
				}
				for name, c := range map[string][2]int64{
					"sessions":   {trSum(tr.Sessions), r.Totals.Sessions},
					"turns":      {trSum(tr.Turns), r.Totals.Turns},
					"tool_calls": {trSum(tr.ToolCalls), r.Totals.ToolCalls},
					"retries":    {trSum(tr.Retries), r.RetryStorms.Retries},
				} {
					if c[0] != c[1] || c[0] == 0 {
						t.Errorf("%s: %s: buckets sum to %d, report says %d", be.Name, name, c[0], c[1])
					}
				}
				var denied, turnErrs int64
				for _, p := range r.Permissions.Tools {
					denied += p.Denied
				}
				for _, e := range r.RetryStorms.TurnErrors {
					turnErrs += e.Turns
				}
				if trSum(tr.Denied) != denied || trSum(tr.TurnErrors) != turnErrs {
					t.Errorf("%s: denied %d (report %d), turn errors %d (report %d)", be.Name, trSum(tr.Denied), denied, trSum(tr.TurnErrors), turnErrs)
				}
				// Sessions at 0, 10 | 20 | 30, 40 | 50 | … minutes.
				if tr.Sessions[0] != 2 || tr.Sessions[1] != 1 || tr.Sessions[2] != 2 || tr.Users[0] != 2 {
					t.Errorf("%s: sessions %v users %v", be.Name, tr.Sessions[:4], tr.Users[:4])
				}
				// Expected per-bucket percentiles and histograms from the records.
				step := 15 * time.Minute
				start := map[uuid.UUID]time.Time{}
				durs := map[int][]float64{}
				hist := map[string][]int64{}
				for _, b := range f.batches {
					for _, s := range b.Sessions {
						start[s.SessionID] = s.StartedAt.Time
					}
				}
				for _, b := range f.batches {
					for _, tu := range b.Turns {
						i := int(start[tu.SessionID].Sub(f.base) / step)
						durs[i] = append(durs[i], float64(tu.DurationMs))
						if hist[tu.Model] == nil {
							hist[tu.Model] = make([]int64, len(DurationEdges))
						}
						bin := 0
						for k, e := range DurationEdges {
							if tu.DurationMs >= e {
								bin = k
							}
						}
						hist[tu.Model][bin]++
					}
				}
				for i := range tr.T {
					v := durs[i]
					p := tr.DurationP95[i]
					if len(v) == 0 {
						if p != nil {
							t.Errorf("%s: bucket %d has no turn but p95 %v", be.Name, i, *p)
						}
						continue
					}
					want := trPct(append([]float64(nil), v...), 0.95)
					if p == nil || math.Abs(*p-want) > 1e-9 {
						t.Errorf("%s: bucket %d p95 = %v, want %v", be.Name, i, p, want)
					}
				}
				if len(tr.ModelHistogram) != len(hist) {
					t.Errorf("%s: histograms of %d models, want %d", be.Name, len(tr.ModelHistogram), len(hist))
				}
				for _, m := range tr.ModelHistogram {
					if g, w := m.Duration, hist[m.Model]; len(g) != len(w) || func() bool {
						for k := range g {
							if g[k] != w[k] {
								return true
							}
						}
						return false
					}() {
						t.Errorf("%s: %s duration histogram %v, want %v", be.Name, m.Model, g, w)
					}
				}
				if got[bi], err = json.Marshal(tr); err != nil {
					t.Fatal(err)
				}

				// A window narrower than the data: its first session (at 100
				// min) opens the first bucket, of 5 minutes for 91 minutes of data.
				from := f.base.Add(95 * time.Minute)
				tw, err := ComputeTrends(ctx, url, Options{Tables: set.String(), From: from, To: f.base.Add(200 * time.Minute)}, 60)
				if err != nil {
					t.Fatal(err)
				}
				if tw.T[0] != f.base.Add(100*time.Minute).Unix() || tw.StepMs != 300_000 || trSum(tw.Sessions) != 10 { // sessions at 100 … 190
					t.Errorf("%s: narrow window from %d with %d sessions", be.Name, tw.T[0], trSum(tw.Sessions))
				}
				_, err = ComputeTrends(ctx, url, Options{Tables: set.String(), From: f.base.Add(-time.Hour), To: f.base}, 60)
				if !errors.Is(err, ErrNoData) {
					t.Errorf("%s: empty window: %v", be.Name, err)
				}
			}
			if string(got[0]) != string(got[1]) {
				t.Errorf("postgres and sqlite differ:\npostgres %s\nsqlite   %s", got[0], got[1])
			}
		})
	}
}
