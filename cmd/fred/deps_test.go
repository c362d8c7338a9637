package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDependencies keeps what links what, in the style of
// golang.org/x/telemetry's dependency test: the client library
// (telemetry, telemetry/central) links neither the ingest server, nor the
// store or a database driver, nor Prometheus; schema imports nothing of
// this module; the fred binary links neither the server nor Prometheus.
//
// fred does link a database driver, through telemetry/selfhost and only
// through it: the self-hosted route (DSC_TELEMETRY_DB_URL) writes the
// user's own database, a feature of the product. So `go list -deps
// ./cmd/fred` lists pgx and SQLite, and the test allows that one path and
// no other: without telemetry/selfhost, cmd/fred reaches no store and no
// driver. (An embedder that leaves Options.SelfHosted out links none.)
func TestDependencies(t *testing.T) {
	const mod = "github.com/fredcode/fredtel/"
	imports := goList(t, mod+"cmd/fred", mod+"telemetry", mod+"telemetry/central", mod+"schema")
	server, prometheus := mod+"server", "github.com/prometheus"
	drivers := []string{mod + "store", "github.com/jackc/pgx", "modernc.org/sqlite"}
	for _, c := range []struct {
		root, skip string
		forbidden  []string
	}{
		{mod + "telemetry", "", append([]string{server, prometheus}, drivers...)},
		{mod + "telemetry/central", "", append([]string{server, prometheus}, drivers...)},
		{mod + "schema", "", []string{strings.TrimSuffix(mod, "/")}},
		{mod + "cmd/fred", "", []string{server, prometheus}},
		{mod + "cmd/fred", mod + "telemetry/selfhost", drivers},
	} {
		is := func(pkg string) bool {
			return slices.ContainsFunc(c.forbidden, func(f string) bool { return pkg == f || strings.HasPrefix(pkg, f+"/") })
		}
		for pkg, path := range reach(imports, c.root, c.skip) {
			if is(pkg) && !slices.ContainsFunc(path[:len(path)-1], is) { // the first forbidden one on its path
				t.Errorf("%s depends on %s (forbidden%s): %s", c.root, pkg, except(c.skip), strings.Join(path, " → "))
			}
		}
	}
}

func except(skip string) string {
	if skip == "" {
		return ""
	}
	return " except through " + skip
}

// goList returns the imports of pkgs and of all they depend on.
func goList(t *testing.T, pkgs ...string) map[string][]string {
	out, err := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	return imports
}

// reach returns the packages root depends on, each with a chain of
// imports from root, not going into skip (nor into root again, for a
// package that may import nothing of its own module).
func reach(imports map[string][]string, root, skip string) map[string][]string {
	paths := map[string][]string{}
	queue := []string{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, q := range imports[p] {
			if _, seen := paths[q]; seen || q == skip || q == root {
				continue
			}
			paths[q] = append(append([]string{}, paths[p]...), q)
			queue = append(queue, q)
		}
	}
	return paths
}
