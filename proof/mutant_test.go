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

// TestMutantFollowsItsMarker: the edit lands on the marked line whatever
// the code around it, and a mutant that cannot tell where to land fails.
func TestMutantFollowsItsMarker(t *testing.T) {
	m := Mutant{Name: "x-off", Old: "if ", New: "if false && "}
	src := "if a {\n\tif b { // mutant:x-off\n\t}\n}\n"
	if got, err := m.apply([]byte(src)); err != nil || string(got) != "if a {\n\tif false && b { // mutant:x-off\n\t}\n}\n" {
		t.Errorf("apply: %q, %v", got, err)
	}
	for _, bad := range []string{
		"if a {\n}\nif b {\n}\n",                             // no marker, and Old twice in the file
		"x := 1 // mutant:x-off\n",                           // Old not on the marked line
		"if a {} // mutant:x-off\nif b {} // mutant:x-off\n", // two marked lines
		"if a {} // mutant:x-off-too\nif b {}\n",             // another mutant's marker
	} {
		if got, err := m.apply([]byte(bad)); err == nil {
			t.Errorf("%q applied: %q", bad, got)
		}
	}
}
