package insights

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the embedded store's driver
)

// Errors Compute returns, to be told apart with errors.Is. Their messages
// are one line and never hold a password.
var (
	// ErrUnreachable: the database could not be opened or reached.
	ErrUnreachable = errors.New("database unreachable")
	// ErrNoTables: the database has no telemetry tables of the set.
	ErrNoTables = errors.New("no telemetry tables")
	// ErrSchemaVersion: the tables are of a schema version this build does
	// not read.
	ErrSchemaVersion = errors.New("unsupported schema version")
	// ErrNoData: no session at all, or none in the window.
	ErrNoData = errors.New("no data")
)

// db is a read-only view of one table set of one database.
type db struct {
	sql     *sql.DB
	dialect schema.Dialect
	set     schema.Set
	loc     store.Location
}

// open connects to the database at url (store.AcceptedForms). It never
// creates a SQLite file that is not there.
func open(ctx context.Context, url string, set schema.Set) (*db, error) {
	loc, err := store.ParseURL(url)
	if err != nil {
		return nil, err
	}
	d := &db{dialect: loc.Dialect, set: set, loc: loc}
	switch loc.Dialect {
	case schema.Postgres:
		cfg, err := pgx.ParseConfig(loc.Target())
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %s", loc.Masked, ErrUnreachable, oneLine(err))
		}
		if !strings.Contains(loc.Target(), "default_query_exec_mode") {
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec // poolers: see store
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = 10 * time.Second
		}
		d.sql = stdlib.OpenDB(*cfg)
		d.sql.SetMaxOpenConns(2)
	default:
		if loc.Memory() {
			return nil, fmt.Errorf("%s: %w: an in-memory database is empty", loc.Masked, ErrNoTables)
		}
		fi, err := os.Stat(loc.Target())
		if err != nil || !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: %w: no database file there", loc.Masked, ErrUnreachable)
		}
		if strings.ContainsAny(loc.Target(), "%?#") {
			return nil, fmt.Errorf("%s: %w: a path with %%, ? or # cannot be opened", loc.Masked, ErrUnreachable)
		}
		// query_only: this command never writes, whatever its SQL says.
		d.sql, err = sql.Open("sqlite", "file:"+loc.Target()+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
		if err != nil {
			return nil, fmt.Errorf("%s: %w: %s", loc.Masked, ErrUnreachable, oneLine(err))
		}
		d.sql.SetMaxOpenConns(1)
	}
	if err := d.sql.PingContext(ctx); err != nil {
		d.sql.Close()
		return nil, fmt.Errorf("%s: %w: %s", loc.Masked, ErrUnreachable, oneLine(err))
	}
	return d, nil
}

func (d *db) close() error { return d.sql.Close() }

// table is the set's name of a record table ("turns" → "dsc_turns").
func (d *db) table(name string) string { return d.set.Prefix() + name }

// checkVersion reads the set's migrations table: this build reads exactly
// the tables of schema.Version.
func (d *db) checkVersion(ctx context.Context) error {
	mt := d.set.Prefix() + "schema_migrations"
	var v sql.NullInt64
	err := d.sql.QueryRowContext(ctx, "SELECT max(version) FROM "+mt).Scan(&v)
	if err != nil {
		if missingTable(err) {
			return fmt.Errorf("%s: %w of the %s set (%s is missing): run fredtel migrate --set %s, or pick --tables", d.loc.Masked, ErrNoTables, d.set, mt, d.set)
		}
		return fmt.Errorf("%s: %w: %s", d.loc.Masked, ErrUnreachable, oneLine(err))
	}
	switch {
	case !v.Valid:
		return fmt.Errorf("%s: %w of the %s set (%s is empty): run fredtel migrate --set %s", d.loc.Masked, ErrNoTables, d.set, mt, d.set)
	case v.Int64 > schema.Version:
		return fmt.Errorf("%s: %w: the %s tables are at schema version %d, newer than this fredtel reads (%d): upgrade fredtel", d.loc.Masked, ErrSchemaVersion, d.set, v.Int64, schema.Version)
	case v.Int64 < schema.Version:
		return fmt.Errorf("%s: %w: the %s tables are at schema version %d, this fredtel reads %d: run fredtel migrate --set %s", d.loc.Masked, ErrSchemaVersion, d.set, v.Int64, schema.Version, d.set)
	}
	return nil
}

func missingTable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "42P01" // undefined_table
	}
	return strings.Contains(err.Error(), "no such table")
}

// oneLine shortens a driver error to its cause, on one line: for a network
// failure the operation and reason, never the whole connection string.
func oneLine(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op + ": " + op.Err.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.Error()
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	return pwRE.ReplaceAllString(s, "password=***")
}

var pwRE = regexp.MustCompile(`password=\S+`)
