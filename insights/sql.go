package insights

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/rules"
	"github.com/fredcode/fredtel/schema"
)

// The SQL of the analyses is written once, in the PostgreSQL spelling with
// $n parameters; the few places where the dialects differ go through the
// methods below. Everything runs inside the database: Go only reads
// aggregates and the detected problems.

var dollarParam = regexp.MustCompile(`\$(\d+)`)

// q adapts a query to the dialect: SQLite numbers its parameters ?N.
func (d *db) q(s string) string {
	if d.dialect == schema.SQLite {
		return dollarParam.ReplaceAllString(s, "?$1")
	}
	return s
}

// timeArg is a timestamp as the dialect stores it: timestamptz, or the
// fixed-width text of schema.TimeLayout (whose text order is time order).
func (d *db) timeArg(t time.Time) any {
	if d.dialect == schema.SQLite {
		return t.UTC().Format(schema.TimeLayout)
	}
	return t
}

// window is the ws common table expression every analysis starts from:
// the sessions that started in [From, To) and pass the filters, with uid,
// the unit "users" counts (user_id, or the session itself on self-hosted
// tables).
func (d *db) window(o *Options) (string, []any) {
	uid := "s.user_id"
	if d.set == schema.SelfHostedSet {
		uid = "CAST(s.session_id AS text)"
	}
	args := []any{d.timeArg(o.From), d.timeArg(o.To)}
	var b strings.Builder
	fmt.Fprintf(&b, `ws AS (SELECT s.session_id, s.model, s.started_at, s.ended_at, %s AS uid
	FROM %s s WHERE s.started_at >= $1 AND s.started_at < $2`, uid, d.table("sessions"))
	if o.Model != "" {
		args = append(args, o.Model)
		fmt.Fprintf(&b, ` AND (s.model = $%d OR EXISTS (SELECT 1 FROM %s tc WHERE tc.session_id = s.session_id AND tc.model = $%d))`,
			len(args), d.table("turn_counts"), len(args))
	}
	if o.Agent != "" {
		args = append(args, o.Agent)
		fmt.Fprintf(&b, ` AND COALESCE(s.agent, 'fred') = $%d`, len(args))
	}
	b.WriteString(")")
	return b.String(), args
}

// key64 is a 64-bit key of the text expression e for equality tests in a
// big sort: PostgreSQL's hashtextextended (a bigint: narrower to sort and
// compare than the text); SQLite keeps e (it sorts in its own way). Null
// stays null. Two different values share a key with a probability of
// about 2^-64.
func (d *db) key64(e string) string {
	if d.dialect == schema.SQLite {
		return e
	}
	return "hashtextextended(" + e + ", 0)"
}

// durationMs is the SQL for the whole milliseconds from timestamp column a
// to b.
func (d *db) durationMs(a, b string) string {
	if d.dialect == schema.SQLite {
		return fmt.Sprintf("CAST(round((unixepoch(%s, 'subsec') - unixepoch(%s, 'subsec')) * 1000) AS INTEGER)", b, a)
	}
	return fmt.Sprintf("CAST(round(EXTRACT(EPOCH FROM (%s - %s)) * 1000) AS bigint)", b, a)
}

