// Package cli is what the fred and fredtel commands share: dispatching a
// command, its settings (flag, environment variable, default, parse and
// check, secret) and its exit code. The commands themselves live in one
// package per binary, internal/cli/fred and internal/cli/fredtel, so that
// fred links none of the server; this package is standard library only.
//
// Everything takes its arguments, environment and output streams as
// parameters, so tests run commands in-process without touching the real
// environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"
)

// Getenv looks up an environment variable (os.Getenv in the mains).
type Getenv func(string) string

// Command is one command of a binary.
type Command struct {
	Summary string
	Run     func(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) error
}

// UsageError is a mistake in the command line or a setting: exit code 2.
// An empty Msg means the flag package already said what was wrong.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Usagef is a UsageError.
func Usagef(format string, a ...any) error { return &UsageError{Msg: fmt.Sprintf(format, a...)} }

// Dispatch runs the command args[0] of prog and returns the exit code: 0
// done (or -h), 1 failed, 2 bad usage.
func Dispatch(ctx context.Context, prog, intro string, cmds map[string]Command, args []string, env Getenv, stdout, stderr io.Writer) int {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nUsage: %s COMMAND [flags]\n\nCommands:\n", intro, prog)
		names := slices.Sorted(maps.Keys(cmds))
		for _, n := range names {
			fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].Summary)
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
	err := c.Run(ctx, args[1:], env, stdout, stderr)
	var ue *UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp): // -h: the flag package printed the usage
		return 0
	case errors.As(err, &ue):
		if ue.Msg != "" {
			fmt.Fprintf(stderr, "%s %s: %s\n", prog, args[0], ue.Msg)
		}
		return 2
	default:
		fmt.Fprintf(stderr, "%s %s: %v\n", prog, args[0], err)
		return 1
	}
}

// Plural is one or many as n says.
func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// Serve serves hs on ln until ctx ends, then shuts it down, giving the
// requests in flight up to grace to finish. It returns the server's own
// error, or nil after a clean stop.
func Serve(ctx context.Context, hs *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }() // returns once Shutdown starts
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
