package server

import (
	"container/list"
	"context"
	"sync"

	"github.com/fredcode/fredtel/wire"
	"github.com/google/uuid"
)

// catalogCache remembers the catalogs of recent sessions, so that a batch
// of a known session's turns, tool calls and events is checked without a
// database round trip. It is bounded in bytes, least recently used out
// first; equal catalogs (every session of one build) are held once.
// Sessions not found are not remembered: a session may be written by
// another process a moment later.
type catalogCache struct {
	mu     sync.Mutex
	budget int
	bytes  int
	lru    *list.List // of *catalogEntry, most recent first
	byID   map[uuid.UUID]*list.Element
	shared map[string]*sharedCatalogs
}

type catalogEntry struct {
	id   uuid.UUID
	user string
	c    *sharedCatalogs
}

type sharedCatalogs struct {
	key  string
	c    *wire.Catalogs
	refs int
	size int
}

// entryBytes is about what an entry costs beside its catalogs.
const entryBytes = 160

func newCatalogCache(budget int) *catalogCache {
	return &catalogCache{budget: budget, lru: list.New(), byID: map[uuid.UUID]*list.Element{}, shared: map[string]*sharedCatalogs{}}
}

// get returns the catalogs of a session of user, or nil.
func (c *catalogCache) get(id uuid.UUID, user string) *wire.Catalogs {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil
	}
	e := el.Value.(*catalogEntry)
	if e.user != user { // mutant:catalog-cache-ignores-owner
		return nil
	}
	c.lru.MoveToFront(el)
	return e.c.c
}

// put remembers the catalogs of a session of user.
func (c *catalogCache) put(id uuid.UUID, user string, cat *wire.Catalogs) {
	key := cat.Key()
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		c.remove(el)
	}
	sc := c.shared[key]
	if sc == nil {
		sc = &sharedCatalogs{key: key, c: cat, size: cat.Size() + len(key)}
		if entryBytes+sc.size > c.budget {
			return // larger than the whole cache: looked up each time
		}
		c.shared[key] = sc
		c.bytes += sc.size
	}
	sc.refs++
	c.byID[id] = c.lru.PushFront(&catalogEntry{id: id, user: user, c: sc})
	c.bytes += entryBytes
	for c.bytes > c.budget {
		c.remove(c.lru.Back())
	}
}

func (c *catalogCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*catalogEntry)
	delete(c.byID, e.id)
	c.bytes -= entryBytes
	if e.c.refs--; e.c.refs == 0 {
		delete(c.shared, e.c.key)
		c.bytes -= e.c.size
	}
}

// checkNames refuses a batch (version 2 on) whose model, tool or command
// names are neither fixed words nor in their sessions' catalogs. The
// catalogs come from the batch's own session records, else the cache,
// else one lookup for all the sessions missing, restricted to the key's
// user: another user's session is as unknown as one never written, so the
// answer tells nothing of its catalogs. A database error is returned.
func (s *Server) checkNames(ctx context.Context, b *wire.Batch, user string) (*wire.Rejection, error) {
	ids := b.NameSessions()
	known := make(map[uuid.UUID]*wire.Catalogs, len(ids))
	var missing []uuid.UUID
	for _, id := range ids {
		if c := s.catalogs.get(id, user); c != nil {
			known[id] = c
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		found, err := s.st.SessionCatalogs(ctx, user, missing)
		if err != nil {
			return nil, err
		}
		for id, l := range found {
			c := wire.NewCatalogs(l.Models, l.Tools, l.Commands)
			s.catalogs.put(id, user, c)
			known[id] = c
		}
	}
	return wire.CheckNames(b, func(id uuid.UUID) *wire.Catalogs { return known[id] }), nil
}

// rememberCatalogs caches the catalogs of the sessions a committed batch
// wrote, as the first record of each stated them (what a new session row
// holds), so their later batches need no lookup.
func (s *Server) rememberCatalogs(b *wire.Batch, user string) {
	seen := make(map[uuid.UUID]bool, len(b.Sessions))
	for i := range b.Sessions {
		x := &b.Sessions[i]
		if seen[x.SessionID] {
			continue
		}
		seen[x.SessionID] = true
		s.catalogs.put(x.SessionID, user, wire.NewCatalogs(x.ModelCatalog, x.ToolCatalog, x.CommandCatalog))
	}
}
