// Package safedir opens folders that must be the user's own, and reads,
// writes and deletes files in them without following a symbolic link.
//
// The telemetry client keeps its preferences, credentials, spool and audit
// log in the user's config folder. Another local user who controls that
// folder, or one of its subfolders, could plant a key and a preference, or a
// symbolic link that makes the sender upload, or delete, files of a folder
// they cannot read. So a folder is used only when it is:
//
//   - a directory, not a symbolic link to one ([os.Lstat]);
//   - owned by the user running the program (Unix);
//   - not writable by group or others (Unix).
//
// A [Dir] is opened as an [os.Root] and checked to be the very folder that
// was inspected, so swapping the path afterwards redirects nothing; in it a
// file is read only when it is a regular file, opened with O_NOFOLLOW and
// checked again after the open (the same file as inspected), and a file is
// renamed or deleted only when it is a regular file.
package safedir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrUnsafe is wrapped by every error about a folder or file that cannot be
// trusted: a symbolic link, someone else's, writable by others, or not of
// the expected type.
var ErrUnsafe = errors.New("unsafe")

// UnsafeError says what is wrong with a path.
type UnsafeError struct {
	Path string
	Why  string // e.g. "is a symbolic link"
}

func (e *UnsafeError) Error() string { return e.Path + " " + e.Why }

func (e *UnsafeError) Is(target error) bool { return target == ErrUnsafe }

// checkDir inspects what Lstat said of a folder.
func checkDir(path string, fi fs.FileInfo) error {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &UnsafeError{path, "is a symbolic link; Fred does not follow one there"}
	case !fi.IsDir():
		return &UnsafeError{path, "is not a folder"}
	}
	return checkOwner(path, fi)
}

// Dir is a trusted folder, opened. Close it after use.
type Dir struct {
	path string
	root *os.Root
}

// Path is the folder's path, for messages.
func (d *Dir) Path() string { return d.path }

// Close releases the folder.
func (d *Dir) Close() error { return d.root.Close() }

// Open opens the folder at path after checking it (see the package doc).
// With create, a missing folder is made (its parents too), mode 0700. A
// missing folder without create is an error that wraps fs.ErrNotExist.
func Open(path string, create bool) (*Dir, error) {
	if path == "" {
		return nil, errors.New("no folder")
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, err
		}
		fi, err = os.Lstat(path)
	}
	if err != nil {
		return nil, err
	}
	if err := checkDir(path, fi); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, err
	}
	return opened(path, fi, root)
}

// opened checks that root is the folder fi described: not a folder put in
// its place between the check and the open.
func opened(path string, fi fs.FileInfo, root *os.Root) (*Dir, error) {
	ri, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, err
	}
	if !os.SameFile(fi, ri) {
		root.Close()
		return nil, &UnsafeError{path, "changed while it was being opened"}
	}
	return &Dir{path: path, root: root}, nil
}

// Sub opens the subfolder name of d, checked as Open checks; with create a
// missing one is made, mode 0700. A missing one without create is an error
// that wraps fs.ErrNotExist.
func (d *Dir) Sub(name string, create bool) (*Dir, error) {
	path := filepath.Join(d.path, name)
	fi, err := d.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && create {
		if err := d.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		fi, err = d.root.Lstat(name)
	}
	if err != nil {
		return nil, err
	}
	if err := checkDir(path, fi); err != nil {
		return nil, err
	}
	root, err := d.root.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	return opened(path, fi, root)
}

// Entry is a regular file of a folder.
type Entry struct {
	Name string
	Size int64
}

// List returns the regular files of d whose names match; symbolic links,
// folders and other names are left out. Not sorted.
func (d *Dir) List(match func(name string) bool) ([]Entry, error) {
	f, err := d.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, de := range des {
		if !de.Type().IsRegular() || !match(de.Name()) {
			continue
		}
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		out = append(out, Entry{de.Name(), info.Size()})
	}
	return out, nil
}

// regular checks that name is a regular file of d, not following a link.
func (d *Dir) regular(name string) (fs.FileInfo, error) {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &UnsafeError{filepath.Join(d.path, name), "is not a regular file"}
	}
	return fi, nil
}

// ReadFile reads the regular file name of d, at most max bytes: a larger
// file is an error. It never follows a symbolic link.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	fi, err := d.regular(name)
	if err != nil {
		return nil, err
	}
	f, err := d.root.OpenFile(name, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	oi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(fi, oi) || !oi.Mode().IsRegular() {
		return nil, &UnsafeError{filepath.Join(d.path, name), "changed while it was being opened"}
	}
	if oi.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d expected", filepath.Join(d.path, name), oi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than the %d bytes expected", filepath.Join(d.path, name), max)
	}
	return b, nil
}

// TempPrefix begins the names of the files WriteFile writes before it
// renames them into place; a leftover one belongs to a writer that died.
const TempPrefix = ".tmp-"

// WriteFile writes data to name in d, mode 0600, atomically: into a new
// temporary file renamed into place, so a reader never sees half a file
// and a crash never leaves one. A symbolic link at name is replaced, never
// followed.
func (d *Dir) WriteFile(name string, data []byte) error {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := TempPrefix + hex.EncodeToString(rnd[:])
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.root.Rename(tmp, name)
	}
	if err != nil {
		d.root.Remove(tmp)
	}
	return err
}

// Rename renames the regular file old of d to new.
func (d *Dir) Rename(old, new string) error {
	if _, err := d.regular(old); err != nil {
		return err
	}
	return d.root.Rename(old, new)
}

// Remove deletes the regular file name of d; anything else is left alone
// (and is an error). A missing file is an error wrapping fs.ErrNotExist.
func (d *Dir) Remove(name string) error {
	if _, err := d.regular(name); err != nil {
		return err
	}
	return d.root.Remove(name)
}

// RemoveEmpty deletes the subfolder name of d if it is empty.
func (d *Dir) RemoveEmpty(name string) error {
	fi, err := d.root.Lstat(name)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return &UnsafeError{filepath.Join(d.path, name), "is not a folder"}
	}
	return d.root.Remove(name)
}
