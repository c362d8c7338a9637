package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

type pgStore struct {
	*keyDB // the API key methods, over this store
	pool   *pgxpool.Pool
	loc    Location
	set    schema.Set
	now    func() time.Time
}

func openPostgres(ctx context.Context, loc Location, opts Options) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(loc.Target())
	if err != nil {
		// pgconn redacts the password in its own message.
		return nil, fmt.Errorf("store: %s: %w", loc.Masked, err)
	}
	// No named prepared statements unless the URL asks for them: the same
	// store then works through a transaction-mode pooler (PgBouncer, Neon's
	// pooled endpoint), where a statement prepared on one server connection
	// is missing on the next. Every statement here is one round trip anyway.
	if !strings.Contains(loc.Target(), "default_query_exec_mode") {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	cfg.MaxConns = 8
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", loc.Masked, classify(err))
	}
	s := &pgStore{pool: pool, loc: loc, set: opts.Set, now: time.Now}
	s.keyDB = s.keys()
	return s, nil
}

func (s *pgStore) Location() Location { return s.loc }
func (s *pgStore) Set() schema.Set    { return s.set }
func (s *pgStore) Close() error       { s.pool.Close(); return nil }

func (s *pgStore) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: %s: %w", s.loc.Masked, classify(err))
	}
	return nil
}

// migrateLockKey is the advisory lock that serialises migrations of one set.
func migrateLockKey(set schema.Set) int64 { return 0x6672656474656c00 + int64(set) }

func (s *pgStore) Migrate(ctx context.Context) ([]int, error) { return s.migrateFrom(ctx, migrationFS) }

// migrateFrom applies the migrations of src one transaction each, under a
// transaction-scoped advisory lock: it works through a transaction-mode
// pooler and can never be left behind by a crashed migrator. A migration
// with VALIDATE statements commits its changes first and validates in a
// second transaction, so the scan of a big table does not stop writes; a
// crash between the two leaves it unrecorded, and its changes run again
// harmlessly.
func (s *pgStore) migrateFrom(ctx context.Context, src fs.FS) ([]int, error) {
	all, err := migrations(src, schema.Postgres, s.set)
	if err != nil {
		return nil, err
	}
	mt := migrationsTable(s.set)
	var applied []int
	for {
		var next *migration
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			pending, adopt, err := s.lockAndPlan(ctx, tx, all)
			if err != nil {
				return err
			}
			if len(adopt) > 0 {
				if _, err := tx.Exec(ctx, adopt[0].sql); err != nil {
					return fmt.Errorf("migration %s (recorded without a checksum): %w", adopt[0].path, err)
				}
				_, err := tx.Exec(ctx, "UPDATE "+mt+" SET checksum = $1 WHERE version = $2", adopt[0].checksum, adopt[0].version)
				next = &adopt[0]
				return err
			}
			if len(pending) == 0 {
				return nil
			}
			m := pending[0]
			change, validate := m.parts()
			if _, err := tx.Exec(ctx, change); err != nil {
				return fmt.Errorf("migration %s: %w", m.path, err)
			}
			next = &m
			if validate != "" {
				return nil // recorded once validated
			}
			applied = append(applied, m.version)
			return s.record(ctx, tx, m)
		})
		if err != nil {
			return nil, fmt.Errorf("store: migrate %s: %w", s.loc.Masked, classify(err))
		}
		if next == nil {
			return applied, nil
		}
		if _, validate := next.parts(); validate == "" {
			continue
		}
		m := *next
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			pending, _, err := s.lockAndPlan(ctx, tx, all)
			if err != nil || len(pending) == 0 || pending[0].version != m.version {
				return err // another process finished it
			}
			if _, err := tx.Exec(ctx, validatePart(m)); err != nil {
				return fmt.Errorf("migration %s: %w", m.path, err)
			}
			applied = append(applied, m.version)
			return s.record(ctx, tx, m)
		})
		if err != nil {
			return nil, fmt.Errorf("store: migrate %s: %w", s.loc.Masked, classify(err))
		}
	}
}

func validatePart(m migration) string { _, v := m.parts(); return v }

// lockAndPlan takes the set's migration lock for the transaction, makes the
// migration table (adding the checksum column a table made by an earlier
// build lacks) and compares it with all.
func (s *pgStore) lockAndPlan(ctx context.Context, tx pgx.Tx, all []migration) (pending, adopt []migration, err error) {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey(s.set)); err != nil {
		return nil, nil, err
	}
	mt := migrationsTable(s.set)
	if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+mt+
		" (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), checksum text);"+
		"ALTER TABLE "+mt+" ADD COLUMN IF NOT EXISTS checksum text"); err != nil {
		return nil, nil, err
	}
	rows, err := tx.Query(ctx, "SELECT version, coalesce(checksum, '') FROM "+mt)
	if err != nil {
		return nil, nil, err
	}
	done, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (applied, error) {
		var a applied
		var v int32
		err := r.Scan(&v, &a.checksum)
		a.version = int(v)
		return a, err
	})
	if err != nil {
		return nil, nil, err
	}
	return plan(all, done)
}

