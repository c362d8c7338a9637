// Package testkit holds the small helpers several packages' tests share:
// a buffer safe for concurrent writers, a listing of a folder to tell
// whether anything was written, and waiting on a condition instead of
// sleeping. It imports only the standard library, so any test can use it.
package testkit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
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
