// Package devcmd holds the developer commands, a main package per folder
// (schemagen, ingestbench, insightsbench, proofreport, fakemodel), and
// what their mains share.
package devcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs the command name: parse reads its flags (exit 0 for -h, 2 for
// a bad one), run works until it is done or Ctrl-C (exit 1 on failure).
func Main[C any](name string, parse func([]string, io.Writer) (C, error), run func(context.Context, C, io.Writer, io.Writer) error) {
	cfg, err := parse(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+": FAILED:", err)
		os.Exit(1)
	}
}
