package server

import "sync"

// admission bounds the work of the requests whose bodies are being read
// and validated: at most slots of them at once, holding at most budget
// bytes between them. Both are taken without waiting: a request that finds
// either spent is answered 503 with Retry-After at once, so a flood of
// worst-case bodies meets a fixed ceiling of memory and CPU, never a queue
// that grows with it.
//
// Bytes are reserved as a request's buffers grow (twice the buffer: the
// parse and the decoded records are of its order), so a small batch takes
// little of the budget and a hostile 8 MiB body a lot.
type admission struct {
	mu           sync.Mutex
	slots, inUse int
	budget, used int64
}

func newAdmission(slots int, budget int64) *admission {
	return &admission{slots: slots, budget: budget}
}

// ticket is one admitted request's share; done gives it back.
type ticket struct {
	a     *admission
	bytes int64
}

// admit takes a slot, or reports that none is free.
func (a *admission) admit() (*ticket, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inUse >= a.slots { // mutant:admission-slots-off
		return nil, false
	}
	a.inUse++
	return &ticket{a: a}, true
}

// reserve takes n more bytes of the budget for the ticket, or reports that
// the budget cannot hold them.
func (t *ticket) reserve(n int64) bool {
	if n <= 0 {
		return true
	}
	a := t.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used+n > a.budget { // mutant:admission-budget-off
		return false
	}
	a.used += n
	t.bytes += n
	return true
}

func (t *ticket) done() {
	if t == nil || t.a == nil {
		return
	}
	a := t.a
	a.mu.Lock()
	a.inUse--
	a.used -= t.bytes
	a.mu.Unlock()
	t.a = nil
}
