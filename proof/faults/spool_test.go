package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/proof"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
	"github.com/google/uuid"
)

// The exit budget the spool checks hold Close to: the default, and the
// slack the brief of issue 6 allows for scheduling.
const (
	defaultBudget = 100 * time.Millisecond
	closeSlack    = 20 * time.Millisecond
	// A recording call never does I/O; this is only the bound beyond which
	// it surely did (scheduling on 2 busy cores takes a few ms at worst).
	slowCall = 50 * time.Millisecond
)

// TestSpoolFull: the config dir, spool and audit log included, is a small
// filesystem with room for a batch or two. A session whose server cannot be
// reached records as usual and closes within its budget; at Close it spools
// what fits, and counts the rest as dropped. The spool holds only complete
// batches. The next session, the disk healthy again, delivers exactly what
// was spooled.
func TestSpoolFull(t *testing.T) { spoolFault(t, "full") }

// TestSpoolReadOnly: the same with a read-only config dir: nothing can be
// spooled, everything at Close is counted as dropped, and the agent notices
// nothing; the next session, writable again, works normally.
func TestSpoolReadOnly(t *testing.T) { spoolFault(t, "read-only") }

func spoolFault(t *testing.T, fault string) {
	const fsSize, room = 1 << 20, 96 << 10
	note := newNotes(t)
	dir := mountTmpfs(t, fsSize)
	db := testdb.Postgres(t)
	srv := testkit.StartServer(t, db, "")
	key := testkit.CreateKey(t, db, "spool-"+strings.ReplaceAll(fault, "-", ""))
	fixture.LogIn(t, dir, key)
	var heal func()
	switch fault {
	case "full":
		filler := filepath.Join(dir, "filler")
		fill(t, dir, filler, room)
		heal = func() {
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
		}
	case "read-only":
		remount(t, dir, syscall.MS_RDONLY)
		heal = func() { remount(t, dir, 0) }
	}
	c := &client{dir: dir, rng: rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))}

	// The session: its server refuses connections, so everything it
	// records is still queued at Close. Small blocks, so that the queue is
	// several spool files and the disk fills up between two of them.
	cfg := sessionCfg{turns: [2]int{150, 150}, think: [2]time.Duration{0, 2 * time.Millisecond},
		flush: 20 * time.Millisecond, maxBatch: 100}
	o, err := c.session(testkit.Refused(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, sink := o.st, o.sink
	sink.mu.Lock()
	spooledRecs, unspooledRecs, spooled := sink.spooledRecs, sink.unspooledRecs, len(sink.spooled)
	wantOpen := 0
	if _, ok := sink.spooled[sink.sessionID()]; ok && !sink.spooledEnd {
		wantOpen = 1 // its start was spooled, its end was not: the row stays open
	}
	sink.mu.Unlock()
	note.Logf("%s: %+v; Close took %v, the slowest recording call %v; spool calls: %d records taken, %d refused",
		fault, st, o.close.Round(time.Microsecond), o.maxCall.Round(time.Microsecond), spooledRecs, unspooledRecs)

	if st.Panics != 0 || st.Written != 0 || st.Recorded != int64(o.made.total()+1) {
		t.Errorf("stats %+v for %v made against a dead server", st, o.made)
	}
	if o.close > defaultBudget+closeSlack {
		t.Errorf("Close took %v on a %s disk: over its %v budget + %v", o.close, fault, defaultBudget, closeSlack)
	}
	if o.maxCall > slowCall {
		t.Errorf("a recording call took %v on a %s disk", o.maxCall, fault)
	}
	// The counters tell the truth: Spooled is what is on disk, and the rest
	// is counted as dropped.
	if st.Spooled != int64(spooledRecs) || st.Spooled+st.Dropped != st.Recorded {
		t.Errorf("stats %+v, but the spool took %d records and refused %d", st, spooledRecs, unspooledRecs)
	}
	switch {
	case fault == "full" && (spooledRecs == 0 || st.Dropped == 0):
		t.Errorf("the disk was meant to fill up between two batches: %d records spooled, %d dropped", spooledRecs, st.Dropped)
	case fault == "read-only" && spooledRecs != 0:
		t.Errorf("%d records spooled on a read-only disk", spooledRecs)
	}
	onDisk := spoolContents(t, dir)
	if onDisk.records != spooledRecs || len(onDisk.partial) > 0 {
		t.Errorf("the spool holds %d records in %d complete batches (and %d partial files: %v); the sender said it spooled %d",
			onDisk.records, onDisk.batches, len(onDisk.partial), onDisk.partial, spooledRecs)
	}
	for id := range onDisk.ids {
		if _, ok := sink.spooled[id]; !ok {
			t.Errorf("the spool holds %s, which the sender never spooled", id)
			break
		}
	}
	if bad := auditContents(t, dir); len(bad) > 0 {
		t.Errorf("the audit log (fred telemetry show) holds %d payloads that are not what was sent or spooled: %v", len(bad), bad)
	}

	// The disk is healthy again: the next session works normally and
	// delivers the spool.
	heal()
	var stderr testkit.Buffer
	s2, sink2 := c.start("http://"+srv.URL, sessionCfg{flush: 20 * time.Millisecond, closeBudget: closeBudget}, &stderr)
	if sink2 == nil {
		t.Fatalf("the next session did not start its sender: %s", s2.Route().Status())
	}
	tr := s2.BeginTurn("act", "fred-flash-2")
	tr.ToolCall(telemetry.ToolCall{Name: "bash", Args: []byte(`{"cmd":"ls"}`), Result: "ok", Permission: "user_allowed"})
	tr.End(telemetry.TurnResult{FinishReason: "stop"})
	testkit.WaitFor(t, 20*time.Second, "the next session to send its records and deliver the spool", func() bool {
		b, _ := central.SpoolSize(dir)
		return b == 0 && s2.Stats().Written == 3
	})
	s2.Close(context.Background())
	if !sink2.wait(10 * time.Second) {
		t.Fatal("the next session still had its sender 10 s after Close")
	}
	st2 := s2.Stats()
	if st2.Recorded != 4 || st2.Written != st2.Recorded || st2.Dropped != 0 || st2.Spooled != 0 || st2.Panics != 0 {
		t.Errorf("the next session, on a healthy disk: %+v (it said %q)", st2, stderr.String())
	}

	led := newLedger()
	sink.mu.Lock()
	led.add(sink.spooled)
	sink.mu.Unlock()
	sink2.mu.Lock()
	led.add(sink2.seen)
	sink2.mu.Unlock()
	v := led.check(t, db)
	v.mustMatch(t, wantOpen)
	if t.Failed() {
		return
	}
	kib := func(n int) string { return fmt.Sprintf("%d KiB", n>>10) }
	what := map[string]string{
		"full":      fmt.Sprintf("spool on a full disk (tmpfs of %s, %s free)", kib(fsSize), kib(room)),
		"read-only": fmt.Sprintf("spool on a read-only disk (tmpfs of %s)", kib(fsSize)),
	}[fault]
	proof.Figure(t, "faults", what+": the agent keeps working",
		"a session of %d records against a dead server: slowest recording call %s, Close %s (budget %v); %d records spooled, %d counted as dropped, 0 panics, no partial file; the next session, on a healthy disk, wrote its own %d records and delivered the %d spooled record ids: %d lost, %d duplicated",
		st.Recorded, ms(o.maxCall), ms(o.close), defaultBudget, st.Spooled, st.Dropped, st2.Recorded, spooled, v.lost, v.duplicated+v.unknown)
}

// sessionID is the id of the session the sink served.
func (r *recSink) sessionID() uuid.UUID {
	for id, k := range r.seen {
		if k == kSession {
			return id
		}
	}
	return uuid.Nil
}

// mountTmpfs mounts a tmpfs of size bytes on a new folder, unmounted when
// t ends. Mounting needs CAP_SYS_ADMIN: without it the check is skipped,
// saying so (a full or read-only disk cannot be made otherwise: root
// ignores permission bits, and a disk cannot be filled safely).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fred")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("a full or read-only spool needs a filesystem of its own: mounting a tmpfs needs CAP_SYS_ADMIN (running as uid %d): mount: %v", os.Geteuid(), err)
		}
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func remount(t *testing.T, dir string, flags uintptr) {
	t.Helper()
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|flags, ""); err != nil {
		t.Fatalf("remount %s: %v", dir, err)
	}
}

