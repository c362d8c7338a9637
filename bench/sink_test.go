package bench

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// sink is a loopback ingest endpoint that answers 200 to everything. While
// the clock runs it only reads each body and keeps it, as sent: it stands
// for a server on another machine, so what it costs must not be charged to
// the client on the benchmark's two cores. Afterwards, count inflates the
// bodies and counts the records by a marker that occurs once per record,
// which proves every record arrived.
type sink struct {
	srv    *httptest.Server
	marker []byte // nil: only read and discard

	mu     sync.Mutex
	bodies []body
}

type body struct {
	data    []byte
	gzipped bool
}

func newSink(tb testing.TB, marker string) *sink {
	s := &sink{}
	if marker != "" {
		s.marker = []byte(marker)
	}
	s.srv = httptest.NewServer(s)
	tb.Cleanup(s.srv.Close)
	return s
}

func (s *sink) URL() string { return s.srv.URL }

// reset forgets the bodies received so far.
func (s *sink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies = nil
}

// count inflates the bodies received since reset and counts their records.
func (s *sink) count() (records, requests int64, err error) {
	s.mu.Lock()
	bodies := s.bodies
	s.mu.Unlock()
	buf := make([]byte, 64<<10)
	var zr *gzip.Reader
	for _, b := range bodies {
		var r io.Reader = bytes.NewReader(b.data)
		if b.gzipped {
			if zr == nil {
				zr, err = gzip.NewReader(r)
			} else {
				err = zr.Reset(r)
			}
			if err != nil {
				return records, requests, fmt.Errorf("request %d: %w", requests, err)
			}
			r = zr
		}
		n, err := countMarker(r, s.marker, buf)
		if err != nil {
			return records, requests, fmt.Errorf("request %d: %w", requests, err)
		}
		records += n
		requests++
	}
	return records, requests, nil
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var data []byte
	var err error
	if s.marker == nil {
		_, err = io.Copy(io.Discard, r.Body)
	} else if r.ContentLength >= 0 {
		data = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, data)
	} else {
		data, err = io.ReadAll(r.Body)
	}
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if s.marker != nil {
		s.mu.Lock()
		s.bodies = append(s.bodies, body{data, r.Header.Get("Content-Encoding") == "gzip"})
		s.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"accepted":0,"duplicates":0}`)
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

// check fails b unless the sink received exactly b.N records since reset,
// and adds the request count to the note of client key's last figure.
func (s *sink) check(b *testing.B, key, what string) {
	b.Helper()
	got, reqs, err := s.count()
	if err != nil || got != int64(b.N) {
		b.Fatalf("the sink got %d of %d %s in %d requests (%v)", got, b.N, what, reqs, err)
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if rs := results[key]; len(rs) > 0 {
		r := &rs[len(rs)-1]
		r.note = strings.TrimPrefix(r.note+fmt.Sprintf("; %d requests", reqs), "; ")
	}
}
