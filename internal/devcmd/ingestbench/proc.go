package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// tail keeps the last max bytes written to it: the server's log, shown
// when something goes wrong.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// serverProc is a running ingest server: a `fredtel serve` process, or
// the same server inside this process (--cpuprofile).
type serverProc struct {
	pid      int    // the process whose RSS and CPU are the server's
	addr     string // HOST:PORT
	log      *tail
	done     chan struct{} // closed when the server has exited
	err      error         // its exit status, once done
	inProc   bool
	shutdown func() // asks the server to stop
}

// startServer runs `fredtel serve` on a free loopback port and waits for
// its "listening on" line.
func startServer(bin, dbURL string, extra []string) (*serverProc, error) {
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", dbURL,
		"--rate", "1000000", "--burst", "1000000", "--log-format", "json"}, extra...)
	cmd := exec.Command(bin, args...)
	p := &serverProc{log: &tail{max: 64 << 10}, done: make(chan struct{})}
	cmd.Env = serverEnv()
	cmd.Stderr = p.log
	dieWithParent(cmd)
	var err error
	if p.addr, err = testkit.Serve(cmd, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%v:\n%s", err, p.log)
	}
	p.pid = cmd.Process.Pid
	p.shutdown = func() { cmd.Process.Signal(syscall.SIGTERM) }
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// running reports whether the server is still up.
func (p *serverProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop asks for a graceful exit (SIGTERM) and waits for it; a process
// still there after 20 s is killed.
func (p *serverProc) stop() error {
	if !p.running() {
		return fmt.Errorf("the server had already exited: %v", p.err)
	}
	p.shutdown()
	select {
	case <-p.done:
		return p.err
	case <-time.After(20 * time.Second):
		if !p.inProc {
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
		<-p.done
		return errors.New("the server ignored SIGTERM for 20 s")
	}
}

// serverEnv is the environment of the fredtel commands: PATH and HOME, and
// none of the FREDTEL_* variables that would change the server's settings.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FREDTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// clockTicks is USER_HZ, 100 on every Linux platform Go supports.
const clockTicks = 100

// procCPUTicks is utime+stime of a process from /proc/PID/stat.
func procCPUTicks(pid string) (comm string, ticks int64, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("/proc/%s/stat: unexpected form", pid)
	}
	comm = s[open+1 : end]
	f := strings.Fields(s[end+1:])
	// After the command: state(0) ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime(11) stime(12).
	if len(f) < 13 {
		return "", 0, fmt.Errorf("/proc/%s/stat: unexpected form", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return comm, u + st, nil
}

// cpuSnapshot is where the machine's CPU time has gone so far, in ticks.
type cpuSnapshot struct {
	at                         time.Time
	busy, total                int64 // whole machine, /proc/stat
	server, postgres, selfProc int64
}

// takeCPU snapshots the machine, the server (serverPID, none if < 1),
// every postgres process and this process.
func takeCPU(serverPID int) cpuSnapshot {
	s := cpuSnapshot{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			switch i {
			case 0, 1, 2, 5, 6, 7: // user nice system irq softirq steal
				s.busy += n
				s.total += n
			case 3, 4: // idle iowait
				s.total += n
			}
		}
	}
	if serverPID > 0 {
		_, s.server, _ = procCPUTicks(strconv.Itoa(serverPID))
	}
	_, s.selfProc, _ = procCPUTicks("self")
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if e.Name()[0] < '0' || e.Name()[0] > '9' {
				continue
			}
			if comm, t, err := procCPUTicks(e.Name()); err == nil && comm == "postgres" {
				s.postgres += t
			}
		}
	}
	return s
}

// cpuUse is the CPU used between two snapshots, in cores.
type cpuUse struct {
	Cores    int     `json:"cores"`
	Busy     float64 `json:"busy_cores"`
	Server   float64 `json:"server_cores"`
	Postgres float64 `json:"postgres_cores"`
	Bench    float64 `json:"bench_cores"`
	Other    float64 `json:"other_cores"`
}

func cpuBetween(a, b cpuSnapshot, cores int, inProc bool) cpuUse {
	secs := b.at.Sub(a.at).Seconds()
	c := func(t int64) float64 { return float64(t) / clockTicks / secs }
	u := cpuUse{Cores: cores, Server: c(b.server - a.server), Postgres: c(b.postgres - a.postgres)}
	if !inProc { // else the clients are in the server's figure
		u.Bench = c(b.selfProc - a.selfProc)
	}
	if tot := b.total - a.total; tot > 0 {
		u.Busy = float64(cores) * float64(b.busy-a.busy) / float64(tot)
	}
	u.Other = max(0, u.Busy-u.Server-u.Postgres-u.Bench)
	return u
}
