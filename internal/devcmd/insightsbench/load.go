package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/jackc/pgx/v5"
)

// load migrates the central tables at dbURL and fills them from g with
// COPY, one table after the other, then VACUUM ANALYZE: the visibility map
// and statistics a production database has after autovacuum.
func load(ctx context.Context, dbURL string, g *gen, logf func(string, ...any)) error {
	s, err := store.Open(ctx, dbURL, store.Options{Set: schema.CentralSet, Migrate: true})
	if err != nil {
		return err
	}
	s.Close()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	set := schema.CentralSet
	copyTable := func(r *schema.Record, fill func(emit func(row []any))) error {
		t0 := time.Now()
		rows := make(chan []any, 4096)
		done := make(chan struct{})
		// The generator runs beside COPY; it stops when COPY does.
		go func() {
			defer close(rows)
			fill(func(row []any) {
				select {
				case rows <- row:
				case <-done:
				}
			})
		}()
		var cols []string
		for _, f := range set.Columns(r) {
			cols = append(cols, f.Name())
		}
		n, err := c.CopyFrom(ctx, pgx.Identifier{set.TableName(r)}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			row, ok := <-rows
			if !ok {
				return nil, nil
			}
			return row, nil
		}))
		close(done)
		for range rows { // let the generator finish
		}
		if err != nil {
			return fmt.Errorf("COPY %s: %w", set.TableName(r), err)
		}
		logf("COPY %s: %d rows in %v", set.TableName(r), n, time.Since(t0).Round(time.Millisecond))
		return nil
	}
	err = copyTable(schema.Sessions(), func(emit func([]any)) {
		for i := 0; i < g.sessions; i++ {
			se := g.session(g.plan(i))
			emit(store.CopyValues(se.AppendValues(set, nil)))
		}
	})
	if err != nil {
		return err
	}
	err = copyTable(schema.Turns(), func(emit func([]any)) {
		for i := 0; i < g.sessions; i++ {
			g.turns(g.plan(i), func(t *schema.Turn, _ []schema.ToolCall) { emit(store.CopyValues(t.AppendValues(set, nil))) })
		}
	})
	if err != nil {
		return err
	}
	err = copyTable(schema.ToolCalls(), func(emit func([]any)) {
		for i := 0; i < g.sessions; i++ {
			g.turns(g.plan(i), func(_ *schema.Turn, calls []schema.ToolCall) {
				for k := range calls {
					emit(store.CopyValues(calls[k].AppendValues(set, nil)))
				}
			})
		}
	})
	if err != nil {
		return err
	}
	err = copyTable(schema.Events(), func(emit func([]any)) {
		for i := 0; i < g.sessions; i++ {
			g.events(g.plan(i), func(e *schema.Event) { emit(store.CopyValues(e.AppendValues(set, nil))) })
		}
	})
	if err != nil {
		return err
	}
	// What fredtel serve's folder does as records arrive (every 10 s),
	// once for the whole load.
	t0 := time.Now()
	if _, err := c.Exec(ctx, schema.FoldSQL(set)); err != nil {
		return fmt.Errorf("fold: %w", err)
	}
	logf("fold in %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	var tables []string
	for _, hr := range schema.HourRollups() {
		tables = append(tables, hr.TableName(set))
	}
	for _, r := range schema.Records() {
		tables = append(tables, set.TableName(r))
	}
	for _, tb := range tables {
		if _, err := c.Exec(ctx, "VACUUM ANALYZE "+tb); err != nil {
			return err
		}
	}
	logf("VACUUM ANALYZE in %v", time.Since(t0).Round(time.Millisecond))
	return nil
}
