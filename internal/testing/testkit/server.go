package testkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RepoRoot is the module's root folder, found from this file's path.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Build builds the command in the module folder pkg (e.g. "cmd/fredtel")
// into dir and returns the binary's path. A -overlay in GOFLAGS (the proof
// suite's mutants) reaches it.
func Build(ctx context.Context, dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./"+pkg)
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./%s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Serve starts cmd, a `fredtel serve`, and returns the HOST:PORT of its
// "listening on" line. A process that exits first, or does not listen
// within timeout, is reaped (killed first) and Serve returns an error.
func Serve(cmd *exec.Cmd, timeout time.Duration) (string, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	ready := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(out)
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "fredtel serve: listening on "); ok {
				ready <- strings.TrimPrefix(strings.Fields(a)[0], "http://")
			}
		}
		io.Copy(io.Discard, out) // a line too long for the scanner must not block the server
		close(ready)
	}()
	select {
	case addr, ok := <-ready:
		if ok {
			return addr, nil
		}
		return "", fmt.Errorf("fredtel serve exited (%v) before listening", cmd.Wait())
	case <-time.After(timeout):
		cmd.Process.Kill()
		cmd.Wait()
		return "", fmt.Errorf("fredtel serve did not listen within %v", timeout)
	}
}

// ProcStatusKiB reads a "Vm…:   123 kB" line of /proc/PID/status, e.g.
// VmHWM, the peak resident set.
func ProcStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
			break
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// Metrics reads the /metrics of the server at base (http://HOST:PORT) into
// a map from series (name and labels as written) to value.
func Metrics(ctx context.Context, base string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

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
		if binDir, binErr = os.MkdirTemp("", "fredtel-bin"); binErr == nil {
			fredtelBx, binErr = Build(context.Background(), binDir, "cmd/fredtel")
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
	stderr Buffer
	killed atomic.Bool
}

func (p *Process) Stderr() string { return p.stderr.String() }

// Kill SIGKILLs the server and reaps it; the test's end then does not
// check that it stopped cleanly.
func (p *Process) Kill() error {
	p.killed.Store(true)
	err := p.Cmd.Process.Kill()
	p.Cmd.Wait()
	return err
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
	p.Cmd.Stderr = &p.stderr
	var err error
	if p.URL, err = Serve(p.Cmd, 30*time.Second); err != nil {
		t.Fatalf("%v: %s", err, p.Stderr())
	}
	t.Cleanup(func() {
		if p.killed.Load() {
			return
		}
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

// Main is the TestMain of a package that starts servers: it runs the tests,
// then removes the built binary.
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}
