package apikey

import (
	"strings"
	"testing"

	"github.com/fredcode/fredtel/schema"
)

func TestNewKeysAreValidAndStorable(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k := New()
		if !Valid(k) || seen[k] {
			t.Fatalf("New: %q (valid %v, repeated %v)", k, Valid(k), seen[k])
		}
		seen[k] = true
		if !schema.PatKeyPrefix().Match(Stored(k)) {
			t.Fatalf("the stored prefix %q of %q does not fit the schema's key_prefix", Stored(k), k)
		}
		if !strings.HasPrefix(k, strings.TrimSuffix(Shown(k), "…")) || len(Shown(k)) >= len(Stored(k)) {
			t.Fatalf("Shown(%q) = %q", k, Shown(k))
		}
	}
}

func TestShape(t *testing.T) {
	for key, want := range map[string]bool{
		"fred_live_0123456789abcdefghij":        true,
		"fred_live_0123456789abcdefghi":         false, // 19
		"fred_live_" + strings.Repeat("a", 128): true,
		"fred_live_" + strings.Repeat("a", 129): false,
		"fred_live_0123456789abcdefghi_":        false,
		"fred_test_0123456789abcdefghij":        false,
		"":                                      false,
	} {
		if Valid(key) != want {
			t.Errorf("Valid(%q) = %v", key, !want)
		}
	}
	for key, want := range map[string]string{
		"fred_live_ab12cd34ef56gh78ij90kl": "fred_live_ab12…",
		"fred_live_ab":                     "fred_live_…",
		"hunter2hunter2hunter2":            "fred_live_…", // never a stranger's text
	} {
		if got := Shown(key); got != want {
			t.Errorf("Shown(%q) = %q, want %q", key, got, want)
		}
	}
}