// fill writes a file that leaves room bytes free on dir's filesystem.
func fill(t *testing.T, dir, path string, room int) {
	t.Helper()
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	free := int(fs.Bavail) * int(fs.Bsize)
	if free <= room {
		t.Fatalf("only %d bytes free on the tmpfs, want more than %d", free, room)
	}
	if err := os.WriteFile(path, make([]byte, free-room), 0o600); err != nil {
		t.Fatal(err)
	}
}

type spooled struct {
	batches, records int
	ids              map[uuid.UUID]kind
	partial          []string // files that are not a complete batch
}

// spoolContents reads every file of dir's spool as the next session would.
func spoolContents(t *testing.T, dir string) spooled {
	t.Helper()
	out := spooled{ids: map[uuid.UUID]kind{}}
	des, err := os.ReadDir(filepath.Join(dir, "spool"))
	if errors.Is(err, os.ErrNotExist) {
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		body, err := os.ReadFile(filepath.Join(dir, "spool", de.Name()))
		var b telemetry.RemoteBatch
		if err != nil || strings.HasPrefix(de.Name(), ".") || json.Unmarshal(body, &b) != nil {
			out.partial = append(out.partial, fmt.Sprintf("%s (%d bytes)", de.Name(), len(body)))
			continue
		}
		out.batches++
		out.records += b.Len()
		noteIDs(&b, out.ids)
	}
	return out
}

// auditContents returns the audit log's files that are not a complete
// payload: what `fred telemetry show` prints must be what left.
func auditContents(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "audit"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, de := range des {
		body, err := os.ReadFile(filepath.Join(dir, "audit", de.Name()))
		if err != nil || !json.Valid(body) {
			bad = append(bad, fmt.Sprintf("%s (%d bytes)", de.Name(), len(body)))
		}
	}
	return bad
}
