// Command insightsbench times `fredtel insights` on a large central
// database (issue 13): it creates a PostgreSQL database, loads a synthetic
// fleet with COPY (not through HTTP), by default 100,000 sessions, 2,000,000
// turns, 10,000,000 tool calls and 1,000,000 events, then computes the full
// report several times and prints the time of each analysis and of the
// whole, against the goals: each analysis ≤ 1 s, the report ≤ 3 s.
//
//	scripts/bench-insights [--scale 1] [--runs 3] [--keep] [--reuse URL] [--ddl SQL]... [--json]
//
// --scale 0.01 builds 1/100 of the data (a minute on a laptop); --keep
// leaves the database and prints its URL, --reuse URL times a database
// kept before without loading again, and --ddl runs a statement first (a
// candidate index, say: what it would buy, before the schema has it). It exits
// 0 whenever it measured, goals met or not; 1 when the run failed; 2 on a bad
// command line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/devcmd"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/jackc/pgx/v5"
)

const (
	goalEach  = time.Second
	goalWhole = 3 * time.Second
)

type config struct {
	scale    float64
	runs     int
	keep     bool
	reuse    string
	adminURL string
	json     bool
	seed     uint64
	ddl      []string
}

func main() { devcmd.Main("insightsbench", parseFlags, run) }

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("insightsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	fs.Float64Var(&cfg.scale, "scale", 1, "share of the full size (100,000 sessions, 2M turns, 10M tool calls, 1M events) to load")
	fs.IntVar(&cfg.runs, "runs", 3, "reports computed; the median and best of each analysis are printed")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the benchmark database (its URL is printed)")
	fs.StringVar(&cfg.reuse, "reuse", "", "time the database at `URL` (kept by an earlier --keep run) instead of loading one")
	fs.StringVar(&cfg.adminURL, "admin-url", testdb.AdminURL(), "PostgreSQL `URL` allowed to CREATE DATABASE (env DATABASE_URL)")
	fs.BoolVar(&cfg.json, "json", false, "print the result as JSON")
	fs.Uint64Var(&cfg.seed, "seed", 1, "fleet seed")
	fs.Func("ddl", "a statement run on the database before timing, e.g. a candidate index (repeatable): what it buys, before the schema gets it", func(s string) error {
		cfg.ddl = append(cfg.ddl, s)
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: insightsbench [flags]\n\nLoads a synthetic fleet into a fresh PostgreSQL database with COPY and times each\n"+
			"analysis of fredtel insights over it (goals: each ≤ 1 s, the whole report ≤ 3 s).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.scale <= 0 || cfg.scale > 10:
		return nil, errors.New("--scale: want more than 0 and at most 10")
	case cfg.runs < 1 || cfg.runs > 100:
		return nil, errors.New("--runs: want 1 to 100")
	}
	return cfg, nil
}

// result is what a run prints.
type result struct {
	Scale     float64            `json:"scale"`
	Rows      map[string]int64   `json:"rows"`
	LoadS     float64            `json:"load_s,omitempty"`
	Runs      int                `json:"runs"`
	MedianMs  map[string]float64 `json:"median_ms"`
	BestMs    map[string]float64 `json:"best_ms"`
	WholeMs   float64            `json:"whole_median_ms"`
	Order     []string           `json:"order"`
	GoalsMet  bool               `json:"goals_met"`
	Problems  int                `json:"problems"`
	Loops     int                `json:"loops"`
	Stuck     int                `json:"stuck_sessions"`
	Storms    int                `json:"storm_sessions"`
	DBURL     string             `json:"db_url,omitempty"`
	StartedAt string             `json:"started_at"`
}

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "insightsbench: "+format+"\n", a...) }
	res := &result{Scale: cfg.scale, Runs: cfg.runs, StartedAt: time.Now().UTC().Format(schema.TimeLayout)}
	dbURL := cfg.reuse
	var from, to time.Time
	if dbURL == "" {
		var err error
		var drop func() error
		dbURL, drop, err = testdb.Create(ctx, cfg.adminURL, "fredtel_insights_bench_")
		if err != nil {
			return err
		}
		if cfg.keep {
			logf("database kept: %s", store.MaskURL(dbURL))
			res.DBURL = store.MaskURL(dbURL)
		} else {
			defer drop()
		}
		t0 := time.Now()
		g := newGen(cfg.seed, cfg.scale, t0)
		if err := load(ctx, dbURL, g, logf); err != nil {
			return err
		}
		res.LoadS = time.Since(t0).Seconds()
		from, to = g.from, g.to
	} else {
		// A kept database: its whole span.
		from, to = time.Time{}, time.Time{}
	}
	if err := runDDL(ctx, dbURL, cfg.ddl, logf); err != nil {
		return err
	}
	rows, err := countRows(ctx, dbURL)
	if err != nil {
		return err
	}
	res.Rows = rows
	logf("timing %d reports over %d sessions, %d turns, %d tool calls, %d events", cfg.runs,
		rows["telemetry_sessions"], rows["telemetry_turns"], rows["telemetry_tool_calls"], rows["telemetry_events"])
	per := map[string][]time.Duration{}
	var whole []time.Duration
	for i := 0; i < cfg.runs; i++ {
		t0 := time.Now()
		r, err := insights.Compute(ctx, dbURL, insights.Options{Tables: insights.TablesCentral, From: from, To: to})
		if err != nil {
			return err
		}
		whole = append(whole, time.Since(t0))
		if i == 0 {
			res.Order = nil
			for _, t := range r.Timings {
				res.Order = append(res.Order, t.Name)
			}
			res.Problems, res.Loops, res.Stuck, res.Storms = len(r.Problems), len(r.ToolLoops.Loops), len(r.Stuck.StuckSessions), len(r.RetryStorms.StormSessions)
		}
		for _, t := range r.Timings {
			per[t.Name] = append(per[t.Name], t.Duration)
		}
		logf("report %d: %v", i+1, whole[i].Round(time.Millisecond))
	}
	res.MedianMs, res.BestMs = map[string]float64{}, map[string]float64{}
	res.GoalsMet = true
	for name, ds := range per {
		res.MedianMs[name], res.BestMs[name] = ms(median(ds)), ms(best(ds))
		if median(ds) > goalEach {
			res.GoalsMet = false
		}
	}
	res.WholeMs = ms(median(whole))
	if median(whole) > goalWhole {
		res.GoalsMet = false
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "fredtel insights over %d sessions, %d turns, %d tool calls, %d events\n",
		rows["telemetry_sessions"], rows["telemetry_turns"], rows["telemetry_tool_calls"], rows["telemetry_events"])
	if res.LoadS > 0 {
		fmt.Fprintf(stdout, "loaded with COPY in %.1f s\n", res.LoadS)
	}
	fmt.Fprintf(stdout, "%-14s %10s %10s %8s\n", "analysis", "median", "best", "goal")
	for _, name := range res.Order {
		mark := "ok"
		if res.MedianMs[name] > ms(goalEach) {
			mark = "OVER"
		}
		fmt.Fprintf(stdout, "%-14s %8.0f ms %8.0f ms %8s\n", name, res.MedianMs[name], res.BestMs[name], mark)
	}
	mark := "ok"
	if res.WholeMs > ms(goalWhole) {
		mark = "OVER"
	}
	fmt.Fprintf(stdout, "%-14s %8.0f ms %8.0f ms %8s   (%d runs; goals: each ≤ 1 s, whole ≤ 3 s)\n", "whole report", res.WholeMs, ms(best(whole)), mark, cfg.runs)
	fmt.Fprintf(stdout, "found: %d problems, %d loops, %d stuck sessions, %d storm sessions\n", res.Problems, res.Loops, res.Stuck, res.Storms)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func best(ds []time.Duration) time.Duration {
	b := ds[0]
	for _, d := range ds {
		b = min(b, d)
	}
	return b
}

// runDDL runs the --ddl statements, then ANALYZE so the planner knows them.
func runDDL(ctx context.Context, dbURL string, stmts []string, logf func(string, ...any)) error {
	if len(stmts) == 0 {
		return nil
	}
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	for _, s := range append(stmts, "ANALYZE") {
		t0 := time.Now()
		if _, err := c.Exec(ctx, s); err != nil {
			return fmt.Errorf("--ddl %q: %w", s, err)
		}
		logf("%s: %v", s, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

func countRows(ctx context.Context, dbURL string) (map[string]int64, error) {
	s, err := store.Open(ctx, dbURL, store.Options{Set: schema.CentralSet})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Count(ctx)
}
