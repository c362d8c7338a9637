// Package cli implements the fred and fredtel commands. The mains in cmd/
// only call [Fred] and [Fredtel]; everything here takes its arguments,
// environment and output streams as parameters, so tests run commands
// in-process without touching the real environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Getenv looks up an environment variable (os.Getenv in the mains).
type Getenv func(string) string

type command struct {
	summary string
	run     func(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) error
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func dispatch(ctx context.Context, prog, intro string, cmds map[string]command, args []string, env Getenv, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nUsage: %s COMMAND [flags]\n\nCommands:\n", intro, prog)
		names := make([]string, 0, len(cmds))
		for n := range cmds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
		}
		fmt.Fprintf(w, "\nRun '%s COMMAND -h' for the flags of a command.\n", prog)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", prog, args[0])
		usage(stderr)
		return 2
	}
	err := c.run(ctx, args[1:], env, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) { // -h: the flag package printed the usage
		return 0
	}
	switch e := err.(type) {
	case nil:
		return 0
	case *usageError:
		if e.msg != "" {
			fmt.Fprintf(stderr, "%s %s: %s\n", prog, args[0], e.msg)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "%s %s: %v\n", prog, args[0], err)
		return 1
	}
}

// parseFlags parses a command's flags, which take no positional
// argument: -h gives flag.ErrHelp (exit 0, the usage printed), a bad flag
// a usage error (exit 2, the flag package said what was wrong).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{}
	}
	if fs.NArg() > 0 {
		return &usageError{msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// dataDir is where fredtel keeps its embedded database by default:
// FREDTEL_DATA_DIR, else the per-user data folder of the OS.
func dataDir(env Getenv) string {
	if d := env("FREDTEL_DATA_DIR"); d != "" {
		return d
	}
	if d := env("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "fredtel")
	}
	home := env("HOME")
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "Application Support", "fredtel")
	case "windows":
		if d := env("LocalAppData"); d != "" {
			return filepath.Join(d, "fredtel")
		}
	}
	if home == "" {
		return ".fredtel"
	}
	return filepath.Join(home, ".local", "share", "fredtel")
}

// defaultDBURL is the embedded SQLite file in the data folder, unless
// FREDTEL_DB_URL says otherwise.
func defaultDBURL(env Getenv) string {
	if u := env("FREDTEL_DB_URL"); u != "" {
		return u
	}
	return "sqlite:" + filepath.Join(dataDir(env), "fredtel.db")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("v%d", x)
	}
	return strings.Join(s, ", ")
}
