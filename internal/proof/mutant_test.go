package proof

import "testing"

// TestRunnerSeesAFailure proves the runner itself can tell a mutant that
// is caught from one that is not: with spaces allowed in model
// names, the schema's own test must fail.
func TestRunnerSeesAFailure(t *testing.T) {
	RunMutants(t, []Mutant{{
		Name:   "model-names-allow-spaces",
		Breaks: "the model-name pattern (no spaces)",
		File:   "schema/records.go",
		Old:    "`A-Za-z0-9._:/@+-`, 100",
		New:    "`A-Za-z0-9._:/@+ -`, 100",
		Pkg:    "./schema",
		Run:    "TestPatternsCannotCarryASentence",
	}})
}
