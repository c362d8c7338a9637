//go:build unix

package safedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOnlyRegularFilesAreTouched: a link, a folder or a FIFO under a name
// is never read, renamed or deleted; a regular file is, within its bound.
func TestOnlyRegularFilesAreTouched(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside.txt")
	os.WriteFile(outside, []byte("PRIVATE"), 0o600)
	dir := filepath.Join(base, "d")
	d, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if fi, _ := os.Lstat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("made %v, want 0700", fi.Mode().Perm())
	}
	os.Symlink(outside, filepath.Join(dir, "link"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFile("file", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	es, err := d.List(func(string) bool { return true })
	if err != nil || len(es) != 1 || es[0].Name != "file" || es[0].Size != 5 {
		t.Errorf("List = %v %v, want the one regular file", es, err)
	}
	for _, name := range []string{"link", "sub", "fifo"} {
		if _, err := d.ReadFile(name, 100); !errors.Is(err, ErrUnsafe) {
			t.Errorf("ReadFile(%s) = %v, want ErrUnsafe", name, err)
		}
		if err := d.Remove(name); !errors.Is(err, ErrUnsafe) {
			t.Errorf("Remove(%s) = %v, want ErrUnsafe", name, err)
		}
		if err := d.Rename(name, name+"2"); !errors.Is(err, ErrUnsafe) {
			t.Errorf("Rename(%s) = %v, want ErrUnsafe", name, err)
		}
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "PRIVATE" {
		t.Error("the link's target changed")
	}
	if b, err := d.ReadFile("file", 5); err != nil || string(b) != "hello" {
		t.Errorf("ReadFile(file) = %q %v", b, err)
	}
	if _, err := d.ReadFile("file", 4); err == nil {
		t.Error("ReadFile past its bound: no error")
	}
	// WriteFile over a link replaces the link.
	if err := d.WriteFile("link", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "PRIVATE" {
		t.Error("WriteFile wrote through a link")
	}
	if err := d.Remove("file"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("file", 5); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove: %v", err)
	}
	// A sub-folder that is a link is refused.
	os.Symlink(base, filepath.Join(dir, "sublink"))
	if _, err := d.Sub("sublink", true); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Sub(link) = %v, want ErrUnsafe", err)
	}
}
