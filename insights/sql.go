package insights

import (
	"fmt"
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
	fmt.Fprintf(&b, `ws AS (SELECT s.session_id, s.model, s.started_at, s.ended_at, %s AS uid, s.command_catalog
	FROM %s s WHERE s.started_at >= $1 AND s.started_at < $2`, uid, d.table("sessions"))
	if o.Model != "" {
		args = append(args, o.Model)
		fmt.Fprintf(&b, ` AND (s.model = $%d OR EXISTS (SELECT 1 FROM %s t WHERE t.session_id = s.session_id AND t.model = $%d))`,
			len(args), d.table("turns"), len(args))
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
			q[i] = "'" + m + "'" // checked against schema.PatModel: no quote
		}
		return "(" + col + " IN (" + strings.Join(q, ", ") + "))"
	}
	parts := make([]string, len(DefaultFastWords))
	for i, w := range DefaultFastWords {
		parts[i] = "lower(" + col + ") LIKE '%" + w + "%'"
	}
	return "(" + strings.Join(parts, " OR ") + ")"
}

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

// pct returns a query over src, a SELECT of a column g and columns x0 …
// x(nx-1), that yields g, the row count of g, the aggregates extra (over
// src's columns, "" for none), then for each x its percentiles ps, grouped
// and ordered by g.
//
// PostgreSQL: percentile_cont. SQLite has no percentile_cont; the
// equivalent computes the same number the same way: with the values of a
// group sorted ascending and numbered from 0, h = p·(n−1), the result is
// v[floor(h)] + (h − floor(h))·(v[floor(h)+1] − v[floor(h)]), in double
// precision, as PostgreSQL's percentile_cont_final_common does.
func (d *db) pct(src string, nx int, ps []float64, extra string) string {
	var b strings.Builder
	if extra != "" {
		extra = ", " + extra
	}
	if d.dialect == schema.Postgres {
		b.WriteString("SELECT g, count(*)" + extra)
		for j := 0; j < nx; j++ {
			for _, p := range ps {
				fmt.Fprintf(&b, ", percentile_cont(%s) WITHIN GROUP (ORDER BY x%d)", ftoa(p), j)
			}
		}
		fmt.Fprintf(&b, " FROM (%s) q GROUP BY g ORDER BY g", src)
		return b.String()
	}
	b.WriteString("SELECT g, max(n)" + extra)
	for j := 0; j < nx; j++ {
		for _, p := range ps {
			h := fmt.Sprintf("(%s * (max(n) - 1))", ftoa(p))
			idx := fmt.Sprintf("CAST(%s * (n - 1) AS INTEGER)", ftoa(p))
			lo := fmt.Sprintf("sum(CASE WHEN i%d = %s THEN x%d END)", j, idx, j)
			hi := fmt.Sprintf("sum(CASE WHEN i%d = %s + 1 THEN x%d END)", j, idx, j)
			fmt.Fprintf(&b, ", (%s * 1.0 + (%s - CAST(%s AS INTEGER)) * (coalesce(%s, %s) - %s))", lo, h, h, hi, lo, lo)
		}
	}
	b.WriteString(" FROM (SELECT q.*")
	for j := 0; j < nx; j++ {
		fmt.Fprintf(&b, ", row_number() OVER (PARTITION BY g ORDER BY x%d) - 1 AS i%d", j, j)
	}
	fmt.Fprintf(&b, ", count(*) OVER (PARTITION BY g) AS n FROM (%s) q) r GROUP BY g ORDER BY g", src)
	return b.String()
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
