package insights

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/schema"
)

// Trends is the window of a report cut into equal time buckets, and the
// distributions behind the stuck analysis, for charts. Every record is
// counted in the bucket of its session's start (the window is a set of
// sessions, as in [Compute]), so each column sums to the report's totals.
// Columns are parallel: T[i] is the start of bucket i.
type Trends struct {
	Window Window `json:"window"`
	// Counted is what Users counts: "users" on the central tables,
	// "sessions" on the self-hosted ones (no user_id there), as Report's.
	Counted string `json:"counted"`
	// StepMs is the bucket width; T the bucket starts in Unix seconds.
	StepMs int64   `json:"step_ms"`
	T      []int64 `json:"t"`

	Sessions  []int64 `json:"sessions"`
	Users     []int64 `json:"users"`
	Turns     []int64 `json:"turns"`
	ToolCalls []int64 `json:"tool_calls"`
	Tokens    []int64 `json:"tokens"`
	// TurnErrors: turns that ended in an API error; ToolErrors: calls with
	// outcome error; Denied: calls the user denied; Retries: api_retry
	// events.
	TurnErrors []int64 `json:"turn_errors"`
	ToolErrors []int64 `json:"tool_errors"`
	Denied     []int64 `json:"denied"`
	Retries    []int64 `json:"retries"`
	// DurationMs are the percentiles of turn duration per bucket (null:
	// no turn).
	DurationP50 []*float64 `json:"duration_p50"`
	DurationP95 []*float64 `json:"duration_p95"`
	DurationP99 []*float64 `json:"duration_p99"`

	// Histograms of the turns of each model.
	DurationEdges  []int64          `json:"duration_edges_ms"`
	ToolCallEdges  []int64          `json:"tool_call_edges"`
	ModelHistogram []ModelHistogram `json:"models"`
}

// ModelHistogram counts a model's turns by duration and by tool calls:
// Duration[i] is the turns with DurationEdges[i] ≤ duration_ms <
// DurationEdges[i+1] (the last bin is open), the same for ToolCalls.
type ModelHistogram struct {
	Model     string  `json:"model"`
	Duration  []int64 `json:"duration"`
	ToolCalls []int64 `json:"tool_calls"`
}

// Bin edges of the histograms: roughly logarithmic, where turn durations
// and tool-call counts spread.
var (
	DurationEdges = []int64{0, 250, 500, 1000, 2000, 4000, 8000, 15000, 30000, 60000, 120000}
	ToolCallEdges = []int64{0, 1, 2, 3, 4, 6, 8, 12, 16, 24}
)

// steps are the bucket widths Trends picks from.
var steps = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour,
	12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

// ComputeTrends cuts the window of opts into at most maxBuckets buckets
// (default 60) of a round width, bounded by the first and last session
// of the window when the window is wider than the data. Errors as Compute;
// an empty window is ErrNoData.
func ComputeTrends(ctx context.Context, dbURL string, opts Options, maxBuckets int) (*Trends, error) {
	set, err := opts.normalise()
	if err != nil {
		return nil, err
	}
	if maxBuckets <= 0 {
		maxBuckets = 60
	}
	if maxBuckets > 1000 {
		return nil, fmt.Errorf("%w: %d buckets: want at most 1000", ErrBadOptions, maxBuckets)
	}
	return within(ctx, dbURL, set, "trends", nil, func(d *db, tx *sql.Tx) (*Trends, error) { return d.trends(ctx, tx, &opts, maxBuckets) })
}

// epochMs is SQL for the timestamp column col in milliseconds since 1970.
func (d *db) epochMs(col string) string {
	if d.dialect == schema.Postgres {
		return "CAST(floor(extract(epoch FROM " + col + ") * 1000) AS bigint)"
	}
	// TimeLayout text: seconds from strftime, milliseconds from the text.
	return "(CAST(strftime('%s', " + col + ") AS INTEGER) * 1000 + CAST(substr(" + col + ", 21, 3) AS INTEGER))"
}

