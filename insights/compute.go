package insights

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fredcode/fredtel/schema"
)

// The enums the insights count by (copies of the declaration's).
var finishReasons, apiErrors = schema.TurnFields().FinishReason.Enum(), schema.TurnFields().APIErrorType.Enum()

// Compute opens the database at dbURL (postgres://, postgresql:// or
// sqlite:PATH), checks that it holds the tables of opts.Tables at the schema
// version this build reads, and runs the six analyses inside it, in one
// read-only snapshot. The errors wrap ErrBadOptions, ErrUnreachable,
// ErrNoTables, ErrSchemaVersion or ErrNoData, or a store.ErrBadURL, and
// their messages are one line with any password masked.
func Compute(ctx context.Context, dbURL string, opts Options) (*Report, error) {
	set, err := opts.normalise()
	if err != nil {
		return nil, err
	}
	var folded time.Duration
	return within(ctx, dbURL, set, "", func(d *db) error {
		if opts.noFold {
			return nil
		}
		t0 := time.Now()
		err := d.fold(ctx)
		folded = time.Since(t0)
		return err
	}, func(d *db, tx *sql.Tx) (*Report, error) {
		r, err := d.report(ctx, tx, &opts)
		if err == nil && d.dialect == schema.Postgres {
			r.Timings = append([]Timing{{Name: "fold", Duration: folded}}, r.Timings...)
		}
		return r, err
	})
}

// fold adds the turns committed since the last fold to turn_hours
// (PostgreSQL; fredtel serve folds every few seconds, a self-hosted
// database only here), before the report's snapshot: the report then
// counts few turns itself. A role that may not write (a reporting role, a
// standby) skips it, and the report counts the turns not folded: exact,
// and slower.
func (d *db) fold(ctx context.Context) error {
	if d.dialect != schema.Postgres {
		return nil
	}
	_, err := d.sql.ExecContext(ctx, schema.FoldSQL(d.set))
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) && (pe.Code == "42501" || pe.Code == "25006") { // insufficient_privilege, read_only_sql_transaction
		return nil
	}
	return d.fail("fold", err)
}

// within opens the set's tables at dbURL, checks their schema version and
// runs fn in one snapshot; an error of fn other than ErrNoData and
// ErrNoSession becomes a one-line error naming step (unless step is "":
// fn's errors are that already).
func within[T any](ctx context.Context, dbURL string, set schema.Set, step string, before func(*db) error, fn func(*db, *sql.Tx) (*T, error)) (*T, error) {
	d, err := open(ctx, dbURL, set)
	if err != nil {
		return nil, err
	}
	defer d.close()
	if err := d.checkVersion(ctx); err != nil {
		return nil, err
	}
	if before != nil {
		if err := before(d); err != nil {
			return nil, err
		}
	}
	tx, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	v, err := fn(d, tx)
	if err != nil && step != "" && !errors.Is(err, ErrNoData) && !errors.Is(err, ErrNoSession) {
		err = d.fail(step, err)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// stuckFromRollup: the stuck rule reads turn_counts when it can (a
// variable so a test compares it with reading the turns).
var stuckFromRollup = true

// jit is PostgreSQL's JIT setting for the report (a variable for the
// benchmark's comparison).
var jit = "off"

// querier is what the analyses run on: the snapshot's transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// run is one report being computed.
type run struct {
	d    *db
	tx   querier
	o    *Options
	ws   string // the window CTE
	args []any
	r    *Report
	// unpriced collects the models of priced impacts with no price.
	unpriced map[string]bool
}

// snapshot begins the read-only transaction every query of one answer
// runs in: on PostgreSQL one snapshot, so the answers describe the same
// data even while ingest goes on.
func (d *db) snapshot(ctx context.Context) (*sql.Tx, error) {
	var txo *sql.TxOptions
	if d.dialect == schema.Postgres {
		txo = &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	tx, err := d.sql.BeginTx(ctx, txo)
	if err != nil {
		return nil, d.fail("begin", err)
	}
	return tx, nil
}

func (d *db) report(ctx context.Context, tx *sql.Tx, o *Options) (*Report, error) {
	if d.dialect == schema.Postgres {
		// Sorts of a few million rows (the loop and plan analyses) stay in
		// memory instead of spilling to disk.
		if _, err := tx.ExecContext(ctx, "SET LOCAL work_mem = '128MB'"); err != nil {
			return nil, d.fail("settings", err)
		}
		if _, err := tx.ExecContext(ctx, "SET LOCAL jit = "+jit); err != nil {
			return nil, d.fail("settings", err)
		}
		// Joins that hand a few hundred thousand rows up (the slash
		// commands with their users) run in parallel workers: at the
		// default cost of a row passed up (0.1) PostgreSQL keeps them on
		// one core (docs/insights.md has the figures).
		if _, err := tx.ExecContext(ctx, "SET LOCAL parallel_tuple_cost = 0.001"); err != nil {
			return nil, d.fail("settings", err)
		}
	}
	ws, args := d.window(o)
	rn := &run{d: d, tx: tx, o: o, ws: ws, args: args, unpriced: map[string]bool{}}
	rn.r = &Report{
		Window:  Window{From: schema.TimeOf(o.From), To: schema.TimeOf(o.To)},
		Tables:  o.Tables,
		Filters: Filters{Model: o.Model, Agent: o.Agent},
		Counted: "users",
	}
	if d.set == schema.SelfHostedSet {
		rn.r.Counted = "sessions"
	}
	if err := rn.timed(ctx, "window", rn.checkData); err != nil {
		return nil, err
	}
	for _, a := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"stuck", rn.stuck},
		{"dead_commands", rn.deadCommands},
		{"retry_storms", rn.retryStorms},
		{"permissions", rn.permissions}, // before tool_loops: it counts calls per tool
		{"tool_loops", rn.toolLoops},
		{"plan_mode", rn.planMode},
	} {
		if err := rn.timed(ctx, a.name, a.fn); err != nil {
			return nil, err
		}
	}
	rn.problems()
	if o.Prices != nil {
		rn.r.Prices = &PriceInfo{Currency: o.Prices.Currency, Unpriced: sortedKeys(rn.unpriced)}
	}
	return rn.r, nil
}

func (rn *run) timed(ctx context.Context, name string, fn func(context.Context) error) error {
	t0 := time.Now()
	if err := fn(ctx); err != nil {
		if errors.Is(err, ErrNoData) {
			return err
		}
		return rn.d.fail(name, err)
	}
	rn.r.Timings = append(rn.r.Timings, Timing{Name: name, Duration: time.Since(t0)})
	return nil
}

// fail turns a driver error into a one-line error naming the step.
func (d *db) fail(step string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %s: %w", d.loc.Masked, step, err)
	}
	return fmt.Errorf("%s: %s: %w: %s", d.loc.Masked, step, ErrUnreachable, oneLine(err))
}

