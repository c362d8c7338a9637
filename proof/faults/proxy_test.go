package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fredcode/fredtel/insights"
)

// answer is one answer of the server, as the proxy saw it come back.
type answer struct {
	at     time.Time
	status int
	took   time.Duration // from the request reaching the proxy to the server's answer
}

// proxy is a loopback reverse proxy between the clients and the server: it
// tallies what the server answered and when, stays at one address while
// the server behind it is killed and restarted on new ports, and can lose
// answers on the way back (the server committed, the client never hears).
//
// A server that cannot be reached is not turned into a status: the proxy
// drops the client's connection, which is what a client of a dead server
// sees, and counts it apart.
type proxy struct {
	URL string

	target atomic.Pointer[url.URL]
	srv    *http.Server
	tr     *http.Transport

	mu      sync.Mutex
	answers []answer

	connErrs   atomic.Int64 // the server could not be reached, or died mid-request
	canceled   atomic.Int64 // the client gave up first (Close's budget)
	cut        atomic.Int64 // answers lost on purpose
	cutEvery   atomic.Int64 // lose every n-th 200 answer (0: none)
	oks        atomic.Int64 // 200 answers while cutting
	accepted   atomic.Int64 // records the 200 answers said were new
	duplicates atomic.Int64 // and already stored
}

var errCut = errors.New("answer lost on the way back (injected)")

type startKey struct{}

func startProxy(t testing.TB) *proxy {
	t.Helper()
	p := &proxy{}
	// As many idle connections as there are clients: the proxy must not
	// add connection churn of its own to the latency it measures.
	p.tr = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(p.target.Load())
			r.Out.Host = r.In.Host
		},
		Transport:      p.tr,
		ErrorLog:       log.New(io.Discard, "", 0),
		ModifyResponse: p.modify,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			switch {
			case errors.Is(err, errCut):
				p.cut.Add(1)
			case r.Context().Err() != nil:
				p.canceled.Add(1)
			default:
				p.connErrs.Add(1)
			}
			// Close the client's connection without an answer.
			panic(http.ErrAbortHandler)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.URL = "http://" + ln.Addr().String()
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), startKey{}, time.Now())))
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		// The clients are stopped by now: Shutdown waits for any answer
		// still on its way, Close ends what remains.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if p.srv.Shutdown(ctx) != nil {
			p.srv.Close()
		}
		<-done
		p.tr.CloseIdleConnections()
	})
	return p
}

// setTarget points the proxy at a server ("http://127.0.0.1:PORT").
func (p *proxy) setTarget(t testing.TB, base string) {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	p.target.Store(u)
	// Connections to a killed server are dead: never hand one to the next.
	p.tr.CloseIdleConnections()
}

func (p *proxy) modify(resp *http.Response) error {
	now := time.Now()
	var took time.Duration
	if t0, ok := resp.Request.Context().Value(startKey{}).(time.Time); ok {
		took = now.Sub(t0)
	}
	p.mu.Lock()
	p.answers = append(p.answers, answer{at: now, status: resp.StatusCode, took: took})
	p.mu.Unlock()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/v1/batch" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var a struct{ Accepted, Duplicates int64 }
	if json.Unmarshal(body, &a) == nil {
		p.accepted.Add(a.Accepted)
		p.duplicates.Add(a.Duplicates)
	}
	if n := p.cutEvery.Load(); n > 0 && p.oks.Add(1)%n == 0 {
		return errCut
	}
	return nil
}

// Answers returns what the server answered so far.
func (p *proxy) Answers() []answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.answers)
}

// statusCounts is "200: 12,345, 503: 17".
func statusCounts(as []answer) string {
	n := map[int]int{}
	for _, a := range as {
		n[a.status]++
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%d: %s", c, thousands(n[c])))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// latencies returns the p50, p99 and max time to answer.
func latencies(as []answer) (p50, p99, top time.Duration) {
	if len(as) == 0 {
		return 0, 0, 0
	}
	d := make([]time.Duration, len(as))
	for i, a := range as {
		d[i] = a.took
	}
	slices.Sort(d)
	q := func(f float64) time.Duration { return d[min(len(d)-1, int(f*float64(len(d))))] }
	return q(0.50), q(0.99), d[len(d)-1]
}

// window is a time the database was down, widened by the grace it takes
// the server's pool to replace the connections the restart broke.
type window struct{ from, to time.Time }

// checkStatuses fails t for every answer a healthy server must not give:
// a 5xx other than 503, a 503 outside the windows, and any 4xx but 429
// (the clients here send valid batches with valid keys; a 400 is data
// refused, that is data lost). It returns the 503s inside the windows.
func checkStatuses(t testing.TB, as []answer, outages []window) int {
	t.Helper()
	var bad []string
	in503 := 0
	for _, a := range as {
		switch {
		case a.status == http.StatusServiceUnavailable:
			if slices.ContainsFunc(outages, func(w window) bool { return !a.at.Before(w.from) && !a.at.After(w.to) }) {
				in503++
				continue
			}
			bad = append(bad, fmt.Sprintf("503 at %s, outside the database's outages %v", a.at.Format("15:04:05.000"), fmtWindows(outages)))
		case a.status >= 500:
			bad = append(bad, fmt.Sprintf("%d at %s: a 5xx other than 503", a.status, a.at.Format("15:04:05.000")))
		case a.status >= 400 && a.status != http.StatusTooManyRequests:
			bad = append(bad, fmt.Sprintf("%d at %s: valid batches refused", a.status, a.at.Format("15:04:05.000")))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d answers a healthy server must not give (statuses %s); the first: %s", len(bad), statusCounts(as), strings.Join(bad[:min(5, len(bad))], "; "))
	}
	return in503
}

func fmtWindows(ws []window) string {
	var parts []string
	for _, w := range ws {
		parts = append(parts, w.from.Format("15:04:05.000")+"–"+w.to.Format("15:04:05.000"))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// thousands formats n as 1,234,567.
func thousands[T ~int | ~int64](n T) string { return insights.Thousands(int64(n)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
