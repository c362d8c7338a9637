package store

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// TestSessionCatalogs: one round trip returns the catalogs of the caller's
// own sessions among the ids, never another user's, and nothing for an id
// never written.
func TestSessionCatalogs(t *testing.T) {
	forEachCentral(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		g := fixture.New(7, time.Now())
		mine, v1, theirs := g.Session(), g.Session(), g.Session()
		mine.ModelCatalog = []string{"fred-flash-2", "fred-pro-2"}
		mine.ToolCatalog, mine.CommandCatalog = []string{"read_file", "bash"}, []string{"help"}
		v1.ModelCatalog = nil
		for _, b := range []*Batch{{UserID: "alice", Batch: schema.Batch{Sessions: []schema.Session{mine, v1}}}, {UserID: "bob", Batch: schema.Batch{Sessions: []schema.Session{theirs}}}} {
			if _, err := s.Write(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		never := uuid.Must(uuid.NewV7())
		got, err := s.SessionCatalogs(ctx, "alice", []uuid.UUID{mine.SessionID, v1.SessionID, theirs.SessionID, never})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d sessions found, want alice's 2 (not bob's, not one never written): %v", len(got), got)
		}
		c := got[mine.SessionID]
		if !slices.Equal(c.Models, mine.ModelCatalog) || !slices.Equal(c.Tools, mine.ToolCatalog) || !slices.Equal(c.Commands, mine.CommandCatalog) {
			t.Errorf("catalogs %+v, want those written", c)
		}
		if c := got[v1.SessionID]; c.Models != nil || len(c.Tools) == 0 {
			t.Errorf("a session without model_catalog: %+v", c)
		}
		if got, err := s.SessionCatalogs(ctx, "alice", nil); err != nil || len(got) != 0 {
			t.Errorf("no ids: %v, %v", got, err)
		}
	})
	self := openStore(t, testdb.SQLite(t), schema.SelfHostedSet)
	if _, err := self.SessionCatalogs(context.Background(), "alice", []uuid.UUID{uuid.Must(uuid.NewV7())}); !errors.Is(err, ErrCentralOnly) {
		t.Fatalf("self-hosted: %v", err)
	}
}
