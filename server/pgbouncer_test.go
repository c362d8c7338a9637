package server_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestIngestThroughPgBouncer runs the integration suite with the server
// connected through PgBouncer in transaction pooling mode, as behind a
// production pooler: every transaction may land on another server
// connection. Migrations and the suite's own checks go direct.
func TestIngestThroughPgBouncer(t *testing.T) {
	t.Parallel()
	bin := findPgBouncer()
	if bin == "" {
		if testdb.Required() {
			t.Fatal("pgbouncer is required (FREDTEL_REQUIRE_DB=1 or CI) but not installed: scripts/test installs it as root (apt-get install pgbouncer)")
		}
		t.Skip("pgbouncer not installed (not on PATH nor /usr/sbin/pgbouncer); scripts/test installs it as root")
	}
	db := testdb.Postgres(t)
	bouncerURL := startPgBouncer(t, bin, db)
	RunSuite(t, db, bouncerURL, db)
}

// findPgBouncer returns the path of the pgbouncer binary, or "".
func findPgBouncer() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	const debian = "/usr/sbin/pgbouncer" // not on a non-root PATH
	if fi, err := os.Stat(debian); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return debian
	}
	return ""
}

// bouncer is a running pgbouncer process.
type bouncer struct {
	cmd  *exec.Cmd
	log  testkit.Buffer
	done chan struct{} // closed when the process has exited
	err  error         // its Wait error, once done
}

// startPgBouncer starts pgbouncer on a free loopback port in front of the
// database at db (a direct URL), and returns the URL of the same database
// through it. It is stopped when t ends.
func startPgBouncer(t testing.TB, bin, db string) string {
	t.Helper()
	target, err := pgconn.ParseConfig(db)
	if err != nil {
		t.Fatalf("parse %s: %v", db, err)
	}
	dir := t.TempDir()
	var last string
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken before pgbouncer binds it
		port := testkit.FreePort(t)
		ini := writePgBouncerConfig(t, dir, port, target)
		b := runPgBouncer(t, bin, ini)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := waitListening(addr, b, 15*time.Second); err != nil {
			last = fmt.Sprintf("%v\n%s", err, b.log.String())
			stopPgBouncer(b)
			continue
		}
		t.Cleanup(func() {
			if err := stopPgBouncer(b); err != nil {
				t.Errorf("pgbouncer: %v", err)
			}
			if t.Failed() {
				t.Logf("pgbouncer log:\n%s", b.log.String())
			}
		})
		u := &url.URL{Scheme: "postgres", User: url.User(target.User), Host: addr, Path: "/" + target.Database,
			RawQuery: "sslmode=disable"}
		checkThrough(t, u.String(), b)
		return u.String()
	}
	t.Fatalf("pgbouncer did not start: %s", last)
	return ""
}

// writePgBouncerConfig writes pgbouncer.ini and its userlist into dir. Both
// are read at start, before pgbouncer drops root, so they may stay private;
// it logs to stderr and keeps no pidfile or socket.
func writePgBouncerConfig(t testing.TB, dir string, port int, target *pgconn.Config) string {
	t.Helper()
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" } // a libpq-style value
	conn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", q(target.Host), target.Port, q(target.Database), q(target.User))
	if target.Password != "" {
		conn += " password=" + q(target.Password)
	}
	users := filepath.Join(dir, "userlist.txt")
	if err := os.WriteFile(users, []byte(fmt.Sprintf("%q \"\"\n", target.User)), 0o600); err != nil {
		t.Fatal(err)
	}
	ini := strings.Join([]string{
		"[databases]",
		target.Database + " = " + conn,
		"",
		"[pgbouncer]",
		"listen_addr = 127.0.0.1",
		"listen_port = " + strconv.Itoa(port),
		"unix_socket_dir =",
		"pidfile =",
		"logfile =",
		"syslog = 0",
		"pool_mode = transaction",
		"auth_type = trust",
		"auth_file = " + users,
		"max_client_conn = 50",
		"default_pool_size = 5",
		"ignore_startup_parameters = extra_float_digits,options",
		"",
	}, "\n")
	path := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(path, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runPgBouncer starts pgbouncer in the foreground. It refuses to run as
// root, so as root it takes the identity of postgres (else nobody) with -u.
func runPgBouncer(t testing.TB, bin, ini string) *bouncer {
	t.Helper()
	args := []string{ini}
	if os.Geteuid() == 0 {
		name := "nobody"
		if _, err := user.Lookup("postgres"); err == nil {
			name = "postgres"
		}
		args = []string{"-u", name, ini}
	}
	b := &bouncer{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = &b.log, &b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	return b
}

// waitListening waits until addr accepts connections, or b exits.
func waitListening(addr string, b *bouncer, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-b.done:
			return fmt.Errorf("pgbouncer exited: %v", b.err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgbouncer not listening on %s after %s", addr, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkThrough fails t unless a query goes through the bouncer.
func checkThrough(t testing.TB, u string, b *bouncer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("connect through pgbouncer: %v\n%s", err, b.log.String())
	}
	defer c.Close(ctx)
	var one int
	if err := c.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one); err != nil || one != 1 {
		t.Fatalf("query through pgbouncer: %v\n%s", err, b.log.String())
	}
}

// stopPgBouncer stops b with SIGTERM (immediate shutdown), then SIGKILL.
func stopPgBouncer(b *bouncer) error {
	select {
	case <-b.done:
		return nil
	default:
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
		return nil
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-b.done
		return fmt.Errorf("ignored SIGTERM, killed")
	}
}