// query runs the analysis query body, prefixed with the window CTE, and
// calls scan for each row.
func (rn *run) query(ctx context.Context, body string, scan func(*sql.Rows) error) error {
	rows, err := rn.tx.QueryContext(ctx, rn.d.q("WITH "+rn.ws+", "+body), rn.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// checkData tells an empty database and an empty window apart, and counts
// the window's sessions and users.
func (rn *run) checkData(ctx context.Context) error {
	var n, users int64
	err := rn.query(ctx, "_x AS (SELECT 1) SELECT count(*), count(DISTINCT uid) FROM ws", func(r *sql.Rows) error {
		return r.Scan(&n, &users)
	})
	if err != nil {
		return err
	}
	if n > 0 {
		rn.r.Totals.Sessions, rn.r.Totals.Users = n, users
		return nil
	}
	var all int64
	var lo, hi sql.NullString
	q := fmt.Sprintf("SELECT count(*), CAST(min(started_at) AS text), CAST(max(started_at) AS text) FROM %s", rn.d.table("sessions"))
	if err := rn.tx.QueryRowContext(ctx, q).Scan(&all, &lo, &hi); err != nil {
		return err
	}
	if all == 0 {
		return fmt.Errorf("%s: %w: the %s tables hold no session", rn.d.loc.Masked, ErrNoData, rn.d.set)
	}
	filters := ""
	if rn.o.Model != "" || rn.o.Agent != "" {
		filters = " that match --model/--agent"
	}
	return fmt.Errorf("%s: %w: no session%s started between %s and %s (the %d sessions there started between %s and %s)",
		rn.d.loc.Masked, ErrNoData, filters, rn.o.From.Format(schema.TimeLayout), rn.o.To.Format(schema.TimeLayout),
		all, shortTime(lo.String), shortTime(hi.String))
}

// shortTime prints a stored timestamp of either dialect as TimeLayout.
func shortTime(s string) string {
	for _, l := range []string{schema.TimeLayout, "2006-01-02 15:04:05.999999-07", "2006-01-02 15:04:05.999999-07:00", "2006-01-02 15:04:05-07"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC().Format(schema.TimeLayout)
		}
	}
	return s
}

// ---- 1. stuck -------------------------------------------------------------

func (rn *run) stuck(ctx context.Context) error {
	o, d := rn.o, rn.d
	st := &rn.r.Stuck
	st.Models, st.StuckSessions, st.FastModels = []ModelStats{}, []StuckSession{}, []string{}
	// The models of the window, their turns, sessions and finish reasons:
	// from turn_counts (a row per session and model, kept by the database
	// as turns are written), not from the turns.
	byModel := map[string]*ModelStats{}
	var cols []string
	for _, f := range finishReasons {
		cols = append(cols, sum32("tc.finish_"+f))
	}
	err := rn.query(ctx, fmt.Sprintf(`_x AS (SELECT 1) SELECT tc.model, %s, count(*), %s
		FROM %s tc JOIN ws ON ws.session_id = tc.session_id GROUP BY tc.model`, sum32("tc.turns"), strings.Join(cols, ", "), d.table("turn_counts")),
		func(r *sql.Rows) error {
			ms := &ModelStats{FinishReasons: map[string]int64{}}
			reasons := make([]int64, len(finishReasons))
			dst := []any{&ms.Model, &ms.Turns, &ms.Sessions}
			for i := range reasons {
				dst = append(dst, &reasons[i])
			}
			if err := r.Scan(dst...); err != nil {
				return err
			}
			for i, n := range reasons {
				if n > 0 {
					ms.FinishReasons[finishReasons[i]] = n
				}
			}
			ms.Fast = isFast(o, ms.Model)
			byModel[ms.Model] = ms
			return nil
		})
	if err != nil {
		return err
	}
	a, err := rn.turnPercentiles(ctx)
	if err != nil {
		return err
	}
	for m, ms := range byModel {
		_, p := a.result("n" + m)
		ms.ToolCallsPerTurn = Percentiles{P50: p[0], P95: p[1], P99: p[2]}
		_, p = a.result("d" + m)
		ms.DurationMs = Percentiles{P50: p[0], P95: p[1], P99: p[2]}
	}
	for _, ms := range byModel {
		st.Models = append(st.Models, *ms)
		rn.r.Totals.Turns += ms.Turns
		if ms.Fast {
			st.FastModels = append(st.FastModels, ms.Model)
		}
	}
	most(st.Models, func(m ModelStats) (int64, string) { return m.Turns, m.Model })
	sort.Strings(st.FastModels)

	// Stuck sessions: fast-model turns up to the first swap to a stronger
	// model; a struggle is a turn that ended in length or error, or asked
	// for StruggleToolCalls tool calls or more.
	// The default rule is kept at ingest (turn_counts.struggles, with the
	// tokens and time of the turns): a session that never swapped is read
	// there; the turns are read only for the sessions that swapped (their
	// turns after the swap do not count), or for all with another rule.
	fromRollup := o.StruggleToolCalls == schema.StruggleToolCalls && stuckFromRollup
	swapped := "LEFT JOIN sw ON sw.session_id = t.session_id"
	if fromRollup {
		swapped = "JOIN sw ON sw.session_id = t.session_id"
	}
	q := fmt.Sprintf(`sw AS (SELECT e.session_id, min(e.ts) AS swap_at FROM %[1]s e JOIN ws ON ws.session_id = e.session_id
		WHERE e.name = 'model_swap' AND %[2]s AND NOT %[3]s GROUP BY e.session_id),
	ft AS (SELECT t.session_id, t.model, t.prompt_tokens, t.completion_tokens, t.duration_ms, sw.swap_at,
		CASE WHEN t.finish_reason IN ('length', 'error') OR t.num_tool_calls >= %[4]d THEN 1 ELSE 0 END AS struggle
		FROM %[5]s t JOIN ws ON ws.session_id = t.session_id %[8]s
		WHERE %[6]s AND (sw.swap_at IS NULL OR t.started_at < sw.swap_at))
	SELECT CAST(session_id AS text), max(model), sum(struggle), count(swap_at),
		sum(prompt_tokens), sum(completion_tokens), sum(duration_ms)
	FROM ft GROUP BY session_id HAVING sum(struggle) >= %[7]d OR count(swap_at) > 0`,
		d.table("events"), fast(o, "e.props->>'from'"), fast(o, "e.props->>'to'"), o.StruggleToolCalls,
		d.table("turns"), oneOf("t.model", st.FastModels), o.StruggleTurns, swapped)
	if fromRollup {
		q += fmt.Sprintf(`
	UNION ALL SELECT CAST(tc.session_id AS text), max(tc.model), %s, 0,
		sum(tc.prompt_tokens), sum(tc.completion_tokens), sum(tc.duration_ms)
	FROM %s tc JOIN ws ON ws.session_id = tc.session_id
	WHERE %s AND NOT EXISTS (SELECT 1 FROM sw WHERE sw.session_id = tc.session_id)
	GROUP BY tc.session_id HAVING %s >= %d`, sum32("tc.struggles"), d.table("turn_counts"), oneOf("tc.model", st.FastModels), sum32("tc.struggles"), o.StruggleTurns)
	}
	err = rn.query(ctx, q, func(r *sql.Rows) error {
		var s StuckSession
		var swapped int64
		if err := r.Scan(&s.SessionID, &s.Model, &s.StruggleTurns, &swapped, &s.Impact.InputTokens, &s.Impact.OutputTokens, &s.Impact.Ms); err != nil {
			return err
		}
		s.Swapped = swapped > 0
		flagged := s.StruggleTurns >= int64(o.StruggleTurns)
		if s.Swapped {
			st.Swapped++
		}
		if flagged {
			st.Flagged++
			if s.Swapped {
				st.Caught++
			}
			s.Rule = "struggle_turns"
			s.Impact.Tokens = s.Impact.InputTokens + s.Impact.OutputTokens
			o.Prices.price(&s.Impact, s.Model, rn.unpriced)
			st.StuckSessions = append(st.StuckSessions, s)
		}
		return nil
	})
	if err != nil {
		return err
	}
	most(st.StuckSessions, func(s StuckSession) (int64, string) { return s.Impact.Tokens, s.SessionID })
	st.Recall, st.FalseAlarms = ratio(st.Caught, st.Swapped), ratio(st.Flagged-st.Caught, st.Flagged)
	st.Rule = fmt.Sprintf("%d fast-model turns (before any swap to a stronger model) that end in length or error or ask for ≥ %d tool calls",
		o.StruggleTurns, o.StruggleToolCalls)
	st.Recommendation = rn.stuckRecommendation()
	return nil
}

// turnHours is the declaration's turn_hours.
var turnHours = schema.HourRollups()[0]

// hoursDisagreed counts the reports whose turn_hours disagreed with the
// turns (for the tests: never, when one writer writes a session's rows).
var hoursDisagreed atomic.Int64

// turnPercentiles are the percentiles of tool calls per turn (groups
// n+model) and of turn duration (d+model) of the window's turns.
//
// From turn_hours (PostgreSQL), for the hours wholly inside the window and
// without --model/--agent (it knows neither): its rows of those hours, plus the
// turns of the sessions of the partial hours at the window's edges,
// counted the same way. Tool calls are counted exactly there; a duration
// percentile gets the bucket that holds its rank, and then the exact
// values of that bucket, read from the index on (model, duration_ms) for
// the sessions of the window. Otherwise the turns are counted.
func (rn *run) turnPercentiles(ctx context.Context) (*pctScan, error) {
	d, o := rn.d, rn.o
	ps := []float64{0.5, 0.95, 0.99}
	lo, hi := o.From.Truncate(time.Hour), o.To.Truncate(time.Hour)
	if lo.Before(o.From) {
		lo = lo.Add(time.Hour)
	}
	records := func() (*pctScan, error) {
		// Counted by (model, tool calls, duration) first: a third fewer
		// rows to count per group than the turns twice over.
		return rn.percentiles(ctx, fmt.Sprintf(`tr AS (SELECT t.model, t.num_tool_calls AS nc, t.duration_ms AS dm, count(*) AS w
		FROM %s t JOIN ws ON ws.session_id = t.session_id GROUP BY t.model, t.num_tool_calls, t.duration_ms), `, d.table("turns")),
			`SELECT 'n' || model AS g, nc AS x0, w FROM tr UNION ALL SELECT 'd' || model AS g, dm AS x0, w FROM tr`, true, ps)
	}
	if o.countTurns || d.dialect != schema.Postgres || o.Model != "" || o.Agent != "" || !lo.Before(hi) {
		return records()
	}
	h0, h1 := lo.Unix()/3600, hi.Unix()/3600
	// The fold's horizon in this snapshot: turn_hours holds the pairs
	// (turn, session) whose greater fold_xid is below it; the others are
	// counted here. A literal, so that the planner sees how few rows of
	// the BRIN indexes are above it.
	var below int64
	if err := rn.tx.QueryRowContext(ctx, "SELECT below FROM "+turnHours.StateTable(d.set)).Scan(&below); err != nil {
		return nil, err
	}
	hour := schema.HourOf(d.dialect, "ws.started_at")
	fx := schema.FoldColumn
	edge := fmt.Sprintf(`FROM %[1]s t JOIN ws ON ws.session_id = t.session_id WHERE %[2]s < %[3]d OR %[2]s >= %[4]d
		UNION ALL SELECT t.model, t.num_tool_calls, t.duration_ms FROM %[1]s t JOIN ws ON ws.session_id = t.session_id
		WHERE t.%[5]s >= %[6]d AND %[2]s >= %[3]d AND %[2]s < %[4]d
		UNION ALL SELECT t.model, t.num_tool_calls, t.duration_ms FROM %[7]s s JOIN ws ON ws.session_id = s.session_id JOIN %[1]s t ON t.session_id = s.session_id
		WHERE s.%[5]s >= %[6]d AND t.%[5]s < %[6]d AND %[2]s >= %[3]d AND %[2]s < %[4]d`,
		d.table("turns"), hour, h0, h1, fx, below, d.table("sessions"))
	// The turns counted here, once for both measures.
	et := fmt.Sprintf("et AS MATERIALIZED (SELECT t.model, t.num_tool_calls, t.duration_ms %s), ", edge)
	src := fmt.Sprintf(`SELECT kind || g AS g, bucket AS x0, n AS w FROM (%s) h
		UNION ALL SELECT 'n' || model AS g, num_tool_calls AS x0, 1 AS w FROM et
		UNION ALL SELECT 'd' || model AS g, %s AS x0, 1 AS w FROM et`,
		turnHours.Counts(d.set, fmt.Sprintf("h.hour >= %d AND h.hour < %d", h0, h1)), turnHours.Bucket("d").Of(""))
	a := newPctScan(ps)
	type bucket struct {
		model       string
		lo, end     int64
		first, next int64
		total       int64
	}
	var buckets []bucket
	err := rn.query(ctx, et+d.pctRows(src, true, ps), func(r *sql.Rows) error {
		var g string
		var v pctVal
		var n int64
		if err := r.Scan(&g, &v.x, &v.first, &v.next, &n); err != nil {
			return err
		}
		if strings.HasPrefix(g, "n") {
			a.add(g, v, n)
			return nil
		}
		b := bucket{model: g[1:], lo: int64(v.x), first: v.first, next: v.next, total: n}
		b.end = schema.DurationBucketEnd(b.lo)
		buckets = append(buckets, b)
		return nil
	})
	if err != nil || len(buckets) == 0 {
		return a, cmp.Or(err, a.finish())
	}
	// The exact durations of those buckets, for the window's sessions:
	// each bucket is a short range of the index.
	var ranges []string
	for _, b := range buckets {
		ranges = append(ranges, fmt.Sprintf("SELECT t.model, t.duration_ms, t.session_id FROM %s t WHERE t.model = %s AND t.duration_ms >= %d AND t.duration_ms < %d",
			d.table("turns"), quote(b.model), b.lo, b.end))
	}
	type val struct{ x, n int64 }
	vals := map[string][]val{}
	err = rn.query(ctx, fmt.Sprintf(`v AS (%s)
	SELECT v.model, v.duration_ms, %s FROM v WHERE v.session_id IN (SELECT session_id FROM ws) GROUP BY v.model, v.duration_ms`, strings.Join(ranges, " UNION ALL "), count32),
		func(r *sql.Rows) error {
			var m string
			var v val
			if err := r.Scan(&m, &v.x, &v.n); err != nil {
				return err
			}
			vals[m] = append(vals[m], v)
			return nil
		})
	if err != nil {
		return nil, err
	}
	for _, b := range buckets {
		in := slices.DeleteFunc(slices.Clone(vals[b.model]), func(v val) bool { return v.x < b.lo || v.x >= b.end })
		slices.SortFunc(in, func(p, q val) int { return cmp.Compare(p.x, q.x) })
		rank := b.first
		for _, v := range in {
			a.add("d"+b.model, pctVal{x: float64(v.x), first: rank, next: rank + v.n}, b.total)
			rank += v.n
		}
		if rank != b.next {
			// turn_hours and the turns disagree (a session and its turns
			// written at the same instant by two transactions, neither
			// seeing the other's rows): the turns are the truth.
			hoursDisagreed.Add(1)
			return records()
		}
	}
	return a, a.finish()
}

func (rn *run) stuckRecommendation() string {
	st, o := &rn.r.Stuck, rn.o
	if len(st.FastModels) == 0 {
		return "no fast model in the window: nothing to recommend"
	}
	strong := ""
	var most int64
	for _, m := range st.Models {
		if !m.Fast && m.Turns > most {
			strong, most = m.Model, m.Turns
		}
	}
	if strong == "" {
		strong = "a stronger model"
	}
	rule := fmt.Sprintf("recommend %s after %d %s turns that end in length/error or make ≥ %d tool calls",
		strong, o.StruggleTurns, st.FastModels[0], o.StruggleToolCalls)
	if st.Flagged == 0 {
		return rule + ": no session of the window meets it"
	}
	if st.Swapped == 0 {
		return fmt.Sprintf("%s: it flags %s sessions; no user swapped to a stronger model, so its accuracy cannot be measured", rule, num(st.Flagged))
	}
	return fmt.Sprintf("%s: would have caught %.0f%% of the %s sessions whose user swapped up, %.0f%% false alarms",
		rule, 100*st.Recall, num(st.Swapped), 100*st.FalseAlarms)
}

// ---- 2. dead commands -----------------------------------------------------

func (rn *run) deadCommands(ctx context.Context) error {
	d := rn.d
	dc := &rn.r.DeadCommands
	dc.Commands, dc.Unused = []CommandUse{}, []string{}
	used := map[string]bool{}
	// Users per command: uses counted by (command, user) first, then the
	// pairs by command (hashing, where count(DISTINCT) sorts every use).
	q := fmt.Sprintf(`u AS (SELECT e.props->>'command' AS command, ws.uid FROM %s e JOIN ws ON ws.session_id = e.session_id WHERE e.name = 'slash_command'),
	cu AS (SELECT command, uid, %s AS n FROM u GROUP BY command, uid)
	SELECT command, %s, count(*) FROM cu GROUP BY command`, d.table("events"), count32, sum32("n"))
	err := rn.query(ctx, q, func(r *sql.Rows) error {
		var c CommandUse
		var name sql.NullString
		if err := r.Scan(&name, &c.Uses, &c.Users); err != nil {
			return err
		}
		c.Command = name.String
		used[c.Command] = true
		dc.Commands = append(dc.Commands, c)
		return nil
	})
	if err != nil {
		return err
	}
	// Catalogs repeat from session to session (one per build): unnest the
	// distinct ones only.
	q = fmt.Sprintf(`k AS (SELECT DISTINCT s.command_catalog FROM %s s JOIN ws ON ws.session_id = s.session_id)
	SELECT DISTINCT je.value FROM k, %s`, d.table("sessions"), d.catalogElems("k", "command_catalog"))
	err = rn.query(ctx, q, func(r *sql.Rows) error {
		var c string
		if err := r.Scan(&c); err != nil {
			return err
		}
		if !used[c] {
			dc.Unused = append(dc.Unused, c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(dc.Unused)
	most(dc.Commands, func(c CommandUse) (int64, string) { return c.Uses, c.Command })
	switch {
	case len(dc.Unused) > 0:
		dc.Finding = fmt.Sprintf("%d of the catalog's commands were never used (%s): remove them or make them discoverable", len(dc.Unused), listSome(dc.Unused, 6))
	default:
		dc.Finding = "every command in the catalog was used at least once"
	}
	return nil
}

// ---- 3. retry storms ------------------------------------------------------

func (rn *run) retryStorms(ctx context.Context) error {
	d, o := rn.d, rn.o
	rs := &rn.r.RetryStorms
	rs.ErrorTypes, rs.TurnErrors, rs.ByModel, rs.Attempts, rs.StormSessions = []ErrorTypeCount{}, []TurnErrorCount{}, []ModelRetries{}, []AttemptCount{}, []StormSession{}
	rs.BeforeStormRetries = []ToolRetries{}
	rs.StormThreshold = o.StormRetries
	// One read of the window's retries (their partial index), kept for the
	// statement (MATERIALIZED) with their counts per session: every count
	// and percentile of the analysis is a branch of one UNION ALL over them
	// (a query per figure read the retries eight times over).
	retries := fmt.Sprintf(`r AS MATERIALIZED (SELECT e.session_id, ws.model, e.ts, coalesce(e.props->>'error_type', 'other') AS et,
		CAST(e.props->>'delay_ms' AS bigint) AS delay, CAST(e.props->>'latency_ms' AS bigint) AS lat,
		coalesce(CAST(e.props->>'attempt' AS bigint), 0) AS attempt
		FROM %[1]s e JOIN ws ON ws.session_id = e.session_id WHERE e.name = 'api_retry'),
	ps AS MATERIALIZED (SELECT session_id, max(model) AS model, %[2]s AS n,
		CAST(coalesce(sum(delay), 0) + coalesce(sum(lat), 0) AS bigint) AS ms FROM r GROUP BY session_id), `,
		d.table("events"), count32)
	// The percentiles: of the delays (all, and per error type), of the
	// retries per session, and of the durations of all sessions and of the
	// storm sessions; rows of kind p, next to the counts.
	dur := d.durationMs("ws.started_at", "ws.ended_at")
	src := fmt.Sprintf(`SELECT 'e:' || et AS g, delay AS x0 FROM r WHERE delay IS NOT NULL
		UNION ALL SELECT 'delay' AS g, delay AS x0 FROM r WHERE delay IS NOT NULL
		UNION ALL SELECT 'per' AS g, n AS x0 FROM ps
		UNION ALL SELECT 'all' AS g, %[1]s AS x0 FROM ws WHERE ws.ended_at IS NOT NULL
		UNION ALL SELECT 'storm' AS g, %[1]s AS x0 FROM ws JOIN ps ON ps.session_id = ws.session_id WHERE ps.n >= %[2]d AND ws.ended_at IS NOT NULL`,
		dur, o.StormRetries)
	pct := newPctScan([]float64{0.5, 0.8, 0.95, 0.99})
	// Who hits storms: the tool called just before each of their retries
	// (an index probe per retry of a storm session only).
	q := fmt.Sprintf(`%[4]s
	SELECT 'e', et, '', count(*), count(DISTINCT session_id), %[5]s FROM r GROUP BY et
	UNION ALL SELECT 'm', model, '', %[1]s, count(*), %[5]s FROM ps GROUP BY model
	UNION ALL SELECT 'a', CAST(attempt AS text), '', count(*), 0, %[5]s FROM r GROUP BY attempt
	UNION ALL SELECT 's', CAST(session_id AS text), model, n, ms, %[5]s FROM ps WHERE n >= %[2]d
	UNION ALL SELECT 'b', coalesce((SELECT tc.tool_name FROM %[3]s tc WHERE tc.session_id = r.session_id AND tc.started_at <= r.ts
		ORDER BY tc.started_at DESC, tc.seq DESC LIMIT 1), '(none)'), '', count(*), 0, %[5]s
		FROM r JOIN ps ON ps.session_id = r.session_id WHERE ps.n >= %[2]d GROUP BY 2
	UNION ALL SELECT 'p', CAST(g AS text), '', 0, 0, CAST(x0 AS double precision), cum - n, cum, total FROM pc WHERE %[6]s`,
		sum32("n"), o.StormRetries, d.table("tool_calls"), pctCTEs(src, false), "CAST(0 AS double precision), 0, 0, 0", d.pctNear(pct.ps))
	err := rn.query(ctx, retries+q, func(r *sql.Rows) error {
		var kind, key, model string
		var a, b, first, next, total int64
		var x float64
		if err := r.Scan(&kind, &key, &model, &a, &b, &x, &first, &next, &total); err != nil {
			return err
		}
		switch kind {
		case "e":
			rs.ErrorTypes = append(rs.ErrorTypes, ErrorTypeCount{ErrorType: key, Retries: a, Sessions: b})
			rs.Retries += a
		case "m":
			rs.ByModel = append(rs.ByModel, ModelRetries{Model: key, Retries: a, Sessions: b})
		case "a":
			n, err := strconv.ParseInt(key, 10, 64)
			if err != nil {
				return err
			}
			rs.Attempts = append(rs.Attempts, AttemptCount{Attempt: n, Retries: a})
		case "s":
			s := StormSession{SessionID: key, Model: model, Retries: a, Impact: Impact{Ms: b}}
			o.Prices.price(&s.Impact, s.Model, rn.unpriced)
			rs.StormSessions = append(rs.StormSessions, s)
		case "b":
			rs.BeforeStormRetries = append(rs.BeforeStormRetries, ToolRetries{ToolName: key, Retries: a})
		case "p":
			pct.add(key, pctVal{x: x, first: first, next: next}, total)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := pct.finish(); err != nil {
		return err
	}
	sort.Slice(rs.Attempts, func(i, j int) bool { return rs.Attempts[i].Attempt < rs.Attempts[j].Attempt })
	most(rs.StormSessions, func(s StormSession) (int64, string) { return s.Impact.Ms, s.SessionID })
	three := func(g string) Percentiles {
		_, p := pct.result(g)
		return Percentiles{P50: p[0], P95: p[2], P99: p[3]}
	}
	for i := range rs.ErrorTypes {
		_, p := pct.result("e:" + rs.ErrorTypes[i].ErrorType)
		rs.ErrorTypes[i].DelayP80Ms = p[1]
	}
	rs.DelayMs = three("delay")
	rs.Sessions, _ = pct.result("per")
	rs.RetriesPerSession = three("per")
	rs.SessionDurationMs.All, rs.SessionDurationMs.Storm = three("all"), three("storm")
	// The turns' own API errors, from turn_counts: per class, the turns and
	// the sessions with one.
	// (The sessions are counted by DISTINCT over the few rows with
	// an error, not by grouping every row by session first.)
	var sums []string
	for _, e := range apiErrors {
		sums = append(sums, fmt.Sprintf("coalesce(%s, 0), count(DISTINCT tc.session_id) FILTER (WHERE tc.error_%s > 0)", sum32("tc.error_"+e), e))
	}
	q = fmt.Sprintf(`_x AS (SELECT 1) SELECT %s FROM %s tc JOIN ws ON ws.session_id = tc.session_id`, strings.Join(sums, ", "), d.table("turn_counts"))
	err = rn.query(ctx, q, func(r *sql.Rows) error {
		v := make([]int64, 2*len(apiErrors))
		dst := make([]any, len(v))
		for i := range v {
			dst[i] = &v[i]
		}
		if err := r.Scan(dst...); err != nil {
			return err
		}
		for i, e := range apiErrors {
			if v[2*i] > 0 {
				rs.TurnErrors = append(rs.TurnErrors, TurnErrorCount{ErrorType: e, Turns: v[2*i], Sessions: v[2*i+1]})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	most(rs.ErrorTypes, func(e ErrorTypeCount) (int64, string) { return e.Retries, e.ErrorType })
	most(rs.TurnErrors, func(e TurnErrorCount) (int64, string) { return e.Turns, e.ErrorType })
	most(rs.ByModel, func(m ModelRetries) (int64, string) { return m.Retries, m.Model })
	most(rs.BeforeStormRetries, func(t ToolRetries) (int64, string) { return t.Retries, t.ToolName })
	rs.Recommendation = rn.retryRecommendation()
	return nil
}

func (rn *run) retryRecommendation() string {
	rs := &rn.r.RetryStorms
	if rs.Retries == 0 {
		return "no API retries in the window"
	}
	top := rs.ErrorTypes[0]
	var waited int64
	for _, s := range rs.StormSessions {
		waited += s.Impact.Ms
	}
	msg := fmt.Sprintf("%s retries in %s sessions, %.0f%% %s (80%% waited ≤ %s)", num(rs.Retries), num(rs.Sessions),
		100*ratio(top.Retries, rs.Retries), top.ErrorType, fmtMs(top.DelayP80Ms))
	var late, lateN int64
	for _, a := range rs.Attempts {
		if a.Attempt >= 4 {
			late += a.Retries
			lateN++
		}
	}
	if len(rs.StormSessions) > 0 {
		msg += fmt.Sprintf("; %s storm sessions (≥ %d retries) waited %s", num(int64(len(rs.StormSessions))), rs.StormThreshold, fmtMs(float64(waited)))
	}
	if late > 0 {
		msg += fmt.Sprintf("; %.0f%% of retries were attempt 4 or later: cap attempts at 4 and start the backoff of %s at %s",
			100*ratio(late, rs.Retries), top.ErrorType, fmtMs(top.DelayP80Ms))
	} else {
		msg += fmt.Sprintf(": a backoff base of %s covers 80%% of %s retries", fmtMs(top.DelayP80Ms), top.ErrorType)
	}
	return msg
}

// ---- 4. tool loops --------------------------------------------------------

func (rn *run) toolLoops(ctx context.Context) error {
	d, o := rn.d, rn.o
	tl := &rn.r.ToolLoops
	tl.MinRepeats, tl.Loops, tl.ByTool, tl.ByModel = o.MinRepeats, []Loop{}, []ToolLoopAgg{}, []ModelLoops{}
	// Calls the client marked (schema v3: each call carries the id of its
	// run's first call and its place in the run) are read from the partial
	// index of the repeats: a loop is a run_start whose run reaches
	// MinRepeats, with no sort of the calls. Sessions with unmarked calls
	// (older clients; tool_counts.unmarked) are found by sorting their calls.
	// The turns a loop spans, for their tokens and model: looked up per
	// loop by the session's index (a join let the planner hash every turn).
	span := func(agg string) string {
		return fmt.Sprintf("(SELECT %s FROM %s t WHERE t.session_id = r.session_id AND t.seq BETWEEN r.stseq AND r.etseq)", agg, d.table("turns"))
	}
	spanned := fmt.Sprintf(`SELECT CAST(r.session_id AS text), r.tool_name, r.repeats, r.unknown, r.changed, %s, r.stseq, r.scseq,
		%s, %s, %s, r.dur FROM runs r`, span("max(t.model)"), span("count(*)"), span("coalesce(sum(t.prompt_tokens), 0)"), span("coalesce(sum(t.completion_tokens), 0)"))
	unmarked := fmt.Sprintf(`um AS (SELECT DISTINCT tk.session_id FROM %[1]s tk WHERE tk.unmarked > 0 AND tk.session_id IN (SELECT session_id FROM ws))`, d.table("tool_counts"))
	marked := fmt.Sprintf(`%[4]s,
	cr AS (SELECT tc.session_id, tc.run_start, tc.run_len, tc.result_fingerprint AS res, tc.duration_ms AS dur, t.seq AS tseq
		FROM %[1]s tc JOIN ws ON ws.session_id = tc.session_id JOIN %[2]s t ON t.turn_id = tc.turn_id
		WHERE tc.run_len >= 2 AND NOT EXISTS (SELECT 1 FROM um WHERE um.session_id = tc.session_id)),
	mr AS (SELECT session_id, run_start, max(run_len) AS repeats, count(*) - count(res) AS nulls, min(res) AS lo, max(res) AS hi,
		max(tseq) AS etseq, sum(dur) AS dur FROM cr GROUP BY session_id, run_start HAVING max(run_len) >= %[3]d),
	runs AS (SELECT mr.session_id, mr.run_start AS grp, f.tool_name, mr.repeats,
		mr.nulls + CASE WHEN f.result_fingerprint IS NULL THEN 1 ELSE 0 END AS unknown,
		CASE WHEN mr.lo = f.result_fingerprint AND mr.hi = f.result_fingerprint THEN 0 ELSE 1 END AS changed,
		ft.seq AS stseq, f.seq AS scseq, mr.etseq, mr.dur + f.duration_ms AS dur
		FROM mr JOIN %[1]s f ON f.call_id = mr.run_start JOIN %[2]s ft ON ft.turn_id = f.turn_id)
	%[5]s`, d.table("tool_calls"), d.table("turns"), o.MinRepeats, unmarked, spanned)
	// The calls of unmarked sessions in order (turns by seq, calls by seq
	// in the turn). A continuation is a call with the tool and args of the
	// call before it; continuations are rare, so after the one sort only
	// they go on: consecutive continuations (an island) plus the call
	// before them make a run, and runs of MinRepeats or more are loops.
	// Only then are the spanned turns read, for their tokens. The sort
	// carries 64-bit keys of the fingerprints (key64). ord packs (turn seq,
	// call seq) into one bigint (each is at most 1,000,000 < 2^20): one
	// sort key, one lag for the run's first call.
	sorted := fmt.Sprintf(`%[6]s,
	c AS (SELECT tc.session_id, t.seq * 1048576 + tc.seq AS ord, tc.tool_name,
		%[4]s AS k, %[5]s AS res, tc.duration_ms AS dur
		FROM %[1]s tc JOIN um ON um.session_id = tc.session_id JOIN %[2]s t ON t.turn_id = tc.turn_id),
	o AS (SELECT c.*, row_number() OVER w AS pos, lag(k) OVER w AS pk, lag(res) OVER w AS pres,
		lag(dur) OVER w AS pdur, lag(ord) OVER w AS pord
		FROM c WINDOW w AS (PARTITION BY session_id ORDER BY ord)),
	ks AS (SELECT o.*, pos - row_number() OVER (PARTITION BY session_id ORDER BY pos) AS grp FROM o WHERE pk = k),
	i AS (SELECT ks.*, first_value(pord) OVER v AS sord, first_value(pdur) OVER v AS sdur
		FROM ks WINDOW v AS (PARTITION BY session_id, grp ORDER BY pos)),
	runs AS (SELECT session_id, grp, min(tool_name) AS tool_name, count(*) + 1 AS repeats,
		sum(CASE WHEN res IS NULL OR pres IS NULL THEN 1 ELSE 0 END) AS unknown,
		sum(CASE WHEN res <> pres THEN 1 ELSE 0 END) AS changed,
		min(sord) / 1048576 AS stseq, min(sord) %% 1048576 AS scseq, max(ord) / 1048576 AS etseq, sum(dur) + min(sdur) AS dur
		FROM i GROUP BY session_id, grp HAVING count(*) + 1 >= %[3]d)
	%[7]s`, d.table("tool_calls"), d.table("turns"), o.MinRepeats, d.key64("tc.tool_name || ':' || tc.args_fingerprint"), d.key64("tc.result_fingerprint"), unmarked, spanned)

	for _, q := range []string{marked, sorted} {
		if err := rn.query(ctx, q, rn.scanLoop); err != nil {
			return err
		}
	}
	sort.Slice(tl.Loops, func(i, j int) bool {
		a, b := tl.Loops[i], tl.Loops[j]
		if a.Impact.Ms != b.Impact.Ms {
			return a.Impact.Ms > b.Impact.Ms
		}
		if a.SessionID != b.SessionID {
			return a.SessionID < b.SessionID
		}
		if a.StartTurnSeq != b.StartTurnSeq {
			return a.StartTurnSeq < b.StartTurnSeq
		}
		return a.StartCallSeq < b.StartCallSeq
	})
	calls := map[string]int64{}
	for _, t := range rn.r.Permissions.Tools {
		calls[t.ToolName] = t.Calls
	}
	byTool, byModel := map[string]*ToolLoopAgg{}, map[string]*ModelLoops{}
	toolSessions, modelSessions := map[string]map[string]bool{}, map[string]map[string]bool{}
	for _, l := range tl.Loops {
		bt := byTool[l.ToolName]
		if bt == nil {
			bt = &ToolLoopAgg{ToolName: l.ToolName, Calls: calls[l.ToolName]}
			byTool[l.ToolName], toolSessions[l.ToolName] = bt, map[string]bool{}
		}
		bm := byModel[l.Model]
		if bm == nil {
			bm = &ModelLoops{Model: l.Model}
			byModel[l.Model], modelSessions[l.Model] = bm, map[string]bool{}
		}
		bt.Loops++
		bm.Loops++
		if l.Kind == "stuck" {
			bt.Stuck++
			bm.Stuck++
		}
		toolSessions[l.ToolName][l.SessionID] = true
		modelSessions[l.Model][l.SessionID] = true
	}
	for name, bt := range byTool {
		bt.Sessions = int64(len(toolSessions[name]))
		if bt.Calls > 0 {
			bt.Per1000Calls = 1000 * float64(bt.Loops) / float64(bt.Calls)
		}
		tl.ByTool = append(tl.ByTool, *bt)
	}
	for name, bm := range byModel {
		bm.Sessions = int64(len(modelSessions[name]))
		tl.ByModel = append(tl.ByModel, *bm)
	}
	most(tl.ByTool, func(t ToolLoopAgg) (int64, string) { return t.Loops, t.ToolName })
	most(tl.ByModel, func(m ModelLoops) (int64, string) { return m.Loops, m.Model })
	switch {
	case len(tl.Loops) == 0:
		tl.Finding = fmt.Sprintf("no run of %d or more identical calls", o.MinRepeats)
	case tl.Stuck > 0:
		top := tl.ByTool[0]
		tl.Finding = fmt.Sprintf("%s stuck loops (same call, same result, %d+ times in a row), %s polling, %s unknown; most on %s (%.1f per 1,000 calls): tell the agent to break the loop after %d identical results",
			num(tl.Stuck), o.MinRepeats, num(tl.Polling), num(tl.Unknown), top.ToolName, top.Per1000Calls, o.MinRepeats-1)
	default:
		tl.Finding = fmt.Sprintf("%d loops, none proven stuck (%d polling, %d unknown: records without result_fingerprint, schema v1)", len(tl.Loops), tl.Polling, tl.Unknown)
	}
	return nil
}

// scanLoop reads a loop: from the marked runs or from the sorted calls.
func (rn *run) scanLoop(r *sql.Rows) error {
	tl, o := &rn.r.ToolLoops, rn.o
	var l Loop
	var unknown, changed int64
	if err := r.Scan(&l.SessionID, &l.ToolName, &l.Repeats, &unknown, &changed, &l.Model, &l.StartTurnSeq, &l.StartCallSeq, &l.Turns,
		&l.Impact.InputTokens, &l.Impact.OutputTokens, &l.Impact.Ms); err != nil {
		return err
	}
	switch {
	case unknown > 0:
		l.Kind = "unknown"
		tl.Unknown++
	case changed == 0:
		l.Kind = "stuck"
		tl.Stuck++
	default:
		l.Kind = "polling"
		tl.Polling++
	}
	l.Impact.Tokens = l.Impact.InputTokens + l.Impact.OutputTokens
	o.Prices.price(&l.Impact, l.Model, rn.unpriced)
	tl.Loops = append(tl.Loops, l)
	return nil
}

// ---- 5. plan mode ---------------------------------------------------------

func (rn *run) planMode(ctx context.Context) error {
	d := rn.d
	pm := &rn.r.PlanMode
	// A plan session has a plan-mode turn or a mode_change to plan; it acted
	// when an act-mode turn started after the first of those. "Back to plan
	// too early": a stretch of one or two act turns between plan turns.
	// The plan turns come from their partial index. A session's whole
	// sequence of turns is read only when its plan turns leave a gap in
	// their seqs (or share one): plan turns of consecutive seqs have no act
	// turn between them (a turn sharing a seq with another, which no client
	// writes, is not looked for).
	// Whether a plan session acted is a probe of its turns by time, one
	// session at a time (a scalar subquery with LIMIT 1): written as EXISTS,
	// PostgreSQL misjudges the number of plan sessions by orders of
	// magnitude and hashes every act turn of the table instead.
	q := fmt.Sprintf(`pt AS (SELECT t.session_id, min(t.started_at) AS fp,
		CASE WHEN max(t.seq) - min(t.seq) + 1 > count(*) OR count(*) > count(DISTINCT t.seq) THEN 1 ELSE 0 END AS gap
		FROM %[1]s t JOIN ws ON ws.session_id = t.session_id WHERE t.mode = 'plan' GROUP BY t.session_id),
	gp AS (SELECT session_id FROM pt WHERE gap = 1),
	pe AS (SELECT e.session_id, min(e.ts) AS fp FROM %[2]s e JOIN ws ON ws.session_id = e.session_id
		WHERE e.name = 'mode_change' AND e.props->>'to' = 'plan' GROUP BY e.session_id),
	ps AS (SELECT ws.session_id, CASE WHEN pt.fp IS NULL THEN pe.fp WHEN pe.fp IS NULL OR pt.fp <= pe.fp THEN pt.fp ELSE pe.fp END AS fp
		FROM ws LEFT JOIN pt ON pt.session_id = ws.session_id LEFT JOIN pe ON pe.session_id = ws.session_id
		WHERE pt.fp IS NOT NULL OR pe.fp IS NOT NULL),
	tm AS (SELECT t.session_id, t.seq, t.mode, CASE WHEN lag(t.mode) OVER w = t.mode THEN 0 ELSE 1 END AS brk
		FROM %[1]s t JOIN gp ON gp.session_id = t.session_id WINDOW w AS (PARTITION BY t.session_id ORDER BY t.seq, t.turn_id)),
	tr AS (SELECT session_id, mode, sum(brk) OVER (PARTITION BY session_id ORDER BY seq ROWS UNBOUNDED PRECEDING) AS run FROM tm),
	runs AS (SELECT session_id, run, min(mode) AS mode, count(*) AS n FROM tr GROUP BY session_id, run),
	early AS (SELECT DISTINCT a.session_id FROM runs a
		JOIN runs b ON b.session_id = a.session_id AND b.run = a.run - 1 AND b.mode = 'plan'
		JOIN runs c ON c.session_id = a.session_id AND c.run = a.run + 1 AND c.mode = 'plan'
		WHERE a.mode = 'act' AND a.n <= 2)
	SELECT (SELECT count(*) FROM ws), (SELECT count(*) FROM ps),
		(SELECT count(*) FROM ps WHERE (SELECT 1 FROM %[1]s t WHERE t.session_id = ps.session_id AND t.mode = 'act' AND t.started_at > ps.fp LIMIT 1) IS NOT NULL),
		(SELECT count(*) FROM early)`, d.table("turns"), d.table("events"))
	err := rn.query(ctx, q, func(r *sql.Rows) error {
		return r.Scan(&pm.Sessions, &pm.PlanSessions, &pm.PlanToAct, &pm.BackToPlanWithin2Turns)
	})
	if err != nil {
		return err
	}
	pm.LeftPlanWithoutActing = pm.PlanSessions - pm.PlanToAct
	pm.PlanShare = ratio(pm.PlanSessions, pm.Sessions)
	if pm.PlanSessions == 0 {
		pm.Finding = "no session used plan mode: make it discoverable (a hint when a request spans several files)"
	} else {
		pm.Finding = fmt.Sprintf("%.0f%% of sessions plan; %.0f%% of those never act afterwards and %.0f%% switch back to plan within 2 act turns: look at where plans stall",
			100*pm.PlanShare, 100*ratio(pm.LeftPlanWithoutActing, pm.PlanSessions), 100*ratio(pm.BackToPlanWithin2Turns, pm.PlanSessions))
	}
	return nil
}

// ---- 6. permissions -------------------------------------------------------

func (rn *run) permissions(ctx context.Context) error {
	d := rn.d
	pe := &rn.r.Permissions
	pe.Tools = []ToolPermissions{}
	// tool_counts: the calls per session and tool, kept by the database's
	// triggers as calls are written (a few rows per session, not a scan of
	// every call).
	q := fmt.Sprintf(`_x AS (SELECT 1) SELECT tk.tool_name, %s, %s, %s, %s
	FROM %s tk JOIN ws ON ws.session_id = tk.session_id GROUP BY tk.tool_name`, sum32("tk.calls"), sum32("tk.auto_allowed"), sum32("tk.user_allowed"), sum32("tk.denied"), d.table("tool_counts"))
	err := rn.query(ctx, q, func(r *sql.Rows) error {
		var t ToolPermissions
		if err := r.Scan(&t.ToolName, &t.Calls, &t.AutoAllowed, &t.UserAllowed, &t.Denied); err != nil {
			return err
		}
		t.DeniedShare = ratio(t.Denied, t.Calls)
		pe.Tools = append(pe.Tools, t)
		rn.r.Totals.ToolCalls += t.Calls
		return nil
	})
	if err != nil {
		return err
	}
	most(pe.Tools, func(t ToolPermissions) (float64, string) { return t.DeniedShare, t.ToolName })
	heavy := rn.denialHeavy()
	switch {
	case len(pe.Tools) == 0:
		pe.Finding = "no tool calls in the window"
	case len(heavy) > 0:
		pe.Finding = fmt.Sprintf("%s denied in %.0f%% of calls: ask less often or make the tool safer by default", heavy[0].ToolName, 100*heavy[0].DeniedShare)
	default:
		pe.Finding = fmt.Sprintf("no tool is denied in %.0f%% of its calls or more (%d calls at least)", 100*denialShare, denialMinCalls)
	}
	return nil
}

// A tool is denial-heavy when at least denialShare of at least
// denialMinCalls calls were denied.
const (
	denialShare    = 0.3
	denialMinCalls = 20
)

func (rn *run) denialHeavy() []ToolPermissions {
	var out []ToolPermissions
	for _, t := range rn.r.Permissions.Tools {
		if t.Calls >= denialMinCalls && t.DeniedShare >= denialShare {
			out = append(out, t)
		}
	}
	return out
}

// ---- problems -------------------------------------------------------------

func (rn *run) problems() {
	r := rn.r
	r.Problems = []Problem{}
	if n := len(r.Stuck.StuckSessions); n > 0 {
		p := Problem{Kind: "stuck_sessions", Count: int64(n), Sessions: int64(n), Fix: r.Stuck.Recommendation}
		for _, s := range r.Stuck.StuckSessions {
			p.Impact.add(s.Impact)
		}
		r.Problems = append(r.Problems, p)
	}
	for _, kind := range []string{"stuck", "unknown"} {
		p := Problem{Kind: "tool_loops", Fix: fmt.Sprintf("hint the agent to break a loop after %d identical calls with identical results", r.ToolLoops.MinRepeats-1)}
		if kind == "unknown" {
			p = Problem{Kind: "tool_loops_unverified", Fix: "upgrade clients to schema v2 (result_fingerprint) to tell stuck loops from polling"}
		}
		sessions := map[string]bool{}
		for _, l := range r.ToolLoops.Loops {
			if l.Kind == kind {
				p.Count++
				sessions[l.SessionID] = true
				p.Impact.add(l.Impact)
			}
		}
		if p.Count > 0 {
			p.Sessions = int64(len(sessions))
			r.Problems = append(r.Problems, p)
		}
	}
	if n := len(r.RetryStorms.StormSessions); n > 0 {
		p := Problem{Kind: "retry_storms", Count: int64(n), Sessions: int64(n), Fix: r.RetryStorms.Recommendation}
		for _, s := range r.RetryStorms.StormSessions {
			p.Impact.add(s.Impact)
		}
		r.Problems = append(r.Problems, p)
	}
	if heavy := rn.denialHeavy(); len(heavy) > 0 {
		r.Problems = append(r.Problems, Problem{Kind: "denial_heavy_tools", Count: int64(len(heavy)), Fix: r.Permissions.Finding})
	}
	if n := len(r.DeadCommands.Unused); n > 0 {
		r.Problems = append(r.Problems, Problem{Kind: "dead_commands", Count: int64(n), Fix: r.DeadCommands.Finding})
	}
	// Ranked by money when every problem is fully priced, else by wall
	// time, then tokens: a storm spends time, not tokens.
	byCost := rn.o.Prices != nil
	for _, p := range r.Problems {
		if p.Impact.UnpricedTokens > 0 {
			byCost = false
		}
	}
	sort.SliceStable(r.Problems, func(i, j int) bool {
		a, b := r.Problems[i].Impact, r.Problems[j].Impact
		if byCost {
			ca, cb := costOf(a), costOf(b)
			if ca != cb {
				return ca > cb
			}
		}
		if a.Ms != b.Ms {
			return a.Ms > b.Ms
		}
		return a.Tokens > b.Tokens
	})
}

// most sorts xs by the number of by descending, then by its name in byte
// order: ties broken in Go, the same on every database collation.
func most[T any, N int64 | float64](xs []T, by func(T) (N, string)) {
	sort.Slice(xs, func(i, j int) bool {
		a, an := by(xs[i])
		b, bn := by(xs[j])
		return a > b || a == b && an < bn
	})
}

func costOf(i Impact) float64 {
	if i.Cost == nil {
		return 0
	}
	return *i.Cost
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func listSome(xs []string, n int) string {
	if len(xs) <= n {
		return "/" + joinSlash(xs)
	}
	return "/" + joinSlash(xs[:n]) + fmt.Sprintf(" and %d more", len(xs)-n)
}

func joinSlash(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", /"
		}
		s += x
	}
	return s
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 60_000:
		return fmt.Sprintf("%.1f min", ms/60_000)
	case ms >= 1000:
		return fmt.Sprintf("%.1f s", ms/1000)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}
