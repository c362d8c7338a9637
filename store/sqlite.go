package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteMaxVars stays under SQLite's limit on bound parameters per statement.
const sqliteMaxVars = 30000

type sqliteStore struct {
	*keyDB // the API key methods, over this store
	db     *sql.DB
	loc    Location
	set    schema.Set
	now    func() time.Time
	// mu serialises this process's writers: SQLite has one writer at a
	// time anyway, and waiting on a mutex is cheaper and fairer than
	// spinning on SQLITE_BUSY. Other processes are kept out by BEGIN
	// IMMEDIATE and the busy timeout.
	mu sync.Mutex
}

func openSQLite(ctx context.Context, loc Location, opts Options) (*sqliteStore, error) {
	params := "?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	var dsn string
	if loc.Memory() {
		dsn = "file::memory:" + params
	} else {
		if strings.Contains(loc.Target(), "%") {
			return nil, fmt.Errorf("%w: %q: a path with %% cannot be opened; want %s", ErrBadURL, loc.Masked, AcceptedForms)
		}
		if dir := filepath.Dir(loc.Target()); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: %s: %w", loc.Masked, &kindError{kind: ErrUnavailable, err: err})
			}
		}
		// A new database file is the owner's alone: it may hold prompt
		// text (the self-hosted set). SQLite gives its -wal and -shm files
		// the database file's mode. An existing file keeps the mode its
		// owner chose.
		if f, err := os.OpenFile(loc.Target(), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			f.Close()
		} else if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("store: %s: %w", loc.Masked, &kindError{kind: ErrUnavailable, err: err})
		}
		dsn = "file:" + loc.Target() + params + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", loc.Masked, err)
	}
	if loc.Memory() {
		// Every connection to :memory: is a database of its own: keep one.
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	} else {
		db.SetMaxOpenConns(4)
	}
	// Switching a new file to WAL takes an exclusive lock, and SQLite does
	// not always wait for it with the busy handler: when processes open the
	// same new file at once, retry for as long as the busy timeout would.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.PingContext(ctx)
		if err == nil {
			break
		}
		if !isBusy(err) || time.Now().After(deadline) || ctx.Err() != nil {
			db.Close()
			return nil, fmt.Errorf("store: %s: %w", loc.Masked, classifySQLite(err))
		}
		time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
	}
	s := &sqliteStore{db: db, loc: loc, set: opts.Set, now: time.Now}
	s.keyDB = s.keys()
	return s, nil
}

func (s *sqliteStore) Location() Location { return s.loc }
func (s *sqliteStore) Set() schema.Set    { return s.set }
func (s *sqliteStore) Close() error       { return s.db.Close() }

func (s *sqliteStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: %s: %w", s.loc.Masked, classifySQLite(err))
	}
	return nil
}

func (s *sqliteStore) Migrate(ctx context.Context) ([]int, error) {
	return s.migrateFrom(ctx, migrationFS)
}

// migrateFrom applies the migrations of src, one BEGIN IMMEDIATE
// transaction each (see pgStore.migrateFrom for the rules).
func (s *sqliteStore) migrateFrom(ctx context.Context, src fs.FS) ([]int, error) {
	all, err := migrations(src, schema.SQLite, s.set)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mt := migrationsTable(s.set)
	var applied []int
	for busy := 0; ; {
		more := false
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			pending, adopt, err := s.plan(ctx, tx, all)
			if err != nil {
				return err
			}
			if len(adopt) > 0 {
				more = true
				if _, err := tx.ExecContext(ctx, adopt[0].sql); err != nil {
					return fmt.Errorf("migration %s (recorded without a checksum): %w", adopt[0].path, err)
				}
				_, err := tx.ExecContext(ctx, "UPDATE "+mt+" SET checksum = ? WHERE version = ?", adopt[0].checksum, adopt[0].version)
				return err
			}
			if len(pending) == 0 {
				return nil
			}
			more = true
			m := pending[0]
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.path, err)
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+mt+" (version, name, applied_at, checksum) VALUES (?, ?, ?, ?)",
				m.version, m.name, s.now().UTC().Format(schema.TimeLayout), m.checksum); err != nil {
				return err
			}
			applied = append(applied, m.version)
			return nil
		})
		if err != nil && isBusy(err) && busy < 3 && ctx.Err() == nil {
			// Another process holds the database past the busy timeout
			// (it migrates, or writes batch after batch): a migration is
			// rare and worth waiting for, a few timeouts at most.
			busy++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: migrate %s: %w", s.loc.Masked, classifySQLite(err))
		}
		if !more {
			return applied, nil
		}
	}
}

// plan makes the migration table (adding the checksum column a table made
// by an earlier build lacks) and compares it with all.
func (s *sqliteStore) plan(ctx context.Context, tx *sql.Tx, all []migration) (pending, adopt []migration, err error) {
	mt := migrationsTable(s.set)
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+mt+
		" (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL, checksum TEXT)"); err != nil {
		return nil, nil, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('"+mt+"') WHERE name = 'checksum'").Scan(&n); err != nil {
		return nil, nil, err
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+mt+" ADD COLUMN checksum TEXT"); err != nil {
			return nil, nil, err
		}
	}
	rows, err := tx.QueryContext(ctx, "SELECT version, coalesce(checksum, '') FROM "+mt)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var done []applied
	for rows.Next() {
		var a applied
		if err := rows.Scan(&a.version, &a.checksum); err != nil {
			return nil, nil, err
		}
		done = append(done, a)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return plan(all, done)
}

