package central

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fredcode/fredtel/internal/redact"
	"github.com/fredcode/fredtel/internal/safedir"
)

// audit keeps the last n payloads that left the queue (sent, or spooled),
// exactly as they were encoded, so a user can see with their own eyes what
// leaves the machine: `fred telemetry show`. They are kept in memory while
// the session runs and written to the audit folder when it closes (and with
// every spool write): a file per request would cost more than the send.
type audit struct {
	config string // the config folder
	n      int
	mu     sync.Mutex
	ring   []auditEntry
}

type auditEntry struct {
	body   []byte
	status string
	at     time.Time
}

func newAudit(configDir string, n int) *audit {
	return &audit{config: configDir, n: n}
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

// auditName is the name flush gives an entry: when, what became of it,
// and a unique tail. Only files of that name are read or pruned.
var auditName = regexp.MustCompile(`^[0-9]{20}-(sent|spooled)-[0-9]{1,20}-[0-9a-f]{12}\.json$`)

// maxAuditFile bounds what Show reads of one entry: a batch of MaxRecords
// records is far smaller.
const maxAuditFile = 16 << 20

// flush writes the entries kept in memory and trims the folder to the last
// n. The folder (and the config folder) must be the user's own; only files
// of the audit's own names are pruned, never through a symbolic link.
func (a *audit) flush() {
	a.mu.Lock()
	ring := a.ring
	a.ring = nil
	a.mu.Unlock()
	if len(ring) == 0 {
		return
	}
	d, err := openSub(a.config, auditDir, true)
	if err != nil {
		return
	}
	defer d.Close()
	for _, e := range ring {
		// A payload cut short by a full disk is never renamed into place,
		// so it is never shown as what left.
		if d.WriteFile(fmt.Sprintf("%020d-%s-%s", e.at.UnixNano(), e.status, uniqueName()), e.body) != nil {
			return
		}
	}
	names := auditNames(d)
	for len(names) > a.n {
		d.Remove(names[0])
		names = names[1:]
	}
}

// auditNames lists the audit entries of d, oldest first.
func auditNames(d *safedir.Dir) []string {
	es, _ := d.List(auditName.MatchString)
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name
	}
	sort.Strings(names)
	return names
}

// Show writes the audit log of the config dir to w, oldest first, each
// payload pretty-printed under a line saying when and what became of it.
// It reports how many batches there were.
func Show(configDir string, w io.Writer) (int, error) {
	d, err := openSub(configDir, auditDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer d.Close()
	names := auditNames(d)
	for _, name := range names {
		body, err := d.ReadFile(name, maxAuditFile)
		if err != nil {
			continue
		}
		parts := strings.SplitN(name, "-", 3)
		// The name starts with the time in nanoseconds, zero-padded to
		// sort: read it as decimal (Sscan would take the leading 0 for
		// octal, fail on the first 8 or 9, and date the batch 1970).
		ns, _ := strconv.ParseInt(parts[0], 10, 64)
		status := parts[1]
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "", "  ") != nil {
			pretty.WriteString(redact.Terminal(string(body), 4096))
		}
		fmt.Fprintf(w, "# %s %s\n%s\n", status, time.Unix(0, ns).UTC().Format(time.RFC3339), pretty.String())
	}
	return len(names), nil
}