// binCase is SQL for the index of the bin of edges that col falls in.
func binCase(col string, edges []int64) string {
	var b strings.Builder
	b.WriteString("CASE")
	for i := len(edges) - 1; i > 0; i-- {
		fmt.Fprintf(&b, " WHEN %s >= %d THEN %d", col, edges[i], i)
	}
	b.WriteString(" ELSE 0 END")
	return b.String()
}

func (d *db) trends(ctx context.Context, tx *sql.Tx, o *Options, maxBuckets int) (*Trends, error) {
	ws, args := d.window(o)
	query := func(body string, scan func(*sql.Rows) error) error {
		rows, err := tx.QueryContext(ctx, d.q("WITH "+ws+", "+body), args...)
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
	// The range: the window, narrowed to the sessions in it.
	var lo, hi sql.NullInt64
	err := query(fmt.Sprintf("_x AS (SELECT 1) SELECT min(%[1]s), max(%[1]s) FROM ws", d.epochMs("started_at")), func(r *sql.Rows) error {
		return r.Scan(&lo, &hi)
	})
	if err != nil {
		return nil, err
	}
	if !lo.Valid {
		return nil, fmt.Errorf("%s: %w: no session in the window", d.loc.Masked, ErrNoData)
	}
	from, to := o.From.UnixMilli(), o.To.UnixMilli()
	if lo.Int64 > from {
		from = lo.Int64
	}
	if hi.Int64+1 < to {
		to = hi.Int64 + 1
	}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if (to-from+s.Milliseconds()-1)/s.Milliseconds() <= int64(maxBuckets) {
			step = s
			break
		}
	}
	sm := step.Milliseconds()
	if from > o.From.UnixMilli() {
		// Round the first bucket down to the step (a day at 00:00 UTC), but
		// never before the window.
		from = max(from-from%sm, o.From.UnixMilli())
	}
	n := int((to - from + sm - 1) / sm)
	tr := &Trends{Window: Window{From: schema.TimeOf(o.From), To: schema.TimeOf(o.To)}, StepMs: sm, Counted: "users",
		DurationEdges: DurationEdges, ToolCallEdges: ToolCallEdges, ModelHistogram: []ModelHistogram{}}
	if d.set == schema.SelfHostedSet {
		tr.Counted = "sessions"
	}
	cols := []*[]int64{&tr.T, &tr.Sessions, &tr.Users, &tr.Turns, &tr.ToolCalls, &tr.Tokens, &tr.TurnErrors, &tr.ToolErrors, &tr.Denied, &tr.Retries}
	for _, c := range cols {
		*c = make([]int64, n)
	}
	tr.DurationP50, tr.DurationP95, tr.DurationP99 = make([]*float64, n), make([]*float64, n), make([]*float64, n)
	for i := range tr.T {
		tr.T[i] = (from + int64(i)*sm) / 1000
	}
	wb := fmt.Sprintf("wb AS (SELECT ws.session_id, ws.uid, CAST((%s - %d) / %d AS bigint) AS b FROM ws) ", d.epochMs("ws.started_at"), from, sm)
	// inBucket checks a bucket index from the database before it is used.
	inBucket := func(b int64) (int, error) {
		if b < 0 || b >= int64(n) {
			return 0, fmt.Errorf("bucket %d outside 0..%d", b, n-1)
		}
		return int(b), nil
	}
	err = query(wb+"SELECT b, count(*), count(DISTINCT uid) FROM wb GROUP BY b", func(r *sql.Rows) error {
		var b, s, u int64
		if err := r.Scan(&b, &s, &u); err != nil {
			return err
		}
		i, err := inBucket(b)
		if err != nil {
			return err
		}
		tr.Sessions[i], tr.Users[i] = s, u
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = query(wb+fmt.Sprintf(`SELECT wb.b, count(*), coalesce(sum(t.prompt_tokens + t.completion_tokens), 0),
		count(t.api_error_type) FROM %s t JOIN wb ON wb.session_id = t.session_id GROUP BY wb.b`, d.table("turns")), func(r *sql.Rows) error {
		var b, c, tok, e int64
		if err := r.Scan(&b, &c, &tok, &e); err != nil {
			return err
		}
		i, err := inBucket(b)
		if err != nil {
			return err
		}
		tr.Turns[i], tr.Tokens[i], tr.TurnErrors[i] = c, tok, e
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = query(wb+fmt.Sprintf(`SELECT wb.b, count(*), count(*) FILTER (WHERE tc.outcome = 'error'), count(*) FILTER (WHERE tc.permission = 'denied')
		FROM %s tc JOIN wb ON wb.session_id = tc.session_id GROUP BY wb.b`, d.table("tool_calls")), func(r *sql.Rows) error {
		var b, c, e, den int64
		if err := r.Scan(&b, &c, &e, &den); err != nil {
			return err
		}
		i, err := inBucket(b)
		if err != nil {
			return err
		}
		tr.ToolCalls[i], tr.ToolErrors[i], tr.Denied[i] = c, e, den
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = query(wb+fmt.Sprintf(`SELECT wb.b, count(*) FROM %s e JOIN wb ON wb.session_id = e.session_id WHERE e.name = 'api_retry' GROUP BY wb.b`,
		d.table("events")), func(r *sql.Rows) error {
		var b, c int64
		if err := r.Scan(&b, &c); err != nil {
			return err
		}
		i, err := inBucket(b)
		if err != nil {
			return err
		}
		tr.Retries[i] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	durs := newPctScan([]float64{0.5, 0.95, 0.99})
	err = query(wb+", "+d.pctRows(fmt.Sprintf("SELECT wb.b AS g, t.duration_ms AS x0 FROM %s t JOIN wb ON wb.session_id = t.session_id", d.table("turns")), false,
		durs.ps), durs.scan)
	if err == nil {
		err = durs.finish()
	}
	if err != nil {
		return nil, err
	}
	for _, g := range durs.order {
		b, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bucket %q: %w", g, err)
		}
		i, err := inBucket(b)
		if err != nil {
			return nil, err
		}
		_, p := durs.result(g)
		tr.DurationP50[i], tr.DurationP95[i], tr.DurationP99[i] = &p[0], &p[1], &p[2]
	}

	// Histograms by model.
	hist := map[string]*ModelHistogram{}
	for _, h := range []struct {
		col   string
		edges []int64
		pick  func(*ModelHistogram) []int64
	}{
		{"t.duration_ms", DurationEdges, func(m *ModelHistogram) []int64 { return m.Duration }},
		{"t.num_tool_calls", ToolCallEdges, func(m *ModelHistogram) []int64 { return m.ToolCalls }},
	} {
		err = query(fmt.Sprintf(`tb AS (SELECT t.model, %s AS bin FROM %s t JOIN ws ON ws.session_id = t.session_id)
			SELECT model, bin, count(*) FROM tb GROUP BY model, bin`, binCase(h.col, h.edges), d.table("turns")), func(r *sql.Rows) error {
			var m string
			var bin, c int64
			if err := r.Scan(&m, &bin, &c); err != nil {
				return err
			}
			mh := hist[m]
			if mh == nil {
				mh = &ModelHistogram{Model: m, Duration: make([]int64, len(DurationEdges)), ToolCalls: make([]int64, len(ToolCallEdges))}
				hist[m] = mh
			}
			bins := h.pick(mh)
			if bin < 0 || bin >= int64(len(bins)) {
				return fmt.Errorf("bin %d outside 0..%d", bin, len(bins)-1)
			}
			bins[bin] = c
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, m := range hist {
		tr.ModelHistogram = append(tr.ModelHistogram, *m)
	}
	sort.Slice(tr.ModelHistogram, func(i, j int) bool { return tr.ModelHistogram[i].Model < tr.ModelHistogram[j].Model })
	return tr, nil
}