func (s *pgStore) record(ctx context.Context, tx pgx.Tx, m migration) error {
	_, err := tx.Exec(ctx, "INSERT INTO "+migrationsTable(s.set)+" (version, name, checksum) VALUES ($1, $2, $3)", m.version, m.name, m.checksum)
	return err
}

func (s *pgStore) Describe(ctx context.Context) (map[string][]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
	if err != nil {
		return nil, fmt.Errorf("store: describe %s: %w", s.loc.Masked, classify(err))
	}
	defer rows.Close()
	return collectColumns(s.set, rows)
}

func (s *pgStore) Write(ctx context.Context, b *Batch) (Result, error) {
	p, err := prepare(s.set, b, s.now())
	if err != nil {
		return Result{}, err
	}
	var res Result
	retry := false // a record of the batch is already stored: go through ON CONFLICT
	for attempt := 0; ; attempt++ {
		res, err = s.writeOnce(ctx, p, retry)
		if err == nil || attempt == 4 {
			break
		}
		if !retry && uniqueViolation(err) {
			// Only a batch sent before meets its own rows: the whole
			// transaction was rolled back, and goes again skipping them.
			retry = true
			continue
		}
		if !retryableTx(err) {
			break
		}
		// Deadlock or serialization failure between writers of overlapping
		// batches: the whole transaction was rolled back, so just go again.
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	if err != nil {
		var ce *ConflictError
		if errors.As(err, &ce) || errors.Is(err, ErrNoUser) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("store: write to %s: %w", s.loc.Masked, classify(err))
	}
	return res, nil
}

func retryableTx(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// sessionLockClass is the first key of the advisory locks on session ids:
// the two-key form, a key space apart from the migration lock's.
const sessionLockClass = 0x66726564 // "fred"

// writeOnce writes p in one transaction, in as few round trips as the
// protocol allows: BEGIN; one pipeline of the ownership check and the
// statements that can go by parameters; a COPY per new table; COMMIT.
//
// A batch seen for the first time (the common case) is written with COPY,
// which fails on an id already stored; Write then calls again with retry
// set, and every table goes by INSERT … ON CONFLICT, in the one pipeline.
// A savepoint around each COPY would spare that redo, but cost two round
// trips per table on every batch.
func (s *pgStore) writeOnce(ctx context.Context, p *prepared, retry bool) (Result, error) {
	res := Result{Duplicates: p.dups - p.endings, Accepted: p.endings}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var pipe pgx.Batch
		check := s.set == schema.CentralSet && len(p.refIDs) > 0 // mutant:cross-user-guard-off
		if check {
			ids := make([]string, len(p.refIDs))
			for i, id := range p.refIDs {
				ids[i] = id.String()
			}
			// Batches that name the same session id take turns until
			// commit. Without it, two keys creating one session at once
			// both pass the check below (neither sees the other's
			// uncommitted row) and both write into it. Keys are taken in
			// ascending order, so no two batches wait on each other in a
			// cycle; the check, a statement of its own, takes its snapshot
			// after the locks.
			pipe.Queue(fmt.Sprintf("SELECT count(pg_advisory_xact_lock(%d, k)) FROM (SELECT DISTINCT hashtext(x) AS k FROM unnest($1::text[]) x ORDER BY 1) s", // mutant:session-lock-off
				sessionLockClass), ids)
			pipe.Queue("SELECT session_id FROM telemetry_sessions WHERE session_id = ANY($1::uuid[]) AND user_id <> $2", ids, p.userID)
		}
		var piped, copied []*table
		for i := range p.tables {
			t := &p.tables[i]
			var sql string
			var args []any
			switch {
			case t.rec == schema.Sessions():
				sql, args = s.upsertSessions(t)
			case retry:
				sql, args = unnestInsert(t, fmt.Sprintf("ON CONFLICT (%s) DO NOTHING", t.rec.Key().Name()))
			default:
				copied = append(copied, t)
				continue
			}
			pipe.Queue(sql, args...)
			piped = append(piped, t)
		}
		// The turns go last: their trigger updates the turn_hours rows
		// that every batch of the same hour shares, and the batch holds
		// those row locks until it commits; written last, for the commit
		// only, concurrent batches barely wait on each other.
		if i := slices.IndexFunc(copied, func(t *table) bool { return t.rec == schema.Turns() }); i >= 0 {
			t := copied[i]
			copied = append(slices.Delete(copied, i, i+1), t)
		}
		count := func(t *table, n int64) {
			res.Accepted += int(n)
			res.Duplicates += len(t.rows) - int(n)
		}
		if pipe.Len() > 0 {
			if err := s.runPipe(ctx, tx, &pipe, p, check, piped, count); err != nil {
				return err
			}
		}
		for _, t := range copied {
			n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.columnNames(), pgx.CopyFromRows(copyRows(t)))
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			count(t, n)
		}
		return nil
	})
	return res, err
}

