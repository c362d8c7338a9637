package central

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// audit keeps the last n payloads that left the queue (sent, or spooled),
// exactly as they were encoded, so a user can see with their own eyes what
// leaves the machine: `fred telemetry show`. They are kept in memory while
// the session runs and written to the audit folder when it closes (and with
// every spool write): a file per request would cost more than the send.
type audit struct {
	dir  string
	n    int
	mu   sync.Mutex
	ring []auditEntry
}

type auditEntry struct {
	body   []byte
	status string
	at     time.Time
}

func newAudit(configDir string, n int) *audit {
	return &audit{dir: filepath.Join(configDir, "audit"), n: n}
}

// add keeps body, which the audit now owns, and hands back the buffer of
// the entry it pushed out (or nil) for the caller's next body: a batch is
// encoded into a buffer the audit later keeps, so it is never copied.
func (a *audit) add(body []byte, status string, at time.Time) (spare []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.ring) >= a.n {
		spare = a.ring[0].body[:0]
		a.ring = append(a.ring[:0], a.ring[1:]...)
	}
	a.ring = append(a.ring, auditEntry{body, status, at})
	return spare
}

// flush writes the entries kept in memory and trims the folder to the last n.
func (a *audit) flush() {
	a.mu.Lock()
	ring := a.ring
	a.ring = nil
	a.mu.Unlock()
	if len(ring) == 0 || os.MkdirAll(a.dir, 0o700) != nil {
		return
	}
	for _, e := range ring {
		name := fmt.Sprintf("%020d-%s-%s", e.at.UnixNano(), e.status, uniqueName())
		f, err := os.CreateTemp(a.dir, ".tmp-*")
		if err != nil {
			return
		}
		f.Chmod(0o600)
		_, err = f.Write(e.body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		// A payload cut short by a full disk must not be shown as what left.
		if err != nil || os.Rename(f.Name(), filepath.Join(a.dir, name)) != nil {
			os.Remove(f.Name())
		}
	}
	des, _ := os.ReadDir(a.dir)
	var names []string
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	for len(names) > a.n {
		os.Remove(filepath.Join(a.dir, names[0]))
		names = names[1:]
	}
}

// Show writes the audit log of the config dir to w, oldest first, each
// payload pretty-printed under a line saying when and what became of it.
// It reports how many batches there were.
func Show(configDir string, w io.Writer) (int, error) {
	dir := filepath.Join(configDir, "audit")
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var names []string
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		parts := strings.SplitN(name, "-", 3)
		// The name starts with the time in nanoseconds, zero-padded to
		// sort: read it as decimal (Sscan would take the leading 0 for
		// octal, fail on the first 8 or 9, and date the batch 1970).
		ns, _ := strconv.ParseInt(parts[0], 10, 64)
		status := "sent"
		if len(parts) > 1 {
			status = parts[1]
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "", "  ") != nil {
			pretty.Write(body)
		}
		fmt.Fprintf(w, "# %s %s\n%s\n", status, time.Unix(0, ns).UTC().Format(time.RFC3339), pretty.String())
	}
	return len(names), nil
}
