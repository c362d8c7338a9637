package central

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/internal/safedir"
	"github.com/fredcode/fredtel/wire"
)

// spool is a folder of undelivered batch bodies, one file each, oldest
// first by name. Files appear by rename, so a reader never sees half of
// one; a sender claims a file by renaming it, so two CLI processes never
// send the same file at once (and if both did, the server's idempotence
// would still keep one row per record). The folder stays under maxBytes:
// the oldest files go first.
//
// The folder and the config folder around it must be the user's own (see
// internal/safedir): nothing is read, sent or deleted otherwise. Only
// regular files with the names put writes are read or deleted, never
// through a symbolic link, and a spooled body is sent only when it is a
// batch the server's validator accepts (a planted file cannot smuggle a
// field, or another program's data, to the server).
type spool struct {
	config   string // the config folder
	dir      string // config/spool, for messages
	maxBytes int64
}

const (
	spoolDir = "spool"
	auditDir = "audit"
	claimTag = ".claimed-"
)

// staleClaim: a claim older than this belongs to a process that died while
// sending; the file is sent again.
const staleClaim = 2 * time.Minute

// The names the sender writes: spooled bodies, claimed ones, and temporary
// files (safedir.TempPrefix, or os.CreateTemp's digits from earlier
// versions) left by a writer that died.
var (
	spoolName = regexp.MustCompile(`^[0-9]{1,20}-[0-9a-f]{12}\.json(\.claimed-[0-9]{1,20})?$`)
	tempName  = regexp.MustCompile(`^\.tmp-[0-9a-f]{1,32}$`)
)

func newSpool(configDir string, maxBytes int64) *spool {
	return &spool{config: configDir, dir: filepath.Join(configDir, spoolDir), maxBytes: maxBytes}
}

func uniqueName() string {
	var b [6]byte
	rand.Read(b[:])
	return strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + hex.EncodeToString(b[:]) + ".json"
}

// openSub opens a subfolder of the config folder, both checked to be the
// user's own.
func openSub(config, name string, create bool) (*safedir.Dir, error) {
	if config == "" {
		return nil, errors.New("no config folder")
	}
	c, err := safedir.Open(config, create)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Sub(name, create)
}

// put adds a body, dropping the oldest files when over the bound. It
// returns how many batches were dropped to make room.
func (s *spool) put(body []byte) (int, error) {
	if int64(len(body)) > s.maxBytes {
		return 0, errors.New("batch larger than the spool")
	}
	d, err := openSub(s.config, spoolDir, true)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	if err := d.WriteFile(uniqueName(), body); err != nil {
		return 0, err
	}
	return s.trim(d), nil
}

type entry = safedir.Entry

// list returns the spooled bodies of d, oldest first.
func list(d *safedir.Dir) []entry {
	es, _ := d.List(spoolName.MatchString)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	return es
}

// trim drops the oldest files until the spool fits its bound.
func (s *spool) trim(d *safedir.Dir) int {
	es := list(d)
	var total int64
	for _, e := range es {
		total += e.Size
	}
	dropped := 0
	for _, e := range es {
		if total <= s.maxBytes {
			break
		}
		if d.Remove(e.Name) == nil {
			total -= e.Size
			dropped++
		}
	}
	return dropped
}

// claim takes the oldest unclaimed body for sending, its sent_at set to
// now, and none while another process sends an older one. A body that is not a batch the server would accept is deleted (it
// could never be delivered, and was not written by this sender); one of a
// schema version the server's validator does not know yet stays for a
// later version of Fred.
func (s *spool) claim(now time.Time) (string, []byte, bool) {
	d, err := openSub(s.config, spoolDir, false)
	if err != nil {
		return "", nil, false
	}
	defer d.Close()
	for _, e := range list(d) {
		name := e.Name
		if i := strings.Index(name, claimTag); i >= 0 {
			ts, _ := strconv.ParseInt(name[i+len(claimTag):], 10, 64)
			if time.Since(time.Unix(0, ts)) < staleClaim {
				// Another process is sending it: the files after it wait.
				// A session spooled in several files declares its catalogs
				// in the first: sent before it, a later one would be
				// refused (400 name_not_in_catalog) and lost.
				return "", nil, false
			}
			name = name[:i] // a dead process's claim: take it over
		}
		claimed := name + claimTag + strconv.FormatInt(time.Now().UnixNano(), 10)
		if d.Rename(e.Name, claimed) != nil {
			continue // someone else was faster
		}
		body, err := d.ReadFile(claimed, max(s.maxBytes, DefaultSpoolBytes))
		if err != nil {
			d.Remove(claimed)
			continue
		}
		body = refreshSentAt(body, now)
		if rej := validSpooled(body, now); rej != nil {
			if rej.Status == 422 {
				d.Rename(claimed, name) // a newer schema: keep it
				continue
			}
			d.Remove(claimed)
			continue
		}
		return claimed, body, true
	}
	return "", nil, false
}

// validSpooled validates a spooled body as the server would, with the
// same declaration: nil when it is a batch the server accepts.
func validSpooled(body []byte, now time.Time) *wire.Rejection {
	_, rej := wire.Validate(body, wire.Limits{MaxRecords: MaxRecords, Now: now, MaxClockSkew: time.Minute})
	return rej
}

// done removes a delivered (or undeliverable) body.
func (s *spool) done(claimed string) {
	if d, err := openSub(s.config, spoolDir, false); err == nil {
		d.Remove(claimed)
		d.Close()
	}
}

// unclaim puts a body back for a later try.
func (s *spool) unclaim(claimed string) {
	orig := claimed
	if i := strings.Index(claimed, claimTag); i >= 0 {
		orig = claimed[:i]
	}
	if d, err := openSub(s.config, spoolDir, false); err == nil {
		d.Rename(claimed, orig)
		d.Close()
	}
}

// purge deletes every spooled body (and the sender's leftover temporary
// files), then the folder if nothing else is in it. Nothing else is
// deleted: not a file of another name, not what a symbolic link points to.
func (s *spool) purge() error {
	if s.config == "" {
		return nil
	}
	c, err := safedir.Open(s.config, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	d, err := c.Sub(spoolDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	es, err := d.List(func(n string) bool { return spoolName.MatchString(n) || tempName.MatchString(n) })
	if err != nil {
		d.Close()
		return err
	}
	var first error
	for _, e := range es {
		if err := d.Remove(e.Name); err != nil && !errors.Is(err, fs.ErrNotExist) && first == nil {
			first = err
		}
	}
	d.Close()
	if first != nil {
		return fmt.Errorf("%s: %w", s.dir, first)
	}
	c.RemoveEmpty(spoolDir) // fails, harmlessly, when something else is there
	return nil
}

// size reports the batches and bytes waiting in the spool.
func (s *spool) size() (batches int, bytes int64) {
	d, err := openSub(s.config, spoolDir, false)
	if err != nil {
		return 0, 0
	}
	defer d.Close()
	for _, e := range list(d) {
		batches++
		bytes += e.Size
	}
	return batches, bytes
}
