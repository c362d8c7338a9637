package store

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/fredcode/fredtel/schema"
)

//go:embed migrations
var migrationFS embed.FS

// migration is one versioned SQL file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrationDir is the folder of the set's migrations for dialect d.
func migrationDir(d schema.Dialect, s schema.Set) string {
	dir := "selfhosted"
	if s == schema.CentralSet {
		dir = "central"
	}
	return path.Join("migrations", string(d), dir)
}

// migrations lists the embedded migrations of the set for dialect d, in
// version order. Files are named NNNN_description.sql.
func migrations(d schema.Dialect, s schema.Set) ([]migration, error) {
	dir := migrationDir(d, s)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations %s: %w", dir, err)
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %s/%s is not named NNNN_description.sql", dir, name)
		}
		body, err := migrationFS.ReadFile(path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("store: two migrations with version %d in %s", out[i].version, dir)
		}
	}
	return out, nil
}

// migrationsTable is the name of the set's migration bookkeeping table.
func migrationsTable(s schema.Set) string { return s.Prefix() + "schema_migrations" }
