package faults_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/proof"
)

// TestLoad: 200 concurrent clients, each a user with a key of its own
// running sessions back to back through the real library, against one
// server process, for 60 s (a few seconds in CI). Nothing may be lost or
// doubled, no session may drop a record, and the server may answer only
// 200: every client stays far below its own key's rate limit, so a 429 is
// one user throttled by the others. It measures the records/s stored, the
// request latency at the proxy, and the server's peak RSS.
func TestLoad(t *testing.T) {
	const clients = 200
	// An agent's turn every 20–100 ms is far busier than a person typing:
	// the fleet at its worst moment, not its average. Under the race
	// detector the clients cost several times more CPU, so CI paces them
	// slower to leave the server its share of the 2 cores.
	run, think := 5*time.Second, [2]time.Duration{100 * time.Millisecond, 300 * time.Millisecond}
	if proof.Full() {
		run, think = 60*time.Second, [2]time.Duration{20 * time.Millisecond, 100 * time.Millisecond}
	}
	note := newNotes(t)
	// A private cluster: the shared server at DATABASE_URL carries the
	// other packages' tests (and their fsyncs) in parallel, which this
	// check would measure too.
	db := testdb.StartCluster(quietTB{t, note}).URL()
	px := startProxy(t)
	srv := startServer(t, db, px, "--log-format", "text")
	led := newLedger()
	f := newFleet(t, newClients(t, db, clients), led)
	defer f.Stop() // also when a t.Fatal below ends the test early

	t0 := time.Now()
	f.run(px.URL, sessionCfg{turns: [2]int{5, 40}, think: think,
		flush: 500 * time.Millisecond, closeBudget: closeBudget})
	time.Sleep(run) // the load runs for its set time
	f.Stop()
	stopped := time.Now()
	elapsed := stopped.Sub(t0)
	rss, cpu, meanReq, meanDB := srv.peakRSS(), srv.cpu(), srv.mean("fredtel_http_request_duration_seconds"), srv.mean("fredtel_db_write_duration_seconds")
	// Each client sends a batch per flush interval and one at Close, far
	// below its key's 20 requests/s: a 429 here is one user throttled by
	// the others' traffic. (The drain may send a backlog faster.)
	throttled := 0
	for _, a := range px.Answers() {
		if a.status == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled > 0 {
		t.Errorf("%d answers 429 while every client sent far below its own key's rate limit", throttled)
	}

	f.mu.Lock()
	spooled := f.spooled
	f.mu.Unlock()
	drains := f.drain(px.URL, 30*time.Second)
	f.report()

	v := led.check(t, db)
	v.mustMatch(t, 0)
	as := px.Answers()
	checkStatuses(t, as, nil)
	p50, p99, top := latencies(as)
	stored := v.stored.total()
	note.Logf("%d clients for %v (%v with their last sessions' ends): %d sessions, %s records recorded, %s spooled (%d drain sessions)",
		clients, run, elapsed.Round(time.Millisecond), f.sessions, thousands(f.recorded), thousands(spooled), drains)
	note.Logf("ledger %v; rows %v", v.want, v.stored)
	note.Logf("answers: %s; %d connections dropped, %d given up by the client; request latency p50 %s, p99 %s, max %s (the server's own mean %s, of which the database commit %s); server peak RSS %d MiB, CPU %.2f cores",
		statusCounts(as), px.connErrs.Load(), px.canceled.Load(), ms(p50), ms(p99), ms(top), ms(meanReq), ms(meanDB), rss>>20, cpu.Seconds()/elapsed.Seconds())
	if px.connErrs.Load() != 0 {
		t.Errorf("%d requests could not reach a server that was never stopped", px.connErrs.Load())
	}
	if t.Failed() {
		note.Logf("the server's log:\n%s", tail(srv.stderr(), 4000))
		return
	}
	mode := "CI size"
	if proof.Full() {
		mode = "full size"
	}
	if raceEnabled {
		mode += ", clients under the race detector"
	}
	proof.Figure(t, "load", "200 concurrent clients: exactly once, latency, memory",
		"%d clients × %v (%s): %d sessions, %s records recorded (%s ids), %s stored, %d lost, %d duplicated; %.0f records/s; statuses %s; request p50 %s, p99 %s (the server's mean %s, the database commit's %s); server peak RSS %d MiB, CPU %.2f cores",
		clients, run, mode, f.sessions, thousands(f.recorded), thousands(v.want.total()), thousands(stored), v.lost, v.duplicated+v.unknown,
		float64(stored)/elapsed.Seconds(), statusCounts(as), ms(p50), ms(p99), ms(meanReq), ms(meanDB), rss>>20, cpu.Seconds()/elapsed.Seconds())
}