func (s *sqliteStore) Describe(ctx context.Context) (map[string][]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT m.name, p.name FROM sqlite_schema AS m, pragma_table_info(m.name) AS p
		WHERE m.type = 'table' ORDER BY m.name, p.cid`)
	if err != nil {
		return nil, fmt.Errorf("store: describe %s: %w", s.loc.Masked, classifySQLite(err))
	}
	defer rows.Close()
	return collectColumns(s.set, rows)
}

func (s *sqliteStore) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE, from _txlock
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *sqliteStore) Write(ctx context.Context, b *Batch) (Result, error) {
	p, err := prepare(s.set, b, s.now())
	if err != nil {
		return Result{}, err
	}
	res := Result{Duplicates: p.dups - p.endings, Accepted: p.endings}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if s.set == schema.CentralSet && len(p.refIDs) > 0 {
			if err := s.checkOwners(ctx, tx, p); err != nil {
				return err
			}
		}
		for i := range p.tables {
			t := &p.tables[i]
			conflict := fmt.Sprintf("ON CONFLICT (%s) DO NOTHING", t.rec.Key().Name())
			if t.rec == schema.Sessions() {
				conflict = s.sessionUpsert(t)
			}
			n, err := s.insert(ctx, tx, t, conflict)
			if err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			res.Accepted += int(n)
			res.Duplicates += len(t.rows) - int(n)
		}
		return nil
	})
	if err != nil {
		var ce *ConflictError
		if errors.As(err, &ce) {
			return Result{}, err
		}
		return Result{}, fmt.Errorf("store: write to %s: %w", s.loc.Masked, classifySQLite(err))
	}
	return res, nil
}

func (s *sqliteStore) checkOwners(ctx context.Context, tx *sql.Tx, p *prepared) error {
	var foreign []uuid.UUID
	for start := 0; start < len(p.refIDs); start += sqliteMaxVars - 1 {
		chunk := p.refIDs[start:min(len(p.refIDs), start+sqliteMaxVars-1)]
		args := make([]any, 0, len(chunk)+1)
		for _, id := range chunk {
			args = append(args, id.String())
		}
		args = append(args, p.userID)
		q := "SELECT session_id FROM telemetry_sessions WHERE session_id IN (" +
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + ") AND user_id <> ?"
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return err
			}
			id, err := uuid.Parse(v)
			if err != nil {
				rows.Close()
				return err
			}
			foreign = append(foreign, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return p.conflict(foreign)
}

// sessionUpsert mirrors the PostgreSQL one: fill in ended_at of a known
// session of the same owner, leave everything else alone.
func (s *sqliteStore) sessionUpsert(t *table) string {
	var set []string
	for _, f := range t.cols {
		if f.Key() || f.Scope() == schema.Server {
			continue
		}
		set = append(set, fmt.Sprintf("%s = COALESCE(excluded.%s, %s)", f.Name(), f.Name(), f.Name()))
	}
	where := fmt.Sprintf("%s.ended_at IS NULL AND excluded.ended_at IS NOT NULL", t.name)
	if s.set == schema.CentralSet {
		where = fmt.Sprintf("%s.user_id = excluded.user_id AND ", t.name) + where
	}
	return fmt.Sprintf("ON CONFLICT (session_id) DO UPDATE SET %s WHERE %s", strings.Join(set, ", "), where)
}

// insert writes the rows of t in as few multi-row statements as SQLite's
// parameter limit allows.
func (s *sqliteStore) insert(ctx context.Context, tx *sql.Tx, t *table, conflict string) (int64, error) {
	ncol := len(t.cols)
	per := max(1, sqliteMaxVars/ncol)
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", ncol), ",") + ")"
	head := fmt.Sprintf("INSERT INTO %s (%s) VALUES ", t.name, strings.Join(t.columnNames(), ", "))
	var total int64
	for start := 0; start < len(t.rows); start += per {
		rows := t.rows[start:min(len(t.rows), start+per)]
		args := make([]any, 0, len(rows)*ncol)
		for _, r := range rows {
			for _, v := range r {
				args = append(args, sqliteValue(v))
			}
		}
		q := head + strings.TrimSuffix(strings.Repeat(tuple+",", len(rows)), ",") + " " + conflict
		r, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// sqliteValue is the stored form of a canonical value: text for ids, times
// and JSON, 0/1 for booleans.
func sqliteValue(v any) any {
	switch x := v.(type) {
	case uuid.UUID:
		return x.String()
	case time.Time:
		return x.UTC().Format(schema.TimeLayout)
	case bool:
		if x {
			return int64(1)
		}
		return int64(0)
	case []string:
		return jsonList(x)
	case schema.Props:
		return propsText(x)
	}
	return v
}

func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}

func classifySQLite(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PROTOCOL:
		return &kindError{kind: ErrUnavailable, err: err}
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH:
		return &kindError{kind: ErrRejected, err: err}
	}
	return err
}
