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
	// clear, not just truncate: the backing arrays are reused and must not
	// keep text or strings of written records alive.
	clear(b.remote.Sessions)
	clear(b.remote.Turns)
	clear(b.remote.ToolCalls)
	clear(b.remote.Events)
	clear(b.local.Sessions)
	clear(b.local.Turns)
	clear(b.local.ToolCalls)
	clear(b.local.Events)
	b.remote = RemoteBatch{b.remote.Sessions[:0], b.remote.Turns[:0], b.remote.ToolCalls[:0], b.remote.Events[:0]}
	b.local = LocalBatch{b.local.Sessions[:0], b.local.Turns[:0], b.local.ToolCalls[:0], b.local.Events[:0]}
	b.n, b.bytes = 0, 0
}

// queue is bounded in bytes: a full queue drops the new record and counts
// it, and never blocks the agent.
type queue struct {
	mu       sync.Mutex
	cur      *buffer
	spare    *buffer
	bytes    int // accounted size of cur plus the buffer being written
	limit    int
	maxBatch int
	wake     chan struct{}
}

func newQueue(limit, maxBatch int) *queue {
	return &queue{cur: &buffer{}, spare: &buffer{}, limit: limit, maxBatch: maxBatch, wake: make(chan struct{}, 1)}
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

// lock reserves size bytes and returns the buffer to append to, locked; or
// nil when the queue is full.
func (q *queue) lock(size int) *buffer {
	q.mu.Lock()
	if q.bytes+size > q.limit {
		q.mu.Unlock()
		return nil
	}
	q.bytes += size
	q.cur.bytes += size
	q.cur.n++
	return q.cur
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

// take swaps out the current buffer for writing; nil when it is empty.
func (q *queue) take() *buffer {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cur.n == 0 {
		return nil
	}
	b := q.cur
	q.cur, q.spare = q.spare, nil
	if q.cur == nil {
		q.cur = &buffer{}
	}
	return b
}

// release frees a written (or discarded) buffer for reuse.
func (q *queue) release(b *buffer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= b.bytes
	b.reset()
	q.spare = b
}

// drain discards everything queued and returns how many records that was.
func (q *queue) drain() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.cur.n
	q.bytes -= q.cur.bytes
	q.cur.reset()
	return n
}

func (s *Session) accepted(b *buffer) {
	s.q.unlock(b)
	s.stats.recorded.Add(1)
}

func (s *Session) pushSession(r schema.Session) {
	b := s.q.lock(sizeSession)
	if b == nil {
		s.stats.dropped.Add(1)
		return
	}
	if s.kind == Central {
		b.remote.Sessions = append(b.remote.Sessions, r.Remote())
	} else {
		b.local.Sessions = append(b.local.Sessions, r)
	}
	s.accepted(b)
}

func (s *Session) pushTurn(r *schema.Turn) {
	size := sizeTurn
	if s.kind == SelfHosted {
		if s.noText {
			r.UserInput, r.AssistantText = "", ""
		}
		size += len(r.UserInput) + len(r.AssistantText)
	}
	b := s.q.lock(size)
	if b == nil {
		s.stats.dropped.Add(1)
		return
	}
	if s.kind == Central {
		b.remote.Turns = append(b.remote.Turns, r.Remote())
	} else {
		b.local.Turns = append(b.local.Turns, *r)
	}
	s.accepted(b)
}

func (s *Session) pushToolCall(r *schema.ToolCall) {
	b := s.q.lock(sizeToolCall)
	if b == nil {
		s.stats.dropped.Add(1)
		return
	}
	if s.kind == Central {
		b.remote.ToolCalls = append(b.remote.ToolCalls, r.Remote())
	} else {
		b.local.ToolCalls = append(b.local.ToolCalls, *r)
	}
	s.accepted(b)
}

func (s *Session) pushEvent(r *schema.Event) {
	b := s.q.lock(sizeEvent)
	if b == nil {
		s.stats.dropped.Add(1)
		return
	}
	if s.kind == Central {
		b.remote.Events = append(b.remote.Events, r.Remote())
	} else {
		b.local.Events = append(b.local.Events, *r)
	}
	s.accepted(b)
}
