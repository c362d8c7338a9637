package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/internal/redact"
	"github.com/fredcode/fredtel/internal/sim"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func runSimulate(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fredtel simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiURL := fs.String("url", "", "the ingest API `URL` to send to (central route), e.g. http://127.0.0.1:8700")
	// The environment keeps the key out of the process list (ps shows
	// every argument to every user of the machine).
	key := fs.String("key", env("FREDTEL_SIMULATE_KEY"), "API `KEY` (fred_live_…) every session sends with: one user (env FREDTEL_SIMULATE_KEY, which keeps it out of the process list)")
	serverDB := fs.String("server-db", "", "the ingest server's database `URL`: create a key for each of --users simulated users there instead of --key")
	db := fs.String("db", "", "self-hosted route: write the dsc_* tables of this database `URL` through the self-hosted writer, nothing sent")
	sessions := fs.Int("sessions", 300, "number of sessions")
	seed := fs.Uint64("seed", 1, "the seed: the same seed, sessions, users and --end make the same records")
	users := fs.Int("users", 0, "simulated users (default one per 25 sessions, at most 50); with --key there is one")
	truthFile := fs.String("truth", "", "write the ground truth (JSON) to `FILE`")
	span := fs.Duration("span", sim.DefaultSpan, "sessions start within this long before --end (1h to 29 days)")
	end := fs.String("end", "", "every session ends by this `TIME` (RFC 3339; default now)")
	concurrency := fs.Int("concurrency", sim.DefaultConcurrency, "sessions running at once")
	rate := fs.Float64("rate", sim.DefaultRate, "batches per second sent with each key (the server refuses more than 20/s by default); 0: no limit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fredtel simulate --url URL (--key KEY | --server-db URL [--users N]) [flags]\n"+
			"       fredtel simulate --db URL [flags]\n\n"+
			"Records a synthetic fleet of Fred sessions through the real client library: to the ingest API (central\n"+
			"route, through the central sender) or into a database of your own (self-hosted route). Known problems are\n"+
			"injected (stuck flash sessions, retry storms, tool loops, dead commands, plan drop-off, denied tools);\n"+
			"--truth writes what the insights must find.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *db != "" && (*apiURL != "" || *key != "" || *serverDB != ""):
		return &usageError{msg: "--db (self-hosted) goes alone: not with --url, --key or --server-db"}
	case *db == "" && *apiURL == "":
		return &usageError{msg: "where to: --url URL with --key or --server-db (central), or --db URL (self-hosted)"}
	case *apiURL != "" && (*key == "") == (*serverDB == ""):
		return &usageError{msg: "--url needs exactly one of --key KEY (one user) or --server-db URL (keys created for --users users)"}
	case *key != "" && *users > 1:
		return &usageError{msg: "--users: with --key every session is the key's user; use --server-db to simulate several"}
	case *sessions < 1 || *sessions > 1_000_000:
		return &usageError{msg: fmt.Sprintf("--sessions %d: want 1 to 1000000", *sessions)}
	case *users < 0 || *users > 10_000:
		return &usageError{msg: fmt.Sprintf("--users %d: want 1 to 10000", *users)}
	case *span < time.Hour || *span > 29*24*time.Hour:
		return &usageError{msg: fmt.Sprintf("--span %v: want 1h to 696h (29 days): the ingest API refuses records older than 30 days", *span)}
	case *concurrency < 1 || *concurrency > 1024:
		return &usageError{msg: fmt.Sprintf("--concurrency %d: want 1 to 1024", *concurrency)}
	case *rate < 0:
		return &usageError{msg: fmt.Sprintf("--rate %v: want 0 (no limit) or more", *rate)}
	}
	if *key != "" && !apikey.Valid(*key) {
		return &usageError{msg: "--key: want an API key (fred_live_…)"}
	}
	cfg := sim.Config{Sessions: *sessions, Seed: *seed, Users: *users, Span: *span, Concurrency: *concurrency, Rate: *rate}
	if *rate == 0 {
		cfg.Rate = -1
	}
	if *end != "" {
		t, err := time.Parse(time.RFC3339Nano, *end)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("--end %q: want RFC 3339, e.g. 2026-11-30T12:00:00Z", *end)}
		}
		if t.After(time.Now().Add(time.Minute)) {
			return &usageError{msg: fmt.Sprintf("--end %s is in the future: records must lie in the past", *end)}
		}
		cfg.End = t
	}
	if cfg.Users == 0 {
		cfg.Users = min(50, max(1, (*sessions+24)/25))
	}

	target := sim.Target{APIURL: *apiURL, DBURL: *db}
	where := "self-hosted → " + redact.URL(*db)
	if *apiURL != "" {
		where = "central → " + redact.URL(*apiURL)
		if *key != "" {
			target.Keys = []sim.UserKey{{Key: *key}}
		} else {
			keys, err := sim.CreateKeys(ctx, *serverDB, cfg.Users)
			if err != nil {
				return err
			}
			target.Keys = keys
			fmt.Fprintf(stderr, "fredtel simulate: %d %s created in %s (label %q; their keys are kept only while this runs)\n",
				len(keys), plural(len(keys), "user's key", "users' keys"), redact.URL(*serverDB), sim.KeyLabel)
		}
	}
	var truthOut *os.File
	if *truthFile != "" {
		// Made before the fleet runs: a typo in the path costs nothing.
		f, err := os.Create(*truthFile)
		if err != nil {
			return fmt.Errorf("--truth: %v", err)
		}
		defer f.Close()
		truthOut = f
	}

	bar := newProgress(stderr, *sessions, "simulating sessions")
	cfg.Progress = bar.add
	start := time.Now()
	tr, err := sim.Run(ctx, cfg, target)
	bar.finish()
	if err != nil {
		if truthOut != nil {
			truthOut.Close()
			os.Remove(*truthFile)
		}
		return err
	}
	fmt.Fprintf(stdout, "simulated %d sessions of %d %s (seed %d) in %.1fs: %d turns, %d tool calls, %d events; %s\n",
		tr.Totals.Sessions, len(tr.Users), plural(len(tr.Users), "user", "users"), *seed, time.Since(start).Seconds(),
		tr.Totals.Turns, tr.Totals.ToolCalls, tr.Totals.Events, where)
	fmt.Fprintf(stdout, "injected: %d stuck flash sessions, %d retry storms, %d tool loops (and %d near misses), %d dead commands, %d plan sessions that never act\n",
		len(tr.Stuck.Sessions), len(tr.RetryStorms.StormSessions), len(tr.ToolLoops.Loops), len(tr.ToolLoops.NearMisses),
		len(tr.Commands.Unused), tr.PlanMode.LeftPlanWithoutActing)
	if truthOut != nil {
		if err := writeTruth(truthOut, tr); err != nil {
			return fmt.Errorf("--truth: %v", err)
		}
		fmt.Fprintf(stdout, "ground truth: %s\n", *truthFile)
	}
	return nil
}

func writeTruth(f *os.File, tr *sim.Truth) error {
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tr); err != nil {
		return err
	}
	return f.Close()
}

// progress is a progress bar on a terminal, nothing otherwise.
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(w io.Writer, total int, what string) *progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(80*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progress) add() {
	if p.bar != nil {
		p.bar.Add(1)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
