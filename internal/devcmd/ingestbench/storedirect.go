package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
)

// poolOf is the --pool of the serve flags, else serve's default of 8.
func poolOf(serveArgs []string) int {
	for i, a := range serveArgs {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "pool" {
			continue
		}
		if !hasVal && i+1 < len(serveArgs) {
			val = serveArgs[i+1]
		}
		if n, err := strconv.Atoi(val); err == nil && n > 0 {
			return n
		}
	}
	return 8
}

// storeResult is Store.Write of the same batches without HTTP, gzip or
// validation: what the server's commit path alone sustains.
type storeResult struct {
	Pool        int     `json:"pool"`
	Writers     int     `json:"writers"`
	Seconds     float64 `json:"seconds"`
	RecordsPerS float64 `json:"records_per_s"`
}

// measureStore writes bs through store.Store.Write from writers goroutines
// over a pool of pool connections (as fredtel serve does), into a second
// fresh database.
func measureStore(ctx context.Context, adminURL string, bs []*batch, writers, pool int, logf func(string, ...any)) (*storeResult, error) {
	dbURL, drop, err := testdb.Create(ctx, adminURL, "fredtel_bench_")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := drop(); err != nil {
			logf("could not drop the Store.Write database: %v", err)
		}
	}()
	st, err := store.Open(ctx, dbURL, store.Options{Set: schema.CentralSet, Migrate: true, MaxConns: int32(pool)})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	now := time.Now()
	sbs := make([]store.Batch, len(bs))
	rows := 0
	for i, b := range bs {
		sbs[i] = store.Batch{UserID: benchUser, ReceivedAt: now, Batch: schema.Batch{Sessions: b.sessions, Turns: b.turns, ToolCalls: b.calls, Events: b.events}}
		rows += b.records
	}
	logf("Store.Write of the same %d rows, %d writers, pool %d (no HTTP, gzip or validation)", rows, writers, pool)
	t0 := time.Now()
	err = inParallel(writers, len(sbs), func(_, i int) error {
		res, err := st.Write(ctx, &sbs[i])
		if err == nil && res.Accepted != sbs[i].Len() {
			err = fmt.Errorf("Store.Write accepted %d of %d", res.Accepted, sbs[i].Len())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	d := time.Since(t0)
	return &storeResult{Pool: pool, Writers: writers, Seconds: d.Seconds(), RecordsPerS: float64(rows) / d.Seconds()}, nil
}
