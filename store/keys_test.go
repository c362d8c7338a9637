package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

func TestKeys(t *testing.T) {
	forEachCentral(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		mk := func(key, prefix, user string) APIKey {
			return APIKey{Hash: sha256.Sum256([]byte(key)), Prefix: prefix, UserID: user, Label: "laptop 1", CreatedAt: now}
		}
		a := mk("fred_live_AAAA1111rest", "fred_live_AAAA1111", "alice")
		b := mk("fred_live_AAAA2222rest", "fred_live_AAAA2222", "bob")
		for _, k := range []APIKey{a, b} {
			if err := s.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateKey(ctx, mk("x", "fred_live_BBBB1111", "robert'); DROP TABLE api_keys;--")); err == nil {
			t.Fatal("a malformed user id was accepted")
		}
		got, err := s.LookupKey(ctx, a.Hash)
		if err != nil || got.UserID != "alice" || got.Prefix != a.Prefix || !got.CreatedAt.Equal(now) || got.Revoked() {
			t.Fatalf("LookupKey = %+v, %v", got, err)
		}
		if _, err := s.LookupKey(ctx, sha256.Sum256([]byte("nope"))); !errors.Is(err, ErrNoKey) {
			t.Fatalf("unknown key: %v", err)
		}
		if _, err := s.RevokeKey(ctx, "fred_live_AAAA", now); !errors.Is(err, ErrAmbiguousKey) {
			t.Fatalf("ambiguous prefix: %v", err)
		}
		if _, err := s.RevokeKey(ctx, "fred_live_A%", now); err == nil {
			t.Fatal("a LIKE pattern was accepted as a prefix")
		}
		r, err := s.RevokeKey(ctx, "fred_live_AAAA2", now)
		if err != nil || r.UserID != "bob" || !r.Revoked() {
			t.Fatalf("revoke = %+v, %v", r, err)
		}
		if err := s.TouchKey(ctx, a.Hash, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListKeys(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("ListKeys = %v, %v", list, err)
		}
		if !list[0].LastUsedAt.Equal(now.Add(time.Minute)) || !list[1].Revoked() {
			t.Fatalf("list %+v", list)
		}
	})
	self := openStore(t, testdb.SQLite(t), schema.SelfHostedSet)
	if _, err := self.ListKeys(context.Background()); !errors.Is(err, ErrCentralOnly) {
		t.Fatalf("self-hosted keys: %v", err)
	}
}

// TestRevokeKeyIsExact: a prefix names keys byte for byte on both backends.
// On main before this test, SQLite compared with LIKE, which ignores case:
// revoking fred_live_abcd… revoked fred_live_ABCD…, another user's key.
func TestRevokeKeyIsExact(t *testing.T) {
	forEachCentral(t, func(t *testing.T, s Store) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Millisecond)
		upper := APIKey{Hash: sha256.Sum256([]byte("u")), Prefix: "fred_live_ABCD1234", UserID: "alice", CreatedAt: now}
		lower := APIKey{Hash: sha256.Sum256([]byte("l")), Prefix: "fred_live_abcd5678", UserID: "bob", CreatedAt: now}
		for _, k := range []APIKey{upper, lower} {
			if err := s.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		// Only alice's key starts with these bytes.
		r, err := s.RevokeKey(ctx, "fred_live_ABCD", now)
		if err != nil || r.UserID != "alice" {
			t.Fatalf("revoke fred_live_ABCD = %+v, %v; want alice's key alone", r, err)
		}
		// No key starts with these: bob's differs in case only.
		if r, err := s.RevokeKey(ctx, "fred_live_ABCD5678", now); !errors.Is(err, ErrNoKey) {
			t.Fatalf("revoke fred_live_ABCD5678 = %+v, %v; want ErrNoKey", r, err)
		}
		if k, err := s.LookupKey(ctx, lower.Hash); err != nil || k.Revoked() {
			t.Fatalf("bob's key after revoking other prefixes: %+v, %v", k, err)
		}
	})
}
