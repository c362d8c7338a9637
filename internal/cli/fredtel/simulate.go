package fredtel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/internal/redact"
	"github.com/fredcode/fredtel/internal/sim"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func runSimulate(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	var apiURL, key, serverDB, db, truthFile string
	cfg := sim.Config{Sessions: 300, Span: sim.DefaultSpan, Concurrency: sim.DefaultConcurrency, Rate: sim.DefaultRate}
	const help = "Usage: fredtel simulate --url URL (--key KEY | --server-db URL [--users N]) [flags]\n" +
		"       fredtel simulate --db URL [flags]\n\n" +
		"Records a synthetic fleet of Fred sessions through the real client library: to the ingest API (central\n" +
		"route, through the central sender) or into a database of your own (self-hosted route). Known problems are\n" +
		"injected (stuck flash sessions, retry storms, tool loops, dead commands, plan drop-off, denied tools);\n" +
		"--truth writes what the insights must find."
	if err := cli.Parse(env, args, stderr, help,
		cli.Setting{Flag: "url", Value: cli.String(&apiURL), Usage: "the ingest API `URL` to send to (central route), e.g. http://127.0.0.1:8700"},
		// The environment keeps the key out of the process list (ps shows
		// every argument to every user of the machine).
		cli.Setting{Flag: "key", Env: "FREDTEL_SIMULATE_KEY", Secret: true, Usage: "API `KEY` (fred_live_…) every session sends with: one user",
			Value: cli.Match(&key, apikey.Valid, "an API key ("+apikey.Doc+")")},
		cli.Setting{Flag: "server-db", Value: cli.String(&serverDB), Usage: "the ingest server's database `URL`: create a key for each of --users simulated users there instead of --key"},
		cli.Setting{Flag: "db", Value: cli.String(&db), Usage: "self-hosted route: write the dsc_* tables of this database `URL` through the self-hosted writer, nothing sent"},
		cli.Setting{Flag: "sessions", Value: cli.Int(&cfg.Sessions, 1, 1_000_000), Usage: "number of sessions"},
		seedSetting(&cfg.Seed),
		cli.Setting{Flag: "users", Value: cli.Int(&cfg.Users, 0, 10_000), Usage: "simulated users (default one per 25 sessions, at most 50); with --key there is one"},
		cli.Setting{Flag: "truth", Value: cli.String(&truthFile), Usage: "write the ground truth (JSON) to `FILE`"},
		cli.Setting{Flag: "span", Value: cli.Duration(&cfg.Span, time.Hour, 29*24*time.Hour),
			Usage: "sessions start within this long before --end (1h to 29 days: the ingest API refuses records older than 30 days)"},
		cli.Setting{Flag: "end", Usage: "every session ends by this `TIME` (RFC 3339; default now)",
			Value: cli.Func(&cfg.End, func(s string) (time.Time, error) {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					return t, errors.New("want RFC 3339, e.g. 2026-11-30T12:00:00Z")
				}
				if t.After(time.Now().Add(time.Minute)) {
					return t, errors.New("is in the future: records must lie in the past")
				}
				return t, nil
			})},
		cli.Setting{Flag: "concurrency", Value: cli.Int(&cfg.Concurrency, 1, 1024), Usage: "sessions running at once"},
		cli.Setting{Flag: "rate", Value: cli.Float(&cfg.Rate, 0, math.Inf(1)),
			Usage: "batches per second sent with each key (the server refuses more than 20/s by default); 0: no limit"},
	); err != nil {
		return err
	}
	switch {
	case db != "" && (apiURL != "" || key != "" || serverDB != ""):
		return cli.Usagef("--db (self-hosted) goes alone: not with --url, --key or --server-db")
	case db == "" && apiURL == "":
		return cli.Usagef("where to: --url URL with --key or --server-db (central), or --db URL (self-hosted)")
	case apiURL != "" && (key == "") == (serverDB == ""):
		return cli.Usagef("--url needs exactly one of --key KEY (one user) or --server-db URL (keys created for --users users)")
	case key != "" && cfg.Users > 1:
		return cli.Usagef("--users: with --key every session is the key's user; use --server-db to simulate several")
	}
	if cfg.Rate == 0 {
		cfg.Rate = -1
	}
	if cfg.Users == 0 {
		cfg.Users = min(50, max(1, (cfg.Sessions+24)/25))
	}

	target := sim.Target{APIURL: apiURL, DBURL: db}
	where := "self-hosted → " + redact.URL(db)
	if apiURL != "" {
		where = "central → " + redact.URL(apiURL)
		if key != "" {
			target.Keys = []sim.UserKey{{Key: key}}
		} else {
			keys, err := sim.CreateKeys(ctx, serverDB, cfg.Users)
			if err != nil {
				return err
			}
			target.Keys = keys
			fmt.Fprintf(stderr, "fredtel simulate: %d %s created in %s (label %q; their keys are kept only while this runs)\n",
				len(keys), cli.Plural(len(keys), "user's key", "users' keys"), redact.URL(serverDB), sim.KeyLabel)
		}
	}
	var truthOut *os.File
	if truthFile != "" {
		// Made before the fleet runs: a typo in the path costs nothing.
		f, err := os.Create(truthFile)
		if err != nil {
			return fmt.Errorf("--truth: %v", err)
		}
		defer f.Close()
		truthOut = f
	}

	bar := newProgress(stderr, cfg.Sessions, "simulating sessions")
	cfg.Progress = bar.add
	start := time.Now()
	tr, err := sim.Run(ctx, cfg, target)
	bar.finish()
	if err != nil {
		if truthOut != nil {
			truthOut.Close()
			os.Remove(truthFile)
		}
		return err
	}
	fmt.Fprintf(stdout, "simulated %d sessions of %d %s (seed %d) in %.1fs: %d turns, %d tool calls, %d events; %s\n",
		tr.Totals.Sessions, len(tr.Users), cli.Plural(len(tr.Users), "user", "users"), cfg.Seed, time.Since(start).Seconds(),
		tr.Totals.Turns, tr.Totals.ToolCalls, tr.Totals.Events, where)
	fmt.Fprintf(stdout, "injected: %d stuck flash sessions, %d retry storms, %d tool loops (and %d near misses), %d dead commands, %d plan sessions that never act\n",
		len(tr.Stuck.Sessions), len(tr.RetryStorms.StormSessions), len(tr.ToolLoops.Loops), len(tr.ToolLoops.NearMisses),
		len(tr.Commands.Unused), tr.PlanMode.LeftPlanWithoutActing)
	if truthOut != nil {
		if err := writeTruth(truthOut, tr); err != nil {
			return fmt.Errorf("--truth: %v", err)
		}
		fmt.Fprintf(stdout, "ground truth: %s\n", truthFile)
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