// runPipe sends the pipeline and reads its answers in order: the lock and
// the ownership check first, when check is set, then one per piped table.
// A session id owned by another user ends the transaction, whose writes
// are rolled back with it.
func (s *pgStore) runPipe(ctx context.Context, tx pgx.Tx, pipe *pgx.Batch, p *prepared, check bool, piped []*table, count func(*table, int64)) (err error) {
	br := tx.SendBatch(ctx, pipe)
	defer func() {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
	}()
	if check {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		foreign, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		if err := p.conflict(foreign); err != nil {
			return err
		}
	}
	for _, t := range piped {
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		count(t, tag.RowsAffected())
	}
	return nil
}

func copyRows(t *table) [][]any {
	rows := make([][]any, len(t.rows))
	for i, r := range t.rows {
		rows[i] = CopyValues(r)
	}
	return rows
}

// upsertSessions is the statement that inserts new sessions and fills in
// ended_at of known ones. A conflicting row owned by another user is left
// alone (the WHERE of the update); the ownership check has already refused
// such a batch, under a lock on the session id.
func (s *pgStore) upsertSessions(t *table) (string, []any) {
	var set []string
	for _, f := range t.cols {
		if f.Key() || f.Scope() == schema.Server {
			continue
		}
		set = append(set, fmt.Sprintf("%s = COALESCE(EXCLUDED.%s, t.%s)", f.Name(), f.Name(), f.Name()))
	}
	where := "t.ended_at IS NULL AND EXCLUDED.ended_at IS NOT NULL"
	if s.set == schema.CentralSet {
		where = "t.user_id = EXCLUDED.user_id AND " + where
	}
	return unnestInsert(t, fmt.Sprintf("ON CONFLICT (session_id) DO UPDATE SET %s WHERE %s", strings.Join(set, ", "), where))
}

// unnestInsert builds one INSERT of all rows of t from one text array per
// column, cast to the column types: one statement, one round trip.
func unnestInsert(t *table, conflict string) (string, []any) {
	cols := t.columnNames()
	params := make([]string, len(cols))
	casts := make([]string, len(cols))
	args := make([]any, len(cols))
	for j, f := range t.cols {
		params[j] = fmt.Sprintf("$%d::text[]", j+1)
		casts[j] = fmt.Sprintf("u.%s::%s", f.Name(), f.Kind().SQLType(schema.Postgres))
		arr := make([]*string, len(t.rows))
		for i, r := range t.rows {
			arr[i] = textValue(r[j])
		}
		args[j] = arr
	}
	sql := fmt.Sprintf("INSERT INTO %s AS t (%s) SELECT %s FROM unnest(%s) AS u(%s) %s",
		t.name, strings.Join(cols, ", "), strings.Join(casts, ", "), strings.Join(params, ", "), strings.Join(cols, ", "), conflict)
	return sql, args
}

// CopyValues converts canonical values (a record's AppendValues) into what
// pgx's binary COPY encodes: the benchmarks' own COPYs use it too, so that
// they copy exactly what the store would.
func CopyValues(row []any) []any {
	out := make([]any, len(row))
	for i, v := range row {
		switch x := v.(type) {
		case uuid.UUID:
			out[i] = pgtype.UUID{Bytes: x, Valid: true}
		case []string:
			out[i] = jsonList(x)
		case schema.Props:
			out[i] = propsText(x)
		default:
			out[i] = v
		}
	}
	return out
}

// textValue is the PostgreSQL text input form of a canonical value.
func textValue(v any) *string {
	var s string
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		s = x
	case uuid.UUID:
		s = x.String()
	case time.Time:
		s = x.UTC().Format(time.RFC3339Nano)
	case int64:
		s = strconv.FormatInt(x, 10)
	case bool:
		s = strconv.FormatBool(x)
	case []string:
		s = jsonList(x)
	case schema.Props:
		s = propsText(x)
	default:
		panic(fmt.Sprintf("store: no text form for %T", v))
	}
	return &s
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func propsText(p schema.Props) string {
	if len(p) == 0 {
		return "{}"
	}
	return string(p)
}

// classify wraps err with the sentinel that says what a caller can do about
// it. It never adds the URL: callers add the masked one.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03",
			pe.Code == "53300", pe.Code == "53100", pe.Code == "40P01", pe.Code == "40001":
			return &kindError{kind: ErrUnavailable, err: err}
		case strings.HasPrefix(pe.Code, "23"), strings.HasPrefix(pe.Code, "22"):
			return &kindError{kind: ErrRejected, err: err}
		}
		return err
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) || isNetErr(err) {
		return &kindError{kind: ErrUnavailable, err: err}
	}
	return err
}

// kindError carries a sentinel beside the driver's error, so errors.Is finds
// both and the message stays the driver's.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.kind.Error() + ": " + e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }
