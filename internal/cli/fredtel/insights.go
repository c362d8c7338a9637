package fredtel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/insights"
	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/schema"
)

func runInsights(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	return runInsightsAt(ctx, time.Now(), args, env, stdout, stderr)
}

// runInsightsAt is runInsights with the clock --since counts back from.
func runInsightsAt(ctx context.Context, now time.Time, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	var db, since, from, to, prices string
	opts := insights.Options{Tables: insights.TablesCentral, MinRepeats: 3}
	format := "text"
	const help = "Usage: fredtel insights [--db URL] [--since 7d | --from T [--to T]] [--tables central|self-hosted]\n" +
		"                        [--model NAME] [--agent NAME] [--format text|json] [--min-repeats N] [--prices FILE]\n\n" +
		"The six answers of the telemetry for a window of sessions: detected problems ranked by impact, where the\n" +
		"fast model gets stuck, dead slash commands, retry storms, tool loops, plan-mode adoption, permissions.\n" +
		"Computed inside the database; read-only. Definitions and the JSON form: docs/insights.md."
	if err := cli.Parse(env, args, stderr, help,
		dbSetting(&db, env),
		cli.Setting{Flag: "since", Value: cli.String(&since), Usage: "window: sessions started in the last `DURATION` (7d, 36h, 90m); default 7d"},
		cli.Setting{Flag: "from", Value: cli.String(&from), Usage: "window start, RFC 3339 or YYYY-MM-DD (UTC), inclusive"},
		cli.Setting{Flag: "to", Value: cli.String(&to), Usage: "window end, RFC 3339 or YYYY-MM-DD (UTC), exclusive; default now"},
		cli.Setting{Flag: "tables", Value: cli.OneOf(&opts.Tables, insights.TablesCentral, insights.TablesSelfHosted),
			Usage: "central (telemetry_*: the ingest server's) or self-hosted (dsc_*: a user's own database)"},
		cli.Setting{Flag: "model", Value: cli.String(&opts.Model), Usage: "only sessions that started on, or had a turn on, this model"},
		cli.Setting{Flag: "agent", Value: cli.String(&opts.Agent), Usage: "only sessions of this agent: " + strings.Join(schema.SessionFields().Agent.Enum(), ", ") + " (records without one are fred)"},
		cli.Setting{Flag: "format", Value: cli.OneOf(&format, "text", "json"), Usage: "text (aligned tables for a terminal) or json (docs/insights.md)"},
		cli.Setting{Flag: "min-repeats", Value: cli.Int(&opts.MinRepeats, 2, math.MaxInt), Usage: "identical consecutive calls that make a loop"},
		cli.Setting{Flag: "prices", Value: cli.String(&prices), Usage: "price table `FILE` (model, input and output price per 1M tokens) to show costs; none: no money shown"},
	); err != nil {
		return err
	}
	var err error
	if opts.From, opts.To, err = window(now, since, from, to); err != nil {
		return cli.Usagef("%v", err)
	}
	if prices != "" {
		if opts.Prices, err = insights.LoadPrices(prices); err != nil {
			return err
		}
	}
	r, err := insights.Compute(ctx, db, opts)
	if err != nil {
		if errors.Is(err, insights.ErrBadOptions) {
			return cli.Usagef("%s", strings.TrimPrefix(err.Error(), insights.ErrBadOptions.Error()+": "))
		}
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return r.WriteText(stdout)
}

// window turns --since, --from and --to into [from, to).
func window(now time.Time, since, from, to string) (time.Time, time.Time, error) {
	if since != "" && (from != "" || to != "") {
		return time.Time{}, time.Time{}, errors.New("--since and --from/--to: give one or the other")
	}
	end := now
	if to != "" {
		t, err := parseWhen(to)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--to: %v", err)
		}
		end = t
	}
	if from != "" {
		t, err := parseWhen(from)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--from: %v", err)
		}
		if !t.Before(end) {
			return time.Time{}, time.Time{}, fmt.Errorf("--from %s is not before --to %s", t.Format(schema.TimeLayout), end.Format(schema.TimeLayout))
		}
		return t, end, nil
	}
	if since == "" {
		since = "7d"
	}
	d, err := parseSince(since)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--since %q: %v", since, err)
	}
	return end.Add(-d), end, nil
}

// parseSince reads a duration with a d (day) unit besides Go's h, m, s.
func parseSince(s string) (time.Duration, error) {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 36500 {
			return 0, errors.New("want a positive duration such as 7d, 36h or 90m")
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return 0, errors.New("want a positive duration such as 7d, 36h or 90m")
		}
	}
	return d, nil
}

func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-11-30T09:00:00Z) or a date (2026-11-30)", s)
}
