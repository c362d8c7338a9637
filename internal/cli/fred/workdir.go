package fred

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// maxAgentsMD bounds how much of AGENTS.md is read (and hashed).
const maxAgentsMD = 1 << 20

// workdir describes the working directory dir as a session records it:
// dirty reports uncommitted changes (tracked or untracked files) in the git
// work tree dir is in, nil outside a repository or where git cannot say;
// agentsMD is the text of dir's AGENTS.md, "" without one. Only these two
// facts reach the library, which keeps a boolean and an HMAC of them.
func workdir(ctx context.Context, dir string) (dirty *bool, agentsMD string) {
	return gitDirty(ctx, dir), readAgentsMD(dir)
}

// gitDirty asks git, within a second: a session must not wait on a huge
// repository. GIT_OPTIONAL_LOCKS=0 keeps git status from taking the index
// lock under the user's own git commands.
func gitDirty(ctx context.Context, dir string) *bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--untracked-files=normal")
	cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0", "LC_ALL=C")
	var out countingWriter // the output itself is never kept
	cmd.Stdout = &out
	if cmd.Run() != nil {
		return nil // not a repository, no git, or too slow: unknown
	}
	d := out > 0
	return &d
}

// countingWriter counts the bytes written to it and keeps none.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

func readAgentsMD(dir string) string {
	f, err := os.Open(filepath.Join(dir, "AGENTS.md"))
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, maxAgentsMD))
	if err != nil {
		return ""
	}
	return string(b)
}
