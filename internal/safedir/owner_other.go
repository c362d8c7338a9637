//go:build !unix

package safedir

import "io/fs"

// noFollow: os.Root refuses to leave its folder on these systems; the
// regular-file checks before and after an open do the rest.
const noFollow = 0

// checkOwner: ownership and mode bits are Unix notions; on other systems
// the folder's access control list is the user profile's.
func checkOwner(path string, fi fs.FileInfo) error { return nil }
