package abuse

import (
	"testing"

	"github.com/fredcode/fredtel/proof"
)

// mutants each remove one protection the catalogue, the cross-user or the
// flood checks guard, and name the one case that must then fail: each
// Run selects a single case, so a run shows exactly which check caught it.
// Each edits the line of File that ends with "// mutant:" and its Name;
// "if " → "if false && " turns a check off, "if true || " lets all pass.
var mutants = []proof.Mutant{
	{Name: "parser-keeps-duplicate-keys", Breaks: "duplicate-key detection in the wire parser",
		File: "wire/jsonv.go", Old: "if ", New: "if false && ", Pkg: "./proof/abuse", Run: "TestCatalogue/^dup_turn_mode$"},
	{Name: "forbidden-fields-accepted", Breaks: "the allowlist's refusal of self-hosted and server fields (an escaped user_input key)",
		File: "wire/validate.go", Old: "if ", New: "if false && ", Pkg: "./proof/abuse", Run: "TestCatalogue/^escaped_key_turn_user_input$"},
	{Name: "unknown-fields-ignored", Breaks: "the refusal of fields the schema does not declare",
		File: "wire/validate.go", Old: "{", New: "{ continue;", Pkg: "./proof/abuse", Run: "TestCatalogue/^forbidden_session_hostname$"},
	{Name: "keys-echoed-in-paths", Breaks: "paths from declared names only: a key the declaration does not know is <unknown key> (`x[SECRET…` duplicated)",
		File: "wire/scan.go", Old: "unknownKey", New: "k", Pkg: "./proof/abuse", Run: "TestCatalogue/^path_bracket_key_duplicated$"},
	{Name: "nesting-unbounded", Breaks: "the parser's nesting bound",
		File: "wire/scan.go", Old: "if ", New: "if false && ", Pkg: "./proof/abuse", Run: "TestCatalogue/^nesting_props_array_100$"},
	{Name: "scan-records-unbounded", Breaks: "the bound on records, met while parsing (8 MiB of {} in one array)",
		File: "wire/scan.go", Old: "if ", New: "if false && ", Pkg: "./proof/abuse", Run: "TestCatalogue/^bounds_empty_records_8mib_gzip$"},
	{Name: "scan-arrays-unbounded", Breaks: "the bound on array lengths, met while parsing (a catalog of 4 million items)",
		File: "wire/scan.go", Old: "if ", New: "if false && ", Pkg: "./wire", Run: "TestValidateWorkIsBounded/^wide_array_in_a_catalog$"},
	{Name: "scan-objects-unbounded", Breaks: "the bound on object widths, met while parsing (5000 members in a record)",
		File: "wire/scan.go", Old: "if ", New: "if false && ", Pkg: "./wire", Run: "TestValidateWorkIsBounded/^5000_members_in_a_record$"},
	{Name: "scan-strings-unbounded", Breaks: "the bound on string lengths, met while parsing (an escaped 1 MiB model)",
		File: "wire/scan.go", Old: "if ", New: "if false && ", Pkg: "./proof/abuse", Run: "TestCatalogue/^bounds_long_escaped_string_gzip$"},
	{Name: "scan-root-shape-unchecked", Breaks: "the refusal of a root that is not an object at its first byte (8 MiB of [0,0,0,…])",
		File: "wire/scan.go", Old: "if ", New: "if false && ", Pkg: "./wire", Run: "TestValidateWorkIsBounded/^wide_array_at_the_root$"},
	{Name: "admission-slots-off", Breaks: "the bound on requests validated at once (503 beyond it)",
		File: "server/admit.go", Old: "if ", New: "if false && ", Pkg: "./server", Run: "TestAdmissionAnswersBusyAtOnce"},
	{Name: "admission-budget-off", Breaks: "the bound on bytes held by the requests being validated (503 beyond it)",
		File: "server/admit.go", Old: "if ", New: "if false && ", Pkg: "./server", Run: "TestAdmissionAnswersBusyAtOnce"},
	{Name: "catalog-membership-off", Breaks: "the check that a v2 batch's names are in its session's catalogs or fixed words",
		File: "wire/names.go", Old: "if ", New: "if true || ", Pkg: "./proof/abuse", Run: "TestCatalogue/^name_email_as_turn_model_v2$"},
	{Name: "catalog-cache-ignores-owner", Breaks: "the owner check of the session catalog cache (another user's catalog answered for)",
		File: "server/catalogs.go", Old: "if ", New: "if false && ", Pkg: "./server", Run: "TestNamesMustBeInTheSessionCatalog/sqlite/another"},
	{Name: "inflated-size-unchecked", Breaks: "the decompressed-size limit (gzip bomb)",
		File: "server/server.go", Old: "if ", New: "if false && ", Pkg: "./proof/abuse", Run: "TestCatalogue/^gzip_bomb_64mib$"},
	{Name: "revoked-keys-accepted", Breaks: "the refusal of revoked keys",
		File: "server/server.go", Old: "e.key.Revoked() || ", New: "", Pkg: "./proof/abuse", Run: "TestCatalogue/^key_revoked_after_use$"},
	{Name: "cross-user-guard-off", Breaks: "the store's check that a batch's session ids are not another user's",
		File: "store/postgres.go", Old: "check := ", New: "check := false && ", Pkg: "./proof/abuse", Run: "TestCrossUser/^add_turn_to_a_session$"},
	{Name: "session-lock-off", Breaks: "the per-session lock that makes the ownership check hold for two keys creating one session at once",
		File: "store/postgres.go", Old: "count(pg_advisory_xact_lock(%d, k))", New: "%d + count(k)", Pkg: "./proof/abuse", Run: "TestCrossUser/^race_for_a_new_session$"},
	{Name: "rate-limit-off", Breaks: "the per-key token bucket",
		File: "server/limit.go", Old: "if ", New: "if true || ", Pkg: "./proof/abuse", Run: "TestFlood/^one_key$"},
}

func TestMutants(t *testing.T) { proof.RunMutants(t, mutants) }
