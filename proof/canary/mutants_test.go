package canary_test

import (
	"testing"

	"github.com/fredcode/fredtel/proof"
)

// mutants each remove one protection the canary checks guard; the check
// named must then fail. The server validates too, so a client-side leak
// may never reach the central database: the spool, the audit log and the
// user's own database are where these show.
var mutants = []proof.Mutant{
	{Name: "model-name-not-from-the-catalog", Breaks: "the central route's closed vocabulary of model names (a model the build does not offer becomes custom)",
		File: "telemetry/record.go", Old: `return "custom"`, New: "return m", Pkg: "./proof/canary", Run: "^TestCentral$"},
	{Name: "fingerprint-key-not-secret", Breaks: "the per-session random key of the argument fingerprints (HMAC under a zero key)",
		File: "telemetry/session.go", Old: "crand.Read(key)", New: "_ = crand.Read", Pkg: "./proof/canary", Run: "^TestCentral$"},
	{
		Name:   "tool-name-not-cleaned",
		Breaks: "the client's cleaning of tool names, on the self-hosted route",
		File:   "telemetry/record.go",
		Old:    "return s.clean(callFields.ToolName, name)",
		New:    "return name",
		Pkg:    "./proof/canary",
		// On SQLite: PostgreSQL's CHECK constraints refuse the batch
		// whole, a protection of its own.
		Run: "^TestSelfHostedText$/^sqlite$",
	},
	// Issue 12's names (an MCP tool named by the user's configuration, an
	// e-mail address, a URL with credentials, a hyphenated sentence) fit
	// the patterns: only the closed vocabularies keep them off the central
	// route. Each mutant lets pattern-valid names through one of them.
	{Name: "tool-name-by-pattern-only", Breaks: "the central route's closed vocabulary of tool names (a tool the build does not ship becomes mcp or other)",
		File: "telemetry/record.go", Pkg: "./telemetry/central", Run: "^TestEncodedPayloadCarriesNoName$",
		Old: "if s.tools[name] {", New: "if s.tools[name] || schema.ToolCallFields().ToolName.Allows(name) {"},
	{Name: "model-name-by-pattern-only", Breaks: "the central route's closed vocabulary of model names (a model the build does not offer becomes custom)",
		File: "telemetry/record.go", Pkg: "./telemetry/central", Run: "^TestEncodedPayloadCarriesNoName$",
		Old: "if s.models[m] {", New: "if s.models[m] || schema.SessionFields().Model.Allows(m) {"},
	{Name: "command-by-pattern-only", Breaks: "the closed vocabulary of slash commands (a command the build does not offer becomes other)",
		File: "telemetry/record.go", Pkg: "./telemetry/central", Run: "^TestEncodedPayloadCarriesNoName$",
		Old: "if !s.cmds[c] {", New: "if !s.cmds[c] && !schema.SlashCommandFields().Command.Allows(c) {"},
	{Name: "no-text-ignored", Breaks: "DSC_TELEMETRY_NO_TEXT dropping the text before it is queued",
		File: "telemetry/queue.go", Old: "if s.noText {", New: "if false && s.noText {", Pkg: "./proof/canary", Run: "^TestSelfHostedNoText$"},
}

func TestMutants(t *testing.T) { proof.RunMutants(t, mutants) }
