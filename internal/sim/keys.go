package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
)

// KeyLabel marks the keys CreateKeys makes (fredtel keys list shows it).
const KeyLabel = "fredtel simulate"

// UserID is the id of simulated user n (from 1).
func UserID(n int) string { return fmt.Sprintf("sim-user-%03d", n) }

// CreateKeys makes one API key for each of users simulated users in the
// ingest server's database at dbURL (migrating it if needed): the keys are
// stored as hashes there, and returned only to the caller.
func CreateKeys(ctx context.Context, dbURL string, users int) ([]UserKey, error) {
	if users < 1 {
		return nil, fmt.Errorf("users: want at least 1, got %d", users)
	}
	st, err := store.Open(ctx, dbURL, store.Options{Set: schema.CentralSet, Migrate: true, MaxConns: 1})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return CreateKeysIn(ctx, st, users)
}

// CreateKeysIn is CreateKeys on an open central store.
func CreateKeysIn(ctx context.Context, st store.Store, users int) ([]UserKey, error) {
	out := make([]UserKey, users)
	now := time.Now().UTC()
	for i := range out {
		key, rec := server.NewKey(UserID(i+1), KeyLabel, now)
		if err := st.CreateKey(ctx, rec); err != nil {
			return nil, fmt.Errorf("create a key for %s: %w", rec.UserID, err)
		}
		out[i] = UserKey{User: rec.UserID, Key: key}
	}
	return out, nil
}
