package store

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
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
	version  int
	name     string
	path     string // in the repository, for messages
	sql      string
	checksum string // hex SHA-256 of the text, line endings normalised
}

// parts splits a migration at schema.ValidateMarker: what changes the
// schema, and the VALIDATE statements the runner commits apart.
func (m migration) parts() (change, validate string) {
	change, validate, _ = strings.Cut(m.sql, "\n"+schema.ValidateMarker+"\n")
	return change, validate
}

// checksum is the hex SHA-256 of a migration's text. Line endings are
// normalised so a checkout that turned them into CRLF is the same file.
func checksum(sql string) string {
	sum := sha256.Sum256([]byte(strings.ReplaceAll(sql, "\r\n", "\n")))
	return hex.EncodeToString(sum[:])
}

// applied is a row of the set's migration table.
type applied struct {
	version  int
	checksum string // "" when a build before checksums applied it
}

// plan compares what a database applied with this build's files. It
// returns the migrations to apply, in order, and those to adopt: applied by
// a build that recorded no checksum (the first builds of migration 1; the
// runner applies the file again, which only creates what is missing, and
// records its checksum). A recorded checksum that differs from the file of
// the same version is refused: the database was made by another text of
// that migration, and applying later ones on top of it could silently
// differ from the declaration. Versions this build does not know (a
// newer fredtel migrated the database) are left alone: their columns are
// nullable, so this build's writes still fit.
func plan(all []migration, done []applied) (pending, adopt []migration, err error) {
	have := map[int]applied{}
	for _, a := range done {
		have[a.version] = a
	}
	for _, m := range all {
		a, ok := have[m.version]
		switch {
		case !ok:
			pending = append(pending, m)
		case a.checksum == "":
			adopt = append(adopt, m)
		case a.checksum != m.checksum:
			return nil, nil, fmt.Errorf("migration %s: the database applied another text of this file (checksum %.12s…, this build's %.12s…); "+
				"a migration is never edited once applied: see docs/operations.md, Migrations", m.path, a.checksum, m.checksum)
		}
	}
	return pending, adopt, nil
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
func migrations(src fs.FS, d schema.Dialect, s schema.Set) ([]migration, error) {
	dir := migrationDir(d, s)
	entries, err := fs.ReadDir(src, dir)
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
		body, err := fs.ReadFile(src, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, path: path.Join("store", dir, name), sql: string(body), checksum: checksum(string(body))})
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