// fast is the SQL predicate "col names a fast model".
func fast(o *Options, col string) string {
	if len(o.FastModels) > 0 {
		q := make([]string, len(o.FastModels))
		for i, m := range o.FastModels {
			q[i] = "'" + m + "'" // checked against schema.PatModel(): no quote
		}
		return "(" + col + " IN (" + strings.Join(q, ", ") + "))"
	}
	parts := make([]string, len(DefaultFastWords))
	for i, w := range DefaultFastWords {
		parts[i] = "lower(" + col + ") LIKE '%" + w + "%'"
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

// oneOf is the SQL predicate "col is one of models" (the fast models of
// the window's model table: an equality per row where fast matches
// patterns).
func oneOf(col string, models []string) string {
	if len(models) == 0 {
		return "(1 = 0)"
	}
	q := make([]string, len(models))
	for i, m := range models {
		q[i] = quote(m)
	}
	return "(" + col + " IN (" + strings.Join(q, ", ") + "))"
}

// quote is the SQL string literal of s, a value read from the database:
// quoted whatever it holds.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// isFast is fast in Go: the live hints' rule.
func isFast(o *Options, model string) bool { return rules.IsFast(model, o.FastModels) }

// catalogElems is a FROM item listing the elements of the JSON array column
// col of the relation k as a column named v.
func (d *db) catalogElems(k, col string) string {
	if d.dialect == schema.SQLite {
		return fmt.Sprintf("json_each(%s.%s) AS je", k, col) // value: je.value
	}
	return fmt.Sprintf("jsonb_array_elements_text(%s.%s) AS je(value)", k, col)
}

// pctRows returns a query over src (a SELECT of a group g and a value x0,
// never null) that yields, for each group, only the distinct values at the
// ranks its percentiles ps interpolate between: g, the value, the rank of
// its first row (from 0), the rank after its last, and the group's row
// count. [pctScan] finishes the percentiles in Go.
//
// The values are counted (GROUP BY g, x0) instead of sorted: a hash of a
// few thousand distinct durations costs less than sorting two million
// turns, and only a dozen rows per group leave the database. The result is
// PostgreSQL's percentile_cont: with the n values of a group in ascending
// order, numbered from 0, and h = p·(n−1), v[floor(h)] + (h −
// floor(h))·(v[floor(h)+1] − v[floor(h)]) in double precision, the
// operations of its percentile_cont_final_common in their order; SQLite,
// which has no percentile_cont, gets the same numbers.
func (d *db) pctRows(src string, weighted bool, ps []float64) string {
	return pctCTEs(src, weighted) + " SELECT CAST(g AS text), x0, cum - n, cum, total FROM pc WHERE " + d.pctNear(ps)
}

// pctCTEs are the expressions ph and pc of pctRows, for a query that
// selects from pc itself. With weighted, src has a third column w, the
// number of rows its row stands for (src counted already).
func pctCTEs(src string, weighted bool) string {
	n := count32
	if weighted {
		n = sum32("w")
	}
	return fmt.Sprintf(`ph AS (SELECT g, x0, %s AS n FROM (%s) q GROUP BY g, x0),
	pc AS (SELECT g, x0, n, sum(n) OVER (PARTITION BY g ORDER BY x0 ROWS UNBOUNDED PRECEDING) AS cum,
		sum(n) OVER (PARTITION BY g) AS total FROM ph)`, n, src)
}

// pctNear is the condition on pc of the rows pctRows returns.
func (d *db) pctNear(ps []float64) string {
	var near []string
	for _, p := range ps {
		lo := d.floor(ftoa(p) + " * (total - 1)")
		near = append(near, fmt.Sprintf("(cum - n <= %s + 1 AND cum > %s)", lo, lo))
	}
	return "(" + strings.Join(near, " OR ") + ")"
}

// sum32 is the SQL sum of a count column or expression e: PostgreSQL
// sums a bigint into a numeric (arbitrary precision, several times slower
// to add than machine integers: 0.93 s against 0.49 s for the turn errors
// over 100,000 sessions), an integer into a bigint. A count of one group
// or rollup row never nears 2^31 (a session holds at most a million turns
// of a million calls each, and no client writes that).
func sum32(e string) string { return "sum(CAST(" + e + " AS integer))" }

// count32 is count(*) as an integer, for sum32 to add.
const count32 = "CAST(count(*) AS integer)"

// floor is the SQL of the largest integer not above the non-negative
// number e.
func (d *db) floor(e string) string {
	if d.dialect == schema.SQLite {
		return "CAST(" + e + " AS INTEGER)"
	}
	return "floor(" + e + ")"
}

// pctScan collects the rows of pctRows; finish computes the percentiles.
type pctScan struct {
	ps     []float64
	groups map[string]*pctGroup
	order  []string
}

type pctGroup struct {
	n    int64
	vals []pctVal
	p    []float64 // by finish
}

type pctVal struct {
	x           float64
	first, next int64
}

func newPctScan(ps []float64) *pctScan { return &pctScan{ps: ps, groups: map[string]*pctGroup{}} }

// scan reads one row of pctRows.
func (a *pctScan) scan(r *sql.Rows) error {
	var g string
	var v pctVal
	var n int64
	if err := r.Scan(&g, &v.x, &v.first, &v.next, &n); err != nil {
		return err
	}
	a.add(g, v, n)
	return nil
}

// add keeps value v of group g, of n rows.
func (a *pctScan) add(g string, v pctVal, n int64) {
	gr := a.groups[g]
	if gr == nil {
		gr = &pctGroup{n: n}
		a.groups[g] = gr
		a.order = append(a.order, g)
	}
	gr.vals = append(gr.vals, v)
}

// at is the value of rank i of the group, if pctRows read it.
func (gr *pctGroup) at(i int64) (float64, bool) {
	for _, v := range gr.vals {
		if v.first <= i && i < v.next {
			return v.x, true
		}
	}
	return 0, false
}

// finish computes every group's percentiles from the values read.
func (a *pctScan) finish() error {
	for _, g := range a.order {
		gr := a.groups[g]
		for _, p := range a.ps {
			h := p * float64(gr.n-1)
			lo := math.Floor(h)
			first, ok := gr.at(int64(lo))
			second, ok2 := first, true
			if int64(lo)+1 < gr.n {
				second, ok2 = gr.at(int64(lo) + 1)
			}
			if !ok || !ok2 {
				return fmt.Errorf("percentile %v: the values at rank %d of %d were not read", p, int64(lo), gr.n)
			}
			gr.p = append(gr.p, first+(h-lo)*(second-first))
		}
	}
	return nil
}

// result returns the row count of group g and its percentiles (zero for a
// group without rows).
func (a *pctScan) result(g string) (int64, []float64) {
	gr := a.groups[g]
	if gr == nil {
		return 0, make([]float64, len(a.ps))
	}
	return gr.n, gr.p
}

// percentiles runs pctRows over src (weighted: see pctCTEs) after the
// CTEs pre (which end in a comma, or are empty) and collects it.
func (rn *run) percentiles(ctx context.Context, pre, src string, weighted bool, ps []float64) (*pctScan, error) {
	a := newPctScan(ps)
	if err := rn.query(ctx, pre+rn.d.pctRows(src, weighted, ps), a.scan); err != nil {
		return nil, err
	}
	return a, a.finish()
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
