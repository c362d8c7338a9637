//go:build unix

package safedir

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// noFollow makes an open fail on a symbolic link.
const noFollow = syscall.O_NOFOLLOW

// checkOwner: the folder is the user's own and nobody else may write in it.
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &UnsafeError{path, "has no owner Fred can read"}
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return &UnsafeError{path, fmt.Sprintf("belongs to another user (uid %d, you are %d); it must be your own", st.Uid, uid)}
	}
	if m := fi.Mode().Perm(); m&0o022 != 0 {
		return &UnsafeError{path, fmt.Sprintf("is writable by others (mode %04o); chmod go-w it, or remove it", m)}
	}
	return nil
}
