package telemetry

import (
	"sync"
	"unsafe"

	"github.com/fredcode/fredtel/schema"
)

// buffer holds records waiting to be written. Only the family of the
// session's route is used: remote-safe records on the central route, whole
// records on the self-hosted route.
type buffer struct {
	remote RemoteBatch
	local  LocalBatch
	n      int // records
	bytes  int // accounted size
}

func (b *buffer) reset() {
	b.remote.Reset()
	b.local.Reset()
	b.n, b.bytes = 0, 0
}

// queue is bounded in bytes: a full queue drops the new record and counts
// it, and never blocks the agent. Records go into blocks of at most
// maxBatch records, so a backlog grows by adding blocks, never by copying
// one ever larger slice, and a send takes one block at a time.
type queue struct {
	mu       sync.Mutex
	blocks   []*buffer // oldest first; the last one is being filled
	free     []*buffer // written blocks kept for reuse
	bytes    int       // accounted size of every block, and of the one being written
	limit    int
	maxBatch int
	wake     chan struct{}
}

func newQueue(limit, maxBatch int) *queue {
	return &queue{blocks: []*buffer{{}}, limit: limit, maxBatch: maxBatch, wake: make(chan struct{}, 1)}
}

// Accounted sizes: the struct, plus text a self-hosted record carries.
// Strings such as tool names point into the agent's own memory and are not
// copied, so they are not counted.
const (
	sizeSession  = int(unsafe.Sizeof(schema.Session{})) + 64
	sizeTurn     = int(unsafe.Sizeof(schema.Turn{}))
	sizeToolCall = int(unsafe.Sizeof(schema.ToolCall{}))
	sizeEvent    = int(unsafe.Sizeof(schema.Event{})) + 64
)

// lock reserves size bytes and returns the block to append to, locked; or
// nil when the queue is full.
func (q *queue) lock(size int) *buffer {
	q.mu.Lock()
	if q.bytes+size > q.limit {
		q.mu.Unlock()
		return nil
	}
	cur := q.blocks[len(q.blocks)-1]
	if cur.n >= q.maxBatch {
		cur = q.newBlock()
		q.blocks = append(q.blocks, cur)
	}
	q.bytes += size
	cur.bytes += size
	cur.n++
	return cur
}

func (q *queue) newBlock() *buffer {
	if n := len(q.free); n > 0 {
		b := q.free[n-1]
		q.free = q.free[:n-1]
		return b
	}
	return &buffer{}
}

func (q *queue) unlock(b *buffer) {
	full := b.n >= q.maxBatch
	q.mu.Unlock()
	if full {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// take removes the oldest block for writing; nil when the queue is empty.
func (q *queue) take() *buffer {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.blocks[0]
	if b.n == 0 {
		return nil
	}
	if len(q.blocks) == 1 {
		q.blocks[0] = q.newBlock()
	} else {
		q.blocks = q.blocks[1:]
	}
	return b
}

// release frees a written (or discarded) block for reuse.
func (q *queue) release(b *buffer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= b.bytes
	b.reset()
	if len(q.free) < 4 {
		q.free = append(q.free, b)
	}
}

// drain discards everything queued and returns how many records that was.
func (q *queue) drain() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, b := range q.blocks {
		n += b.n
		q.bytes -= b.bytes
		b.reset()
	}
	q.blocks = q.blocks[:1]
	return n
}

// push queues r, or its remote part on the central route, unless the
// queue is full. size is r's accounted size.
func push[R interface {
	AppendTo(*schema.Batch)
	AppendRemoteTo(*schema.RemoteBatch)
}](s *Session, r R, size int) {
	b := s.q.lock(size)
	if b == nil {
		s.stats.dropped.Add(1)
		return
	}
	if s.kind == Central {
		r.AppendRemoteTo(&b.remote)
	} else {
		r.AppendTo(&b.local)
	}
	s.q.unlock(b)
	s.stats.recorded.Add(1)
}

func (s *Session) pushTurn(r *schema.Turn) {
	size := sizeTurn
	if s.kind == SelfHosted {
		if s.noText {
			r.UserInput, r.AssistantText = "", ""
		}
		size += len(r.UserInput) + len(r.AssistantText)
	}
	push(s, *r, size)
}
