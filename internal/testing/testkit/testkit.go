// Package testkit holds the small helpers several packages' tests share:
// a buffer safe for concurrent writers, a listing of a folder to tell
// whether anything was written, waiting on a condition instead of
// sleeping, loopback listeners that misbehave (a blackhole, a connection
// dropper), and the real fredtel binary: built once, a server process on a
// free loopback port, its key commands. The developer commands
// (internal/devcmd) build and start fredtel with it too. It imports only
// the standard library, so any test can use it, the bench module's too.
package testkit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer safe for concurrent writers (stderr of a
// session whose goroutine also writes).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }

func (s *Buffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Tree lists every file and folder under dir with its mode, size and
// modification time: two equal listings mean nothing was written.
func Tree(dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			fmt.Fprintf(&b, "%s %v %d %d\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		}
		return nil
	})
	return b.String()
}

// WaitFor polls cond until it holds, failing the test with what when it
// still does not after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Tail is the last n bytes of s, marked when cut.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// HeapAlloc is the live heap after two collections, in bytes.
func HeapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Listener accepts loopback connections and hands each to handle; a nil
// handle keeps them open and never answers (a blackhole). accepted tells
// when each connection came. Everything is closed when the test ends.
func Listener(tb testing.TB, handle func(net.Conn)) (url string, accepted func() []time.Time) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var times []time.Time
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			times = append(times, time.Now())
			conns = append(conns, c)
			mu.Unlock()
			if handle != nil {
				handle(c)
			}
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
	return "http://" + ln.Addr().String(), func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), times...)
	}
}

// FreePort is a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Refused is the URL of a loopback port nothing listens on: connections
// are refused at once.
func Refused(tb testing.TB) string { return fmt.Sprintf("http://127.0.0.1:%d", FreePort(tb)) }

// Blackhole is the URL of a loopback listener that accepts connections and
// never answers.
func Blackhole(tb testing.TB) string {
	tb.Helper()
	url, _ := Listener(tb, nil)
	return url
}
