package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// answer is what one POST /v1/batch got.
type answer struct {
	batch      int
	start, end time.Time
	status     int // 0: no HTTP answer (transport error)
	accepted   int
	duplicates int
}

// poster sends pre-built batches over one keep-alive connection.
type poster struct {
	url, key string
	client   *http.Client
}

func newPoster(addr, key string) *poster {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
	}
	return &poster{url: "http://" + addr + "/v1/batch", key: key, client: &http.Client{Transport: tr, Timeout: time.Minute}}
}

// post sends one gzip body and returns the answer and, when it is not a
// 200, the answer's body (or the transport error).
func (p *poster) post(ctx context.Context, i int, body []byte) (answer, string) {
	a := answer{batch: i, start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		a.end = time.Now()
		return a, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+p.key)
	resp, err := p.client.Do(req)
	if err != nil {
		a.end = time.Now()
		return a, err.Error()
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	a.end = time.Now()
	a.status = resp.StatusCode
	if err != nil {
		a.status = 0
		return a, err.Error()
	}
	if a.status != http.StatusOK {
		return a, string(bytes.TrimSpace(raw))
	}
	var r struct {
		Accepted   *int `json:"accepted"`
		Duplicates int  `json:"duplicates"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.Accepted == nil {
		a.status = -1
		return a, "200 without a count: " + string(raw)
	}
	a.accepted, a.duplicates = *r.Accepted, r.Duplicates
	return a, ""
}

func (p *poster) close() { p.client.CloseIdleConnections() }

// loadRun is what the load phase saw.
type loadRun struct {
	answers     []answer
	firstError  map[int]string // status → the first body or error seen
	start       time.Time
	warmEnd     time.Time
	windowEnd   time.Time // the end of the measured window
	ranOut      bool      // the pre-built batches ran out before the end
	peakRSSKiB  int64
	rssSamples  int
	cpu         *cpuUse
	metricsFrom map[string]float64
	metricsTo   map[string]float64
}

// runLoad sends batches bs[from:] from clients goroutines until warmup +
// duration have passed, sampling the server's RSS every 100 ms.
// runLoad sends batches; with rate > 0 (records/s offered in all) each
// client paces its requests instead of sending the next as soon as the last
// is answered, to measure latency below saturation.
func runLoad(ctx context.Context, srv *serverProc, key string, bs []*batch, from, clients int, warmup, duration time.Duration, prof *profiler, rate int) (*loadRun, error) {
	lr := &loadRun{firstError: map[int]string{}}
	var (
		next   atomic.Int64
		ranOut atomic.Bool
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	next.Store(int64(from))
	lr.start = time.Now()
	lr.warmEnd = lr.start.Add(warmup)
	end := lr.warmEnd.Add(duration)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	perClient := make([][]answer, clients)
	for c := range clients {
		wg.Go(func() {
			p := newPoster(srv.addr, key)
			defer p.close()
			var interval time.Duration
			due := lr.start
			if rate > 0 && len(bs) > 0 {
				interval = time.Duration(float64(clients*bs[0].records) / float64(rate) * float64(time.Second))
				due = lr.start.Add(interval * time.Duration(c) / time.Duration(clients))
			}
			for cctx.Err() == nil && time.Now().Before(end) {
				if interval > 0 {
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-cctx.Done():
							return
						}
					}
					due = due.Add(interval)
				}
				i := int(next.Add(1) - 1)
				if i >= len(bs) {
					ranOut.Store(true)
					return
				}
				a, msg := p.post(cctx, i, bs[i].body)
				if cctx.Err() != nil {
					return
				}
				perClient[c] = append(perClient[c], a)
				if a.status != http.StatusOK {
					mu.Lock()
					if _, ok := lr.firstError[a.status]; !ok {
						lr.firstError[a.status] = msg
					}
					mu.Unlock()
					time.Sleep(20 * time.Millisecond) // no hot loop against a failing server
				}
			}
		})
	}
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()

	// The RSS sampler runs from the first request to the last answer.
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kib, err := testkit.ProcStatusKiB(srv.pid, "VmRSS"); err == nil {
				lr.peakRSSKiB = max(lr.peakRSSKiB, kib)
				lr.rssSamples++
			}
			select {
			case <-stopRSS:
				return
			case <-t.C:
			}
		}
	}()

	// wait returns false when the run cannot go on.
	var failure error
	wait := func(until time.Time) bool {
		select {
		case <-time.After(time.Until(until)):
			return true
		case <-clientsDone:
			return false
		case <-srv.done:
			failure = fmt.Errorf("fredtel serve exited during the load (%v):\n%s", srv.err, srv.log)
			return false
		case <-ctx.Done():
			failure = ctx.Err()
			return false
		}
	}
	pid := srv.pid
	if !wait(lr.warmEnd) {
		cancel()
		wg.Wait()
		close(stopRSS)
		<-rssDone
		if failure != nil {
			return nil, failure
		}
		return nil, fmt.Errorf("the %d pre-built batches ran out during the warm-up: raise --gen-rate", len(bs)-from)
	}
	cpu0 := takeCPU(pid)
	lr.metricsFrom, _ = testkit.Metrics(ctx, "http://"+srv.addr)
	prof.start()
	if wait(end) {
		lr.windowEnd = end
	} else {
		lr.windowEnd = time.Now()
	}
	prof.stop()
	cpu1 := takeCPU(pid)
	lr.metricsTo, _ = testkit.Metrics(ctx, "http://"+srv.addr)
	if failure != nil {
		cancel()
	}
	<-clientsDone
	close(stopRSS)
	<-rssDone
	if failure != nil {
		return nil, failure
	}
	u := cpuBetween(cpu0, cpu1, numCPU(), srv.inProc)
	lr.cpu = &u
	lr.ranOut = ranOut.Load()
	for _, as := range perClient {
		lr.answers = append(lr.answers, as...)
	}
	return lr, nil
}
