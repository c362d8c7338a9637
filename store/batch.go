package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// table is the rows of one record type, ready for a backend: column values in
// the order of Set.Columns, canonical Go types, sorted by id.
type table struct {
	rec  *schema.Record
	name string
	cols []*schema.Field
	ids  []uuid.UUID
	rows [][]any
}

// prepared is a batch after the checks and rewrites both backends share.
type prepared struct {
	tables []table // in schema.Records() order; empty ones left out
	// refs maps every session id the batch names to the path of the first
	// field naming it, for the ownership check and its error.
	refs    map[uuid.UUID]ref
	refIDs  []uuid.UUID
	dups    int // records folded into another record of the same batch
	endings int // folded session records that brought an ended_at
	userID  string
}

// prepare checks b and turns it into rows for the set. It folds records that
// repeat an id within the batch (a session's start and end in one batch is the
// common case), sorts rows by id so concurrent writers take locks in one order,
// and stamps the server fields from the batch.
func prepare(set schema.Set, b *Batch, now time.Time) (*prepared, error) {
	p := &prepared{refs: map[uuid.UUID]ref{}}
	recv := b.ReceivedAt
	if recv.IsZero() {
		recv = now
	}
	srv := serverStamp{at: schema.TimeOf(recv), offsetMs: b.ClockOffset.Milliseconds()}
	if set == schema.CentralSet {
		if !schema.PatUserID().Match(b.UserID) {
			return nil, ErrNoUser
		}
		srv.user = b.UserID
		p.userID = b.UserID
	}
	ref := func(id uuid.UUID, array string, i int) {
		if _, ok := p.refs[id]; !ok {
			p.refs[id] = ref{array: array, index: i, order: len(p.refIDs)}
			p.refIDs = append(p.refIDs, id)
		}
	}

	// Sessions fold repeats too, and the later ended_at wins.
	addRecords(p, set, schema.Sessions(), b.Sessions, srv, ref, func(kept, again *schema.Session) {
		if kept.EndedAt.IsZero() && !again.EndedAt.IsZero() {
			kept.EndedAt = again.EndedAt
			p.endings++
		}
	})
	addRecords(p, set, schema.Turns(), b.Turns, srv, ref, nil)
	addRecords(p, set, schema.ToolCalls(), b.ToolCalls, srv, ref, nil)
	addRecords(p, set, schema.Events(), b.Events, srv, ref, nil)
	slices.SortFunc(p.refIDs, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	return p, nil
}

// addRecords adds the records of a type: repeats of an id within the batch
// are folded into the first, through fold where the type has one (only
// sessions are sent again, to end them; the others only ever insert).
func addRecords[T any, P interface {
	*T
	schema.Row
}](p *prepared, set schema.Set, rec *schema.Record, recs []T, srv serverStamp, ref func(id uuid.UUID, array string, i int), fold func(kept, again *T)) {
	if len(recs) == 0 {
		return
	}
	idx := make(map[uuid.UUID]int, len(recs))
	kept := make([]T, 0, len(recs)) // copies: the caller's records are not stamped
	for i := range recs {
		r := P(&recs[i])
		ref(r.SessionRef(), rec.Batch(), i)
		if j, ok := idx[r.ID()]; ok {
			p.dups++
			if fold != nil {
				fold(&kept[j], &recs[i])
			}
			continue
		}
		idx[r.ID()] = len(kept)
		kept = append(kept, recs[i])
	}
	t := newTable(set, rec, len(kept))
	for i := range kept {
		r := P(&kept[i])
		r.Stamp(srv.user, srv.at, srv.offsetMs)
		t.add(r.ID(), r.AppendValues(set, t.next()))
	}
	p.tables = append(p.tables, t.sorted())
}

// ref is where a batch first names a session id; the path is only spelled
// out for an error, never per record.
type ref struct {
	array string
	index int
	order int // position of the first reference in the batch
}

// conflict turns the session ids found to belong to another user into the
// error that names the first field of the batch that referred to one.
func (p *prepared) conflict(foreign []uuid.UUID) error {
	if len(foreign) == 0 {
		return nil
	}
	first := foreign[0]
	for _, id := range foreign[1:] {
		if p.refs[id].order < p.refs[first].order {
			first = id
		}
	}
	r := p.refs[first]
	return &ConflictError{Path: fmt.Sprintf("%s[%d].session_id", r.array, r.index), SessionID: first}
}

type serverStamp struct {
	user     string
	at       schema.Time
	offsetMs int64
}

func newTable(set schema.Set, r *schema.Record, n int) *table {
	cols := set.Columns(r)
	return &table{
		rec:  r,
		name: set.TableName(r),
		cols: cols,
		ids:  make([]uuid.UUID, 0, n),
		rows: make([][]any, 0, n),
	}
}

// next returns an empty row with room for every column.
func (t *table) next() []any { return make([]any, 0, len(t.cols)) }

func (t *table) add(id uuid.UUID, row []any) {
	if len(row) != len(t.cols) {
		panic(fmt.Sprintf("store: %s row has %d values for %d columns", t.name, len(row), len(t.cols)))
	}
	t.ids = append(t.ids, id)
	t.rows = append(t.rows, row)
}

func (t *table) sorted() table {
	order := make([]int, len(t.ids))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(t.ids[a][:], t.ids[b][:]) })
	ids := make([]uuid.UUID, len(order))
	rows := make([][]any, len(order))
	for i, j := range order {
		ids[i], rows[i] = t.ids[j], t.rows[j]
	}
	t.ids, t.rows = ids, rows
	return *t
}

// columnNames lists the column names of t.
func (t *table) columnNames() []string {
	out := make([]string, len(t.cols))
	for i, f := range t.cols {
		out[i] = f.Name()
	}
	return out
}
