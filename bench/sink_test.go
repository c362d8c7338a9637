package bench

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// sink is a loopback ingest endpoint that answers 200 to everything. It
// reads every body (inflating gzip) and counts the records in it by a marker
// that occurs once per record, with a fixed buffer, so that what it costs per
// record (it runs in the benchmark's process) stays small and the same for
// every client.
type sink struct {
	srv    *httptest.Server
	marker []byte // nil: only read and discard

	mu   sync.Mutex
	got  int64
	want int64
	done chan struct{}
	reqs int64

	gz   sync.Pool // *gzip.Reader
	bufs sync.Pool // *[]byte
}

func newSink(tb testing.TB, marker string) *sink {
	s := &sink{done: make(chan struct{})}
	if marker != "" {
		s.marker = []byte(marker)
	}
	s.bufs.New = func() any { b := make([]byte, 64<<10); return &b }
	s.srv = httptest.NewServer(s)
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *sink) URL() string { return s.srv.URL }

// expect resets the count and arms the signal for want records.
func (s *sink) expect(want int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got, s.reqs, s.want = 0, 0, want
	s.done = make(chan struct{})
	if want <= 0 {
		close(s.done)
	}
}

// counts returns the records and requests received since expect.
func (s *sink) counts() (records, requests int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got, s.reqs
}

// wait blocks until the expected records have arrived, or d has passed.
func (s *sink) wait(d time.Duration) bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, _ := s.gz.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(r.Body)
		} else {
			err = zr.Reset(r.Body)
		}
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		defer s.gz.Put(zr)
		body = zr
	}
	bp := s.bufs.Get().(*[]byte)
	n, err := countMarker(body, s.marker, *bp)
	s.bufs.Put(bp)
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.got += n
	s.reqs++
	if s.want > 0 && s.got >= s.want {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
	s.mu.Unlock()
	var ans [64]byte
	out := append(ans[:0], `{"accepted":`...)
	out = strconv.AppendInt(out, n, 10)
	out = append(out, `,"duplicates":0}`...)
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// countMarker counts the occurrences of m in r, reading through buf; a match
// across two reads is counted once (the last len(m)-1 bytes are carried over,
// which cannot hold a whole match). With no marker it only drains r.
func countMarker(r io.Reader, m, buf []byte) (int64, error) {
	var n int64
	keep := 0
	for {
		k, err := r.Read(buf[keep:])
		if len(m) > 0 && k > 0 {
			data := buf[:keep+k]
			n += int64(bytes.Count(data, m))
			keep = min(len(m)-1, len(data))
			copy(buf, data[len(data)-keep:])
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// refusedURL is the URL of a loopback port that nothing listens on: a
// listener is opened to pick a free port, then closed.
func refusedURL(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// blackholeURL is a loopback listener that accepts connections and never
// answers; the connections are closed when the test ends.
func blackholeURL(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}
