package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/fredcode/fredtel/schema"
)

// Folder is a store whose hour rollups are folded in the background
// (schema.HourRollup.Folded): PostgreSQL. SQLite keeps none.
type Folder interface {
	// Fold adds to the hour rollups the records committed since the last
	// fold, by any process. It is exact whenever and however often it
	// runs, and safe to run from several processes at once (they take
	// turns on a row lock).
	Fold(ctx context.Context) error
}

// Fold implements Folder.
func (s *pgStore) Fold(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, schema.FoldSQL(s.set)); err != nil {
		return fmt.Errorf("store: fold: %w", err)
	}
	return nil
}

// FoldEvery folds st every interval until ctx is done, then returns. A
// failed fold is logged (its cause only) and tried again at the next tick:
// a report counts the records not yet folded, so a late fold costs a
// report time, never a count.
func FoldEvery(ctx context.Context, st Folder, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := st.Fold(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			log.Warn("fold failed; retrying every interval", "err", err.Error())
			failing = true
		case err == nil && failing:
			log.Info("fold recovered")
			failing = false
		}
	}
}
