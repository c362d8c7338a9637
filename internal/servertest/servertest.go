// Package servertest runs the real fredtel binary for tests: a server
// process on a free loopback port, and its key commands.
package servertest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce   sync.Once
	binDir    string
	binErr    error
	fredtelBx string
)

// fredtelBin builds the fredtel binary once per test process, on first use:
// fuzz workers, which never start a server, do not pay for a build.
func fredtelBin(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "fredtel-bin")
		if binErr != nil {
			return
		}
		fredtelBx = filepath.Join(binDir, "fredtel")
		if out, err := exec.Command("go", "build", "-o", fredtelBx, filepath.Join(repoRoot(), "cmd", "fredtel")).CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building fredtel: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return fredtelBx
}

// Process is a running fredtel serve.
type Process struct {
	URL    string
	Cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
}

func (p *Process) Stderr() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

type lockedWriter struct{ p *Process }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// StartServer runs fredtel serve on a free loopback port against db (and
// migrateDB for migrations, when set) and stops it with SIGTERM at the end.
func StartServer(t testing.TB, db, migrateDB string, args ...string) *Process {
	t.Helper()
	full := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, args...)
	if migrateDB != "" {
		full = append(full, "--migrate-db", migrateDB)
	}
	p := &Process{Cmd: exec.Command(fredtelBin(t), full...)}
	p.Cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	p.Cmd.Stderr = lockedWriter{p}
	out, err := p.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	ready := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "fredtel serve: listening on "); ok {
				ready <- strings.TrimPrefix(strings.Fields(a)[0], "http://")
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			p.Cmd.Wait()
			t.Fatalf("fredtel serve exited: %s", p.Stderr())
		}
		p.URL = u
	case <-time.After(30 * time.Second):
		p.Cmd.Process.Kill()
		t.Fatalf("fredtel serve did not start: %s", p.Stderr())
	}
	t.Cleanup(func() {
		p.Cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.Cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("fredtel serve did not stop cleanly: %v\n%s", err, p.Stderr())
			}
		case <-time.After(20 * time.Second):
			p.Cmd.Process.Kill()
			t.Errorf("fredtel serve ignored SIGTERM")
		}
	})
	return p
}

// CreateKey runs fredtel keys create and returns the key.
func CreateKey(t testing.TB, db, user string) string {
	t.Helper()
	cmd := exec.Command(fredtelBin(t), "keys", "create", "--db", db, "--user", user)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// RevokeKey runs fredtel keys revoke with the key's prefix.
func RevokeKey(t testing.TB, db, key string) {
	t.Helper()
	cmd := exec.Command(fredtelBin(t), "keys", "revoke", "--db", db, key[:len("fred_live_")+8])
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("keys revoke: %v %s", err, out)
	}
}

// repoRoot is the module root, found from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Main is the TestMain of a package that starts servers: it runs the tests,
// then removes the built binary.
func Main(m *testing.M) {
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// cleanup removes the built binary.
func cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}
