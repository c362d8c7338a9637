package server

import (
	"fmt"
	"testing"

	"github.com/fredcode/fredtel/wire"
	"github.com/google/uuid"
)

// TestCatalogCacheIsBounded: the cache holds at most its budget, least
// recently used out first; equal catalogs are held once, so many sessions
// of one build cost an entry each, and distinct catalogs a lot more.
func TestCatalogCacheIsBounded(t *testing.T) {
	build := wire.NewCatalogs([]string{"fred-flash-2"}, []string{"read_file", "bash"}, []string{"help"})
	c := newCatalogCache(64 << 10)
	ids := make([]uuid.UUID, 1000)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7())
		c.put(ids[i], "alice", wire.NewCatalogs([]string{"fred-flash-2"}, []string{"read_file", "bash"}, []string{"help"}))
		if c.bytes > c.budget {
			t.Fatalf("after %d puts the cache holds %d bytes, over its %d", i+1, c.bytes, c.budget)
		}
	}
	if len(c.shared) != 1 {
		t.Errorf("%d copies of one build's catalogs, want 1", len(c.shared))
	}
	held := len(c.byID)
	if want := (64<<10 - build.Size()) / entryBytes; held < want-2 {
		t.Errorf("%d sessions of one build held in 64 KiB, want about %d", held, want)
	}
	if c.get(ids[0], "alice") != nil {
		t.Error("the oldest session is still held")
	}
	if c.get(ids[999], "alice") == nil || c.get(ids[999], "bob") != nil {
		t.Error("the newest session: want it for its owner only")
	}

	// Distinct, large catalogs: fewer entries, still within the budget.
	for i := range 200 {
		tools := make([]string, 100)
		for j := range tools {
			tools[j] = fmt.Sprintf("tool_%d_%d", i, j)
		}
		c.put(uuid.Must(uuid.NewV7()), "mallory", wire.NewCatalogs(nil, tools, nil))
		if c.bytes > c.budget {
			t.Fatalf("distinct catalogs: %d bytes, over the budget %d", c.bytes, c.budget)
		}
	}
	if len(c.byID) >= held/4 {
		t.Errorf("%d sessions of large distinct catalogs held in 64 KiB: the size of catalogs is not counted", len(c.byID))
	}
	total := 0
	for _, s := range c.shared {
		total += s.size
	}
	if got := total + entryBytes*len(c.byID); got != c.bytes {
		t.Errorf("the cache counts %d bytes, its entries and catalogs make %d", c.bytes, got)
	}
}
