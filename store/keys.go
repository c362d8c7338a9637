package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/schema"
	"github.com/jackc/pgx/v5"
)

// APIKey is a stored key: everything but the key itself, which is never
// stored (only its SHA-256 is).
type APIKey struct {
	Hash       schema.Hash
	Prefix     string // fred_live_ and 8 more characters
	UserID     string
	Label      string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used
	RevokedAt  time.Time // zero: active
}

// Revoked reports whether the key was revoked.
func (k APIKey) Revoked() bool { return !k.RevokedAt.IsZero() }

// Key errors.
var (
	ErrNoKey        = errors.New("no such API key")
	ErrAmbiguousKey = errors.New("the prefix names more than one key")
	ErrCentralOnly  = errors.New("API keys live in the central table set only")
)

// Keys is the key table of a central store.
type Keys interface {
	CreateKey(ctx context.Context, k APIKey) error
	// LookupKey finds a key by the SHA-256 of the whole key.
	LookupKey(ctx context.Context, hash schema.Hash) (APIKey, error)
	ListKeys(ctx context.Context) ([]APIKey, error)
	// RevokeKey revokes the one key whose prefix starts with prefix, byte
	// for byte (case matters: the keys are base 62).
	RevokeKey(ctx context.Context, prefix string, at time.Time) (APIKey, error)
	// TouchKey records that the key was used at at.
	TouchKey(ctx context.Context, hash schema.Hash, at time.Time) error
}

const keyCols = "key_hash, key_prefix, user_id, label, created_at, last_used_at, revoked_at"

// keyDB is the little each backend provides: a query with positional
// parameters in its own placeholder style, and an exec.
type keyDB struct {
	set   schema.Set
	loc   Location
	query func(ctx context.Context, q string, args ...any) ([]APIKey, error)
	exec  func(ctx context.Context, q string, args ...any) (int64, error)
	ph    func(n int) string
	ts    func(t time.Time) any
}

func (k *keyDB) check() error {
	if k.set != schema.CentralSet {
		return ErrCentralOnly
	}
	return nil
}

func (k *keyDB) CreateKey(ctx context.Context, key APIKey) error {
	if err := k.check(); err != nil {
		return err
	}
	if !schema.PatKeyPrefix().Match(key.Prefix) || !schema.PatUserID().Match(key.UserID) || !schema.PatLabel().Match(key.Label) {
		return fmt.Errorf("store: key prefix, user id (%s) or label (%s) is malformed", schema.PatUserID().Doc(), schema.PatLabel().Doc())
	}
	_, err := k.exec(ctx, fmt.Sprintf("INSERT INTO api_keys (key_hash, key_prefix, user_id, label, created_at) VALUES (%s, %s, %s, %s, %s)",
		k.ph(1), k.ph(2), k.ph(3), k.ph(4), k.ph(5)), key.Hash.String(), key.Prefix, key.UserID, key.Label, k.ts(key.CreatedAt))
	return err
}

func (k *keyDB) LookupKey(ctx context.Context, hash schema.Hash) (APIKey, error) {
	if err := k.check(); err != nil {
		return APIKey{}, err
	}
	keys, err := k.query(ctx, "SELECT "+keyCols+" FROM api_keys WHERE key_hash = "+k.ph(1), hash.String())
	if err != nil {
		return APIKey{}, err
	}
	if len(keys) == 0 {
		return APIKey{}, ErrNoKey
	}
	return keys[0], nil
}

func (k *keyDB) ListKeys(ctx context.Context) ([]APIKey, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.query(ctx, "SELECT "+keyCols+" FROM api_keys ORDER BY created_at, key_prefix")
}

func (k *keyDB) RevokeKey(ctx context.Context, prefix string, at time.Time) (APIKey, error) {
	if err := k.check(); err != nil {
		return APIKey{}, err
	}
	if !apikey.Names(prefix) {
		return APIKey{}, fmt.Errorf("%w: give at least %s and 4 more characters", ErrNoKey, apikey.Scheme)
	}
	// The stored prefix starts with exactly these bytes: no LIKE, which
	// SQLite compares without case (fred_live_abcd would revoke
	// fred_live_ABCD…) and which would read _ and % as wildcards.
	keys, err := k.query(ctx, fmt.Sprintf("SELECT %s FROM api_keys WHERE substr(key_prefix, 1, %d) = %s", keyCols, len(prefix), k.ph(1)), prefix)
	if err != nil {
		return APIKey{}, err
	}
	switch len(keys) {
	case 0:
		return APIKey{}, fmt.Errorf("%w: %s", ErrNoKey, prefix)
	case 1:
	default:
		return APIKey{}, fmt.Errorf("%w: %s matches %d keys; give more characters", ErrAmbiguousKey, prefix, len(keys))
	}
	key := keys[0]
	if key.Revoked() {
		return key, nil
	}
	if _, err := k.exec(ctx, "UPDATE api_keys SET revoked_at = "+k.ph(1)+" WHERE key_hash = "+k.ph(2)+" AND revoked_at IS NULL",
		k.ts(at), key.Hash.String()); err != nil {
		return APIKey{}, err
	}
	key.RevokedAt = at
	return key, nil
}

