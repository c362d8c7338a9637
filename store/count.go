package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/fredcode/fredtel/schema"
)

// countSQL counts the rows of every record table of the set in one query.
func countSQL(set schema.Set) string {
	parts := make([]string, len(schema.Records()))
	for i, r := range schema.Records() {
		parts[i] = fmt.Sprintf("SELECT '%s', count(*) FROM %s", set.TableName(r), set.TableName(r))
	}
	return strings.Join(parts, " UNION ALL ")
}

func (s *pgStore) Count(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, countSQL(s.set))
	if err != nil {
		return nil, fmt.Errorf("store: count %s: %w", s.loc.Masked, classify(err))
	}
	defer rows.Close()
	return scanCounts(rows)
}

func (s *sqliteStore) Count(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, countSQL(s.set))
	if err != nil {
		return nil, fmt.Errorf("store: count %s: %w", s.loc.Masked, classifySQLite(err))
	}
	defer rows.Close()
	return scanCounts(rows)
}

// rowReader is what pgx.Rows and *sql.Rows both offer a reader.
type rowReader interface {
	Next() bool
	Scan(...any) error
	Err() error
}

// scanCounts reads (table, count) rows from either driver.
func scanCounts(rows rowReader) (map[string]int64, error) {
	out := map[string]int64{}
	for rows.Next() {
		var t string
		var n int64
		if err := rows.Scan(&t, &n); err != nil {
			return nil, err
		}
		out[t] = n
	}
	return out, rows.Err()
}

// collectColumns reads (table, column) rows of either driver, keeping the
// tables that belong to the set: its prefix, and the server tables.
func collectColumns(set schema.Set, rows rowReader) (map[string][]string, error) {
	mine := map[string]bool{}
	if set == schema.CentralSet {
		for _, r := range schema.ServerTables() {
			mine[r.Table()] = true
		}
	}
	out := map[string][]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, err
		}
		if strings.HasPrefix(t, set.Prefix()) || mine[t] {
			out[t] = append(out[t], c)
		}
	}
	return out, rows.Err()
}
