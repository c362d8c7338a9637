package store

import (
	"context"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/jackc/pgx/v5"
)

// BenchmarkPostgresToolCalls500 writes batches of 500 fresh tool-call rows
// through Store.Write (central set: ownership check, COPY in a savepoint,
// commit) and, interleaved in the same run, COPYs the same rows into a
// scratch table made LIKE telemetry_tool_calls INCLUDING ALL (same indexes
// and checks): the ceiling. ns/op is one Store.Write of 500 rows.
//
// Metrics: write-rows/s, ceiling-rows/s, pct-of-ceiling, and retry-rows/s
// (the same batch written again: every row a duplicate).
//
//	go test ./store -run '^$' -bench PostgresToolCalls500 -benchtime 200x
func BenchmarkPostgresToolCalls500(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, testdb.Postgres(b), schema.CentralSet).(*pgStore)
	if _, err := s.pool.Exec(ctx, "CREATE TABLE bench_ceiling (LIKE telemetry_tool_calls INCLUDING ALL)"); err != nil {
		b.Fatal(err)
	}
	g := fixture.New(42, time.Now())
	sess := g.Session()
	if _, err := s.Write(ctx, &Batch{UserID: "bench", Batch: schema.Batch{Sessions: []schema.Session{sess}}}); err != nil {
		b.Fatal(err)
	}
	makeBatch := func() *Batch {
		bt := &Batch{UserID: "bench", Batch: schema.Batch{ToolCalls: make([]schema.ToolCall, 500)}}
		turn := g.ID()
		for i := range bt.ToolCalls {
			bt.ToolCalls[i] = g.ToolCall(sess.SessionID, turn, i)
		}
		return bt
	}
	cols := schema.CentralSet.Columns(schema.ToolCalls())
	names := make([]string, len(cols))
	for i, f := range cols {
		names[i] = f.Name()
	}
	var ceiling, retry time.Duration
	var retried int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		bt := makeBatch()
		// The ceiling gets the rows ready-made: only the COPY is timed.
		p, err := prepare(schema.CentralSet, bt, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		rows := make([][]any, len(p.tables[0].rows))
		for j, r := range p.tables[0].rows {
			rows[j] = CopyValues(r)
		}
		t0 := time.Now()
		if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"bench_ceiling"}, names, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		ceiling += time.Since(t0)
		b.StartTimer()

		res, err := s.Write(ctx, bt)
		if err != nil || res.Accepted != 500 {
			b.Fatalf("Write = %+v, %v", res, err)
		}

		if i%4 == 0 {
			b.StopTimer()
			t0 := time.Now()
			res, err := s.Write(ctx, bt)
			if err != nil || res.Duplicates != 500 {
				b.Fatalf("retry Write = %+v, %v", res, err)
			}
			retry += time.Since(t0)
			retried++
			b.StartTimer()
		}
	}
	b.StopTimer()
	write := b.Elapsed()
	rowsDone := float64(500 * b.N)
	b.ReportMetric(rowsDone/write.Seconds(), "write-rows/s")
	b.ReportMetric(rowsDone/ceiling.Seconds(), "ceiling-rows/s")
	b.ReportMetric(100*ceiling.Seconds()/write.Seconds(), "pct-of-ceiling")
	if retried > 0 {
		b.ReportMetric(float64(500*retried)/retry.Seconds(), "retry-rows/s")
	}
}