func (k *keyDB) TouchKey(ctx context.Context, hash schema.Hash, at time.Time) error {
	if err := k.check(); err != nil {
		return err
	}
	_, err := k.exec(ctx, "UPDATE api_keys SET last_used_at = "+k.ph(1)+" WHERE key_hash = "+k.ph(2), k.ts(at), hash.String())
	return err
}

// scanKey reads one api_keys row in keyCols order; times arrive as
// time.Time (PostgreSQL) or text (SQLite).
func scanKey(scan func(...any) error, parseTime func(any) (time.Time, error)) (APIKey, error) {
	var k APIKey
	var hash string
	var created, used, revoked any
	if err := scan(&hash, &k.Prefix, &k.UserID, &k.Label, &created, &used, &revoked); err != nil {
		return k, err
	}
	h, err := schema.ParseHash(hash)
	if err != nil {
		return k, err
	}
	k.Hash = h
	for _, x := range []struct {
		v   any
		dst *time.Time
	}{{created, &k.CreatedAt}, {used, &k.LastUsedAt}, {revoked, &k.RevokedAt}} {
		if x.v == nil {
			continue
		}
		if *x.dst, err = parseTime(x.v); err != nil {
			return k, err
		}
	}
	return k, nil
}

func (s *pgStore) keys() *keyDB {
	return &keyDB{
		set: s.set, loc: s.loc,
		ph: func(n int) string { return fmt.Sprintf("$%d", n) },
		ts: func(t time.Time) any { return t },
		exec: func(ctx context.Context, q string, args ...any) (int64, error) {
			tag, err := s.pool.Exec(ctx, q, args...)
			if err != nil {
				return 0, fmt.Errorf("store: %s: %w", s.loc.Masked, classify(err))
			}
			return tag.RowsAffected(), nil
		},
		query: func(ctx context.Context, q string, args ...any) ([]APIKey, error) {
			rows, err := s.pool.Query(ctx, q, args...)
			if err != nil {
				return nil, fmt.Errorf("store: %s: %w", s.loc.Masked, classify(err))
			}
			out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (APIKey, error) {
				return scanKey(r.Scan, func(v any) (time.Time, error) {
					t, ok := v.(time.Time)
					if !ok {
						return time.Time{}, fmt.Errorf("store: api_keys time of type %T", v)
					}
					return t, nil
				})
			})
			if err != nil {
				return nil, fmt.Errorf("store: %s: %w", s.loc.Masked, classify(err))
			}
			return out, nil
		},
	}
}

func (s *sqliteStore) keys() *keyDB {
	return &keyDB{
		set: s.set, loc: s.loc,
		ph: func(int) string { return "?" },
		ts: func(t time.Time) any { return t.UTC().Format(schema.TimeLayout) },
		exec: func(ctx context.Context, q string, args ...any) (int64, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			r, err := s.db.ExecContext(ctx, q, args...)
			if err != nil {
				return 0, fmt.Errorf("store: %s: %w", s.loc.Masked, classifySQLite(err))
			}
			return r.RowsAffected()
		},
		query: func(ctx context.Context, q string, args ...any) ([]APIKey, error) {
			rows, err := s.db.QueryContext(ctx, q, args...)
			if err != nil {
				return nil, fmt.Errorf("store: %s: %w", s.loc.Masked, classifySQLite(err))
			}
			defer rows.Close()
			var out []APIKey
			for rows.Next() {
				k, err := scanKey(rows.Scan, func(v any) (time.Time, error) {
					str, ok := v.(string)
					if !ok {
						return time.Time{}, fmt.Errorf("store: api_keys time of type %T", v)
					}
					return time.Parse(time.RFC3339Nano, str)
				})
				if err != nil {
					return nil, err
				}
				out = append(out, k)
			}
			return out, rows.Err()
		},
	}
}
