package testdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/jackc/pgx/v5"
)

// Timeouts: every command and wait is bounded.
const (
	cmdTimeout   = 90 * time.Second // initdb, pg_ctl start/stop
	readyTimeout = 30 * time.Second // accepting connections after a start
)

// Cluster is a private, throwaway PostgreSQL cluster for fault tests:
// tests that restart, stop or otherwise break the database on purpose.
// They cannot use the shared server at DATABASE_URL: other tests, in their
// package and in others running in parallel, keep their databases there,
// and restarting it would fail them. A cluster of its own, on a free
// loopback port in a temporary folder, a test may stop and restart at
// will. Its methods that take a testing.TB fail the test with t.Fatal, so
// call them from the test's own goroutine.
type Cluster struct {
	bin  string // folder of initdb, pg_ctl, postgres
	dir  string // the temporary folder: data/, the log, the socket
	data string
	log  string
	port int
	cred *syscall.Credential // the postgres OS user when running as root

	mu      sync.Mutex
	running bool
}

// StartCluster creates, starts and waits for a new cluster; it is stopped
// and removed when t ends. The binaries are the newest of
// /usr/lib/postgresql/*/bin (Debian's layout), else initdb and pg_ctl on
// PATH. When they are missing the test is skipped, unless Required(). As
// root the cluster runs as the postgres OS user (initdb and postgres
// refuse to run as root).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := findBin()
	if err != nil {
		if Required() {
			t.Fatalf("cluster: PostgreSQL binaries are required (FREDTEL_REQUIRE_DB=1 or CI) but not found: %v", err)
		}
		t.Skipf("cluster: no PostgreSQL binaries (install postgresql): %v", err)
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("cluster: running as root, and initdb refuses root: need the postgres OS user: %v", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir(): that is root's, mode 0700, unreachable for postgres.
	c.dir, err = os.MkdirTemp("", "pgtemp-")
	if err != nil {
		t.Fatalf("cluster: %v", err)
	}
	t.Cleanup(c.cleanup(t))
	if err := os.Chmod(c.dir, 0o700); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			t.Fatalf("cluster: chown %s to postgres: %v", c.dir, err)
		}
	}
	c.data = filepath.Join(c.dir, "data")
	c.log = filepath.Join(c.dir, "postgres.log")

	t0 := time.Now()
	if out, err := c.run("initdb", "-D", c.data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("cluster: initdb: %v\n%s", err, out)
	}
	conf, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = fmt.Fprintf(conf, "\n# pgtemp\ninclude 'pgtemp.conf'\n")
		if cerr := conf.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Fatalf("cluster: postgresql.conf: %v", err)
	}
	// A port can be taken between finding it free and the server binding
	// it: try a few.
	for attempt := 0; ; attempt++ {
		if err := c.configure(testkit.FreePort(t)); err != nil {
			t.Fatalf("cluster: %v", err)
		}
		err := c.start()
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("cluster: %v", err)
		}
	}
	t.Logf("cluster: PostgreSQL (%s) on 127.0.0.1:%d ready in %v", filepath.Base(filepath.Dir(c.bin)), c.port, time.Since(t0).Round(time.Millisecond))
	return c
}

// URL is the superuser URL of the cluster's postgres database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Port is the cluster's loopback port; it stays the same across restarts.
func (c *Cluster) Port() int { return c.port }

// Restart stops the cluster (fast: connections are terminated, transactions
// in flight roll back) and starts it again on the same port, returning once
// it accepts connections.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	if err := c.start(); err != nil {
		t.Fatalf("cluster: restart: %v", err)
	}
}

// Stop stops the cluster (fast shutdown). Restart starts it again.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop("fast"); err != nil {
		t.Fatalf("cluster: stop: %v", err)
	}
}

// Log returns the server's log so far (for a failure message).
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.log)
	return string(b)
}

// configure writes the settings the cluster runs with, on port.
func (c *Cluster) configure(port int) error {
	c.port = port
	conf := fmt.Sprintf(`port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
fsync = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 50
`, port, c.dir)
	p := filepath.Join(c.data, "pgtemp.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		return os.Chown(p, int(c.cred.Uid), int(c.cred.Gid))
	}
	return nil
}

// start runs pg_ctl start and waits until a connection succeeds.
func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if out, err := c.run("pg_ctl", "start", "-D", c.data, "-l", c.log, "-w", "-t", strconv.Itoa(int(readyTimeout/time.Second))); err != nil {
		return fmt.Errorf("pg_ctl start on port %d: %v\n%s\nlog:\n%s", c.port, err, out, testkit.Tail(c.Log(), 2000))
	}
	c.running = true
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL())
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections on port %d after %v: %v\nlog:\n%s", c.port, readyTimeout, err, testkit.Tail(c.Log(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop runs pg_ctl stop in mode (fast or immediate); a stopped cluster is
// left alone.
func (c *Cluster) stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return nil
	}
	if out, err := c.run("pg_ctl", "stop", "-D", c.data, "-m", mode, "-w", "-t", "60"); err != nil {
		return fmt.Errorf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
	c.running = false
	return nil
}

func (c *Cluster) cleanup(t testing.TB) func() {
	return func() {
		if err := c.stop("immediate"); err != nil {
			t.Errorf("cluster: %v", err)
			c.killPostmaster()
		}
		if err := os.RemoveAll(c.dir); err != nil {
			t.Errorf("cluster: remove %s: %v", c.dir, err)
		}
	}
}

// killPostmaster is the last resort when pg_ctl could not stop the server:
// SIGQUIT to the postmaster named in postmaster.pid (its children follow).
func (c *Cluster) killPostmaster() {
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pid > 1 {
		syscall.Kill(pid, syscall.SIGQUIT)
	}
}

// run runs one of the binaries as the cluster's OS user, bounded in time.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "HOME=" + c.dir, "LC_ALL=C", "TZ=UTC"}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The postmaster that pg_ctl starts writes to the log file, not to our
	// pipe; should it ever keep the pipe open, Wait gives up after this.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return out.Bytes(), err
}

// findBin returns the newest /usr/lib/postgresql/VERSION/bin that has
// initdb and pg_ctl, else the folder of initdb on PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type cand struct {
		dir string
		ver float64
	}
	var cs []cand
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil || !hasTools(d) {
			continue
		}
		cs = append(cs, cand{d, v})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ver > cs[j].ver })
	if len(cs) > 0 {
		return cs[0].dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil && hasTools(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("neither /usr/lib/postgresql/*/bin nor PATH has initdb and pg_ctl")
}

func hasTools(dir string) bool {
	for _, n := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, n)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}
