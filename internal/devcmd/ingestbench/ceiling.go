package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/jackc/pgx/v5"
)

// scratchTable is one bench_* table made LIKE its telemetry_* table
// INCLUDING ALL: the same columns, checks, primary key and indexes.
type scratchTable struct {
	name  string
	names []string
}

func scratchTables() []scratchTable {
	out := make([]scratchTable, len(schema.Records()))
	for i, r := range schema.Records() {
		cols := schema.CentralSet.Columns(r)
		names := make([]string, len(cols))
		for j, f := range cols {
			names[j] = f.Name()
		}
		out[i] = scratchTable{name: "bench_" + r.Table(), names: names}
	}
	return out
}

func createScratch(ctx context.Context, conn *pgx.Conn, ts []scratchTable) error {
	for i, r := range schema.Records() {
		sql := fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING ALL)", ts[i].name, schema.CentralSet.TableName(r))
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

func truncateScratch(ctx context.Context, conn *pgx.Conn, ts []scratchTable) error {
	names := ""
	for i, t := range ts {
		if i > 0 {
			names += ", "
		}
		names += t.name
	}
	_, err := conn.Exec(ctx, "TRUNCATE "+names)
	return err
}

// copyBatch writes one batch's rows the way Store.Write commits a batch,
// minus everything but the COPYs: one transaction, one COPY per table.
func copyBatch(ctx context.Context, conn *pgx.Conn, ts []scratchTable, rows [][][]any) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	for i, t := range ts {
		if len(rows[i]) == 0 {
			continue
		}
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.names, pgx.CopyFromRows(rows[i]))
		if err != nil {
			return fmt.Errorf("COPY %s: %w", t.name, err)
		}
		if int(n) != len(rows[i]) {
			return fmt.Errorf("COPY %s: %d rows of %d", t.name, n, len(rows[i]))
		}
	}
	return tx.Commit(ctx)
}

// ceilingResult is the COPY ceiling of the rows the load committed.
type ceilingResult struct {
	Rows                  int     `json:"rows"`
	Batches               int     `json:"batches"`
	SequentialSeconds     float64 `json:"sequential_seconds"`
	SequentialRecordsPerS float64 `json:"sequential_records_per_s"`
	Parallel              int     `json:"parallel_connections"`
	ParallelSeconds       float64 `json:"parallel_seconds"`
	ParallelRecordsPerS   float64 `json:"parallel_records_per_s"`
	RecordsPerS           float64 `json:"records_per_s"` // the faster of the two
	// OtherCores is the CPU that neither PostgreSQL nor this process used
	// while the ceiling ran: above ~0.15 something else disturbed it.
	OtherCores float64 `json:"other_cores"`
}

// measureCeiling COPYs the same batches into scratch tables, once from one
// connection and once from par connections, one transaction per batch. The
// rows are converted before the clock starts.
func measureCeiling(ctx context.Context, dbURL string, bs []*batch, par int, logf func(string, ...any)) (*ceilingResult, error) {
	conns := make([]*pgx.Conn, par)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	for i := range conns {
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			return nil, fmt.Errorf("ceiling: connect: %w", err)
		}
		conns[i] = c
	}
	ts := scratchTables()
	if err := createScratch(ctx, conns[0], ts); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	now := time.Now()
	rows := make([][][][]any, len(bs))
	res := &ceilingResult{Batches: len(bs), Parallel: par}
	for i, b := range bs {
		rows[i] = rowsOf(b, benchUser, now)
		res.Rows += b.records
	}
	if len(bs) == 0 {
		return res, nil
	}

	logf("ceiling: COPY of the same %d rows (%d batches), one connection", res.Rows, len(bs))
	cpu0 := takeCPU(-1)
	t0 := time.Now()
	for i := range rows {
		if err := copyBatch(ctx, conns[0], ts, rows[i]); err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
	}
	seq := time.Since(t0)
	res.SequentialSeconds = seq.Seconds()
	res.SequentialRecordsPerS = float64(res.Rows) / seq.Seconds()

	if err := truncateScratch(ctx, conns[0], ts); err != nil {
		return nil, fmt.Errorf("ceiling: truncate: %w", err)
	}
	logf("ceiling: COPY of the same rows, %d connections", par)
	t0 = time.Now()
	err := inParallel(len(conns), len(rows), func(w, i int) error { return copyBatch(ctx, conns[w], ts, rows[i]) })
	if err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	p := time.Since(t0)
	res.ParallelSeconds = p.Seconds()
	res.ParallelRecordsPerS = float64(res.Rows) / p.Seconds()
	res.RecordsPerS = max(res.SequentialRecordsPerS, res.ParallelRecordsPerS)
	res.OtherCores = cpuBetween(cpu0, takeCPU(-1), numCPU(), false).Other
	return res, nil
}
