package central

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// spool is a folder of undelivered batch bodies, one file each, oldest
// first by name. Files appear by rename, so a reader never sees half of
// one; a sender claims a file by renaming it, so two CLI processes never
// send the same file at once (and if both did, the server's idempotence
// would still keep one row per record). The folder stays under maxBytes:
// the oldest files go first.
type spool struct {
	dir      string
	maxBytes int64
}

const claimTag = ".claimed-"

// staleClaim: a claim older than this belongs to a process that died while
// sending; the file is sent again.
const staleClaim = 2 * time.Minute

func newSpool(configDir string, maxBytes int64) *spool {
	return &spool{dir: filepath.Join(configDir, "spool"), maxBytes: maxBytes}
}

func uniqueName() string {
	var b [6]byte
	rand.Read(b[:])
	return strconv.FormatInt(time.Now().UnixNano(), 10) + "-" + hex.EncodeToString(b[:]) + ".json"
}

// put adds a body, dropping the oldest files when over the bound. It
// returns how many batches were dropped to make room.
func (s *spool) put(body []byte) (int, error) {
	if int64(len(body)) > s.maxBytes {
		return 0, errors.New("batch larger than the spool")
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(s.dir, ".tmp-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return 0, err
	}
	if _, err := f.Write(body); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(f.Name(), filepath.Join(s.dir, uniqueName())); err != nil {
		return 0, err
	}
	return s.trim(), nil
}

type entry struct {
	name string
	size int64
}

func (s *spool) list() []entry {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil
	}
	var out []entry
	for _, de := range des {
		if de.IsDir() || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		out = append(out, entry{de.Name(), info.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// trim drops the oldest files until the spool fits its bound.
func (s *spool) trim() int {
	es := s.list()
	var total int64
	for _, e := range es {
		total += e.size
	}
	dropped := 0
	for _, e := range es {
		if total <= s.maxBytes {
			break
		}
		if os.Remove(filepath.Join(s.dir, e.name)) == nil {
			total -= e.size
			dropped++
		}
	}
	return dropped
}

// claim takes the oldest unclaimed body for sending.
func (s *spool) claim() (string, []byte, bool) {
	for _, e := range s.list() {
		name := e.name
		if i := strings.Index(name, claimTag); i >= 0 {
			ts, _ := strconv.ParseInt(name[i+len(claimTag):], 10, 64)
			if time.Since(time.Unix(0, ts)) < staleClaim {
				continue // another process is sending it
			}
			name = name[:i] // a dead process's claim: take it over
		}
		claimed := name + claimTag + strconv.FormatInt(time.Now().UnixNano(), 10)
		if os.Rename(filepath.Join(s.dir, e.name), filepath.Join(s.dir, claimed)) != nil {
			continue // someone else was faster
		}
		body, err := os.ReadFile(filepath.Join(s.dir, claimed))
		if err != nil {
			os.Remove(filepath.Join(s.dir, claimed))
			continue
		}
		return claimed, body, true
	}
	return "", nil, false
}

// done removes a delivered (or undeliverable) body.
func (s *spool) done(claimed string) { os.Remove(filepath.Join(s.dir, claimed)) }

// unclaim puts a body back for a later try.
func (s *spool) unclaim(claimed string) {
	orig := claimed
	if i := strings.Index(claimed, claimTag); i >= 0 {
		orig = claimed[:i]
	}
	os.Rename(filepath.Join(s.dir, claimed), filepath.Join(s.dir, orig))
}

// purge deletes every spooled body.
func (s *spool) purge() error {
	err := os.RemoveAll(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
