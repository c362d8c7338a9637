package abuse

import (
	"testing"

	"github.com/fredcode/fredtel/internal/proof"
)

// mutants each remove one protection the catalogue, the cross-user or the
// flood checks guard, and name the one case that must then fail: each
// Run selects a single case, so a run shows exactly which check caught it.
var mutants = []proof.Mutant{
	{
		Name:   "parser-keeps-duplicate-keys",
		Breaks: "duplicate-key detection in the wire parser",
		File:   "server/wire/jsonv.go",
		Old:    "if dup {",
		New:    "if false && dup {",
		Pkg:    "./proof/abuse",
		Run:    "TestCatalogue/^dup_turn_mode$",
	},
	{
		Name:   "forbidden-fields-accepted",
		Breaks: "the allowlist's refusal of self-hosted and server fields (an escaped user_input key)",
		File:   "server/wire/validate.go",
		Old:    "if !v.allowed(f) {",
		New:    "if false && !v.allowed(f) {",
		Pkg:    "./proof/abuse",
		Run:    "TestCatalogue/^escaped_key_turn_user_input$",
	},
	{
		Name:   "unknown-fields-ignored",
		Breaks: "the refusal of fields the schema does not declare",
		File:   "server/wire/validate.go",
		Old:    "\t\tif fi < 0 {\n\t\t\tfl.raw = true\n",
		New:    "\t\tif fi < 0 {\n\t\t\tcontinue\n\t\t\tfl.raw = true\n",
		Pkg:    "./proof/abuse",
		Run:    "TestCatalogue/^forbidden_session_hostname$",
	},
	{
		Name:   "keys-echoed-in-paths",
		Breaks: "the placeholder for keys that are not plain identifiers (a sentence as a key)",
		File:   "server/wire/validate.go",
		Old:    `return "<unprintable key>"`,
		New:    `return k`,
		Pkg:    "./proof/abuse",
		Run:    "TestCatalogue/^smuggle_sentence_as_key$",
	},
	{
		Name:   "nesting-unbounded",
		Breaks: "the parser's nesting bound",
		File:   "server/wire/jsonv.go",
		Old:    "if depth > maxNesting {",
		New:    "if false && depth > maxNesting {",
		Pkg:    "./proof/abuse",
		Run:    "TestCatalogue/^nesting_props_array_100$",
	},
	{
		Name:   "inflated-size-unchecked",
		Breaks: "the decompressed-size limit (gzip bomb)",
		File:   "server/server.go",
		Old:    "if int64(len(body)) > s.cfg.MaxInflated {",
		New:    "if false {",
		Pkg:    "./proof/abuse",
		Run:    "TestCatalogue/^gzip_bomb_64mib$",
	},
	{
		Name:   "revoked-keys-accepted",
		Breaks: "the refusal of revoked keys",
		File:   "server/server.go",
		Old:    "if !e.found || e.key.Revoked() ||",
		New:    "if !e.found ||",
		Pkg:    "./proof/abuse",
		Run:    "TestCatalogue/^key_revoked_after_use$",
	},
	{
		Name:   "cross-user-guard-off",
		Breaks: "the store's check that a batch's session ids are not another user's",
		File:   "store/postgres.go",
		Old:    "check := s.set == schema.CentralSet && len(p.refIDs) > 0",
		New:    "check := false && s.set == schema.CentralSet && len(p.refIDs) > 0",
		Pkg:    "./proof/abuse",
		Run:    "TestCrossUser/^add_turn_to_a_session$",
	},
	{
		Name:   "session-lock-off",
		Breaks: "the per-session lock that makes the ownership check hold for two keys creating one session at once",
		File:   "store/postgres.go",
		Old:    `"SELECT count(pg_advisory_xact_lock(%d, k)) FROM`,
		New:    `"SELECT %d + count(k) FROM`,
		Pkg:    "./proof/abuse",
		Run:    "TestCrossUser/^race_for_a_new_session$",
	},
	{
		Name:   "rate-limit-off",
		Breaks: "the per-key token bucket",
		File:   "server/limit.go",
		Old:    "if b.tokens >= 1 {",
		New:    "if true || b.tokens >= 1 {",
		Pkg:    "./proof/abuse",
		Run:    "TestFlood/^one_key$",
	},
}

func TestMutants(t *testing.T) { proof.RunMutants(t, mutants) }
