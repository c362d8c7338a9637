package store

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
	"github.com/jackc/pgx/v5"
)

// frozenUpTo is the golden copy of migrations 1 to v as they shipped: the
// databases of users were made from these files, whatever the declaration
// says today.
func frozenUpTo(t *testing.T, v int) fs.FS {
	t.Helper()
	src := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("testdata"), "migrations", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		var n int
		if _, serr := fmt.Sscanf(path.Base(p), "%04d_", &n); serr == nil && n >= 1 && n <= v {
			b, err := os.ReadFile(filepath.Join("testdata", p))
			src[p] = &fstest.MapFile{Data: b}
			return err
		}
		return nil
	})
	if err != nil || len(src) != 4*v {
		t.Fatalf("golden migrations 1 to %d: %d files, %v", v, len(src), err)
	}
	return src
}

// afterV1 lists the versions a database made by migration 1 applies.
func afterV1() []int {
	var out []int
	for v := 2; v <= schema.Version; v++ {
		out = append(out, v)
	}
	return out
}

// openBare opens a store without migrating it.
func openBare(t *testing.T, url string, set schema.Set) Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{Set: set})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// migrateFrom migrates s with the migration files of src (both stores
// have the method).
func migrateFrom(s Store, src fs.FS) ([]int, error) {
	return s.(interface {
		migrateFrom(context.Context, fs.FS) ([]int, error)
	}).migrateFrom(context.Background(), src)
}

// execSQL runs q on the store's connection: with args, through ?
// placeholders; without, as it is (DDL, whose text may hold a "?").
func execSQL(s Store, q string, args ...any) (err error) {
	switch x := s.(type) {
	case *pgStore:
		if len(args) > 0 {
			q = rebindPG(q)
		}
		_, err = x.pool.Exec(context.Background(), q, args...)
	case *sqliteStore:
		_, err = x.db.ExecContext(context.Background(), q, args...)
	}
	return err
}

// insertAsVersion writes b's rows with the columns of versions up to v only,
// as a build of version v did.
func insertAsVersion(t *testing.T, s Store, b *Batch, v int) {
	t.Helper()
	p, err := prepare(s.Set(), b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range p.tables {
		var keep []int
		var names []string
		for i, f := range tb.cols {
			if f.Since() <= v {
				keep = append(keep, i)
				names = append(names, f.Name())
			}
		}
		for _, row := range tb.rows {
			switch x := s.(type) {
			case *pgStore:
				all := CopyValues(row)
				vals := make([]any, len(keep))
				for j, i := range keep {
					vals[j] = all[i]
				}
				if _, err := x.pool.CopyFrom(context.Background(), pgx.Identifier{tb.name}, names, pgx.CopyFromRows([][]any{vals})); err != nil {
					t.Fatalf("insert into %s: %v", tb.name, err)
				}
			case *sqliteStore:
				vals := make([]any, len(keep))
				for j, i := range keep {
					vals[j] = sqliteValue(row[i])
				}
				q := "INSERT INTO " + tb.name + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(keep)), ", ") + ")"
				if err := execSQL(s, q, vals...); err != nil {
					t.Fatalf("insert into %s: %v", tb.name, err)
				}
			}
		}
	}
}

// strings1 runs a query of one text column on the store's connection.
func strings1(t *testing.T, s Store, q string) []string {
	t.Helper()
	var out []string
	switch x := s.(type) {
	case *pgStore:
		rs, err := x.pool.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out, err = pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
	case *sqliteStore:
		rs, err := x.db.QueryContext(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		for rs.Next() {
			var v string
			if err := rs.Scan(&v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// dump is every row of every record table of the set, the columns of
// version 1 as text, in key order: what must survive a migration.
func dump(t *testing.T, s Store) []string {
	t.Helper()
	var out []string
	for _, r := range schema.Records() {
		var cols []string
		for _, f := range s.Set().Columns(r) {
			if f.Since() == 1 {
				if _, ok := s.(*pgStore); ok {
					cols = append(cols, "coalesce("+f.Name()+"::text, 'NULL')")
				} else {
					cols = append(cols, "coalesce(CAST("+f.Name()+" AS TEXT), 'NULL')")
				}
			}
		}
		sep := " || '|' || "
		q := "SELECT " + strings.Join(cols, sep) + " FROM " + s.Set().TableName(r) + " ORDER BY " + r.Key().Name()
		rows := strings1(t, s, q)
		for _, row := range rows {
			out = append(out, r.Table()+": "+row)
		}
	}
	return out
}

// v1Batch is a batch a version 1 client sent: none of the fields of later
// versions.
func v1Batch(seed uint64) *Batch {
	g := fixture.New(seed, time.Now().UTC())
	b := &Batch{UserID: "alice", Batch: g.Batch(5, 4, 3, 4)}
	for i, e := range b.Events {
		if e.Name == "api_retry" { // its v1 props: no latency_ms
			b.Events[i].Props = schema.Props(strings.Replace(string(e.Props), `,"latency_ms":0`, "", 1))
		}
	}
	return b
}

// TestEvolutionFromV1 is the path every existing database takes: made by the
// frozen migration 1 and filled by a version 1 build, migrated to this
// build's version, then to a test-only next version that adds an enum
// value. Every row survives each step, the new columns are null for old
// rows, and the new value is refused before its migration and stored
// after it.
func TestEvolutionFromV1(t *testing.T) {
	forEachSet(t, func(t *testing.T, be testdb.Backend, set schema.Set) {
		ctx := context.Background()
		s := openBare(t, be.URL(t), set)
		if got, err := migrateFrom(s, frozenUpTo(t, 1)); err != nil || !slices.Equal(got, []int{1}) {
			t.Fatalf("migrate with the frozen v1 files = %v, %v", got, err)
		}
		insertAsVersion(t, s, v1Batch(1), 1)
		before := dump(t, s)
		if len(before) != 5+20+60+20 {
			t.Fatalf("v1 database holds %d rows, want 105", len(before))
		}

		applied, err := s.Migrate(ctx)
		if err != nil || !slices.Equal(applied, afterV1()) {
			t.Fatalf("Migrate to v%d = %v, %v; want %v", schema.Version, applied, err, afterV1())
		}
		if after := dump(t, s); !slices.Equal(after, before) {
			t.Fatalf("rows changed by the migrations:\n%s", diff(before, after))
		}
		for _, r := range schema.Records() {
			for _, f := range s.Set().Columns(r) {
				if f.Since() >= 2 {
					if n := count(t, s, s.Set().TableName(r)+" WHERE "+f.Name()+" IS NOT NULL"); n != 0 {
						t.Errorf("%s.%s: %d old rows got a value", r.Table(), f.Name(), n)
					}
				}
			}
		}
		// A version 2 batch goes in beside them.
		g := fixture.New(2, time.Now().UTC())
		sess := g.Session()
		sess.ModelCatalog = []string{"fred-flash-2", "fred-pro-2"}
		sess.Agent = "fred"
		turn := g.Turn(sess.SessionID, 0)
		call := g.ToolCall(sess.SessionID, turn.TurnID, 0)
		call.ResultFingerprint = g.Hash()
		ev := g.Event(sess.SessionID)
		ev.Seq = schema.IntOf(0)
		if _, err := s.Write(ctx, &Batch{UserID: "alice", Batch: schema.Batch{Sessions: []schema.Session{sess}, Turns: []schema.Turn{turn},
			ToolCalls: []schema.ToolCall{call}, Events: []schema.Event{ev}}}); err != nil {
			t.Fatalf("v2 batch into the migrated database: %v", err)
		}
		if n := count(t, s, s.Set().TableName(schema.ToolCalls())+" WHERE result_fingerprint IS NOT NULL"); n != 1 {
			t.Errorf("result_fingerprint stored %d times, want 1", n)
		}
		rows := dump(t, s)

		// A next version adds a finish reason: refused before its
		// migration (the CHECK of v1 still holds), stored after.
		nv := schema.Version + 1
		next := schema.Current().WithEnumValue("turn", "finish_reason", "test_only", nv)
		d := dialectOf(s)
		src := fstest.MapFS{}
		fs.WalkDir(migrationFS, ".", func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				b, _ := fs.ReadFile(migrationFS, p)
				src[p] = &fstest.MapFile{Data: b}
			}
			return err
		})
		src[migrationDir(d, set)+fmt.Sprintf("/%04d_schema_v%d.sql", nv, nv)] = &fstest.MapFile{Data: []byte(next.MigrationSQL(d, set, nv))}
		insertTurn := func(id string) error {
			cols := []string{"turn_id", "session_id", "seq", "started_at", "model", "mode", "prompt_tokens", "completion_tokens",
				"cached_tokens", "finish_reason", "duration_ms", "num_tool_calls", "prompt_chars", "response_chars"}
			vals := []any{id, sess.SessionID.String(), 9, time.Now().UTC().Format(schema.TimeLayout), "fred-pro-2", "act", 1, 1, 0, "test_only", 5, 0, 3, 4}
			if set == schema.CentralSet {
				cols = append(cols, "user_id", "received_at", "clock_offset_ms")
				vals = append(vals, "alice", time.Now().UTC().Format(schema.TimeLayout), 0)
			}
			return execSQL(s, "INSERT INTO "+set.TableName(schema.Turns())+" ("+strings.Join(cols, ", ")+") VALUES ("+
				strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")", vals...)
		}
		if err := insertTurn("01900000-0000-7000-8000-000000000001"); err == nil {
			t.Fatal("finish_reason test_only accepted before the migration that allows it")
		}
		if applied, err := migrateFrom(s, src); err != nil || !slices.Equal(applied, []int{nv}) {
			t.Fatalf("migrate to the test-only v%d = %v, %v\n%s", nv, applied, err, next.MigrationSQL(d, set, nv))
		}
		if err := insertTurn("01900000-0000-7000-8000-000000000002"); err != nil {
			t.Fatalf("finish_reason test_only refused after its migration: %v", err)
		}
		after := dump(t, s)
		if len(after) != len(rows)+1 || !containsAll(after, rows) {
			t.Fatalf("rows lost by migration 3:\n%s", diff(rows, after))
		}
		if err := insertTurn("01900000-0000-7000-8000-000000000003"); err != nil {
			t.Fatal(err)
		}
		// The other checks of the table still hold after the
		// change (SQLite made the table anew).
		if err := execSQL(s, "UPDATE "+set.TableName(schema.Turns())+" SET mode = 'sideways'"); err == nil {
			t.Error("mode 'sideways' accepted after migration 3")
		}
		// And the indexes are all there.
		for _, ix := range set.Indexes(schema.Turns()) {
			q := "pg_indexes WHERE indexname = ?"
			if d == schema.SQLite {
				q = "sqlite_schema WHERE type = 'index' AND name = ?"
			}
			if count(t, s, q, ix.Name) != 1 {
				t.Errorf("index %s missing after migration 3", ix.Name)
			}
		}
	})
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func diff(a, b []string) string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, "- "+x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			out = append(out, "+ "+x)
		}
	}
	if len(out) > 20 {
		out = append(out[:20], "…")
	}
	return strings.Join(out, "\n")
}

// catalog describes a database's tables as its engine sees them: columns
// with type and nullability, constraints with their definitions (on
// PostgreSQL, normalised by the server itself), indexes.
func catalog(t *testing.T, s Store) []string {
	t.Helper()
	var qs []string
	switch s.(type) {
	case *pgStore:
		qs = []string{
			`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' null=' || is_nullable
			   FROM information_schema.columns WHERE table_schema = current_schema() AND table_name NOT LIKE '%schema_migrations'`,
			`SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
			   FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND conrelid::regclass::text NOT LIKE '%schema_migrations'`,
			`SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename NOT LIKE '%schema_migrations'`,
		}
	case *sqliteStore:
		qs = []string{
			`SELECT 'column ' || m.name || '.' || p.name || ' ' || p.type || ' notnull=' || p."notnull" || ' pk=' || p.pk
			   FROM sqlite_schema AS m, pragma_table_info(m.name) AS p WHERE m.type = 'table' AND m.name NOT LIKE '%schema_migrations'`,
			`SELECT 'index ' || name || ' ' || tbl_name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL`,
		}
	}
	var out []string
	for _, q := range qs {
		out = append(out, strings1(t, s, q)...)
	}
	slices.Sort(out)
	return out
}

// TestMigratedSchemaIsTheDeclaration: a database made by the migrations one
// after the other, from the frozen migration 1, is the database the
// declaration describes made in one go: same columns, same checks (by name
// and by the server's own rendering), same indexes. A declaration change
// the newest migration does not carry (an enum value added without
// Changed) fails here.
func TestMigratedSchemaIsTheDeclaration(t *testing.T) {
	forEachSet(t, func(t *testing.T, be testdb.Backend, set schema.Set) {
		migrated := openStore(t, be.URL(t), set)
		whole := openBare(t, be.URL(t), set)
		d := dialectOf(whole)
		for _, st := range schema.Current().Whole(d, set) {
			if err := execSQL(whole, st); err != nil {
				t.Fatalf("%s: %v", st, err)
			}
		}
		got, want := catalog(t, migrated), catalog(t, whole)
		if len(want) < 50 {
			t.Fatalf("the reference catalog has %d entries: the query sees nothing", len(want))
		}
		if !slices.Equal(got, want) {
			t.Errorf("migrated database differs from the declaration (- migrated, + declared):\n%s", diff(got, want))
		}
	})
}

// TestMigrationChecksums: a database records the checksum of each migration
// it applied, and refuses to go on when this build's file of the same
// version differs, naming the file.
func TestMigrationChecksums(t *testing.T) {
	forEachCentral(t, func(t *testing.T, s Store) {
		all, err := migrations(migrationFS, dialectOf(s), schema.CentralSet)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			if n := count(t, s, "telemetry_schema_migrations WHERE version = ? AND checksum = ?", m.version, m.checksum); n != 1 {
				t.Errorf("migration %d: checksum %s not recorded", m.version, m.checksum)
			}
		}
		if err := execSQL(s, "UPDATE telemetry_schema_migrations SET checksum = ? WHERE version = 1", strings.Repeat("0", 64)); err != nil {
			t.Fatal(err)
		}
		_, err = s.Migrate(context.Background())
		if err == nil {
			t.Fatal("Migrate accepted a database whose migration 1 had another checksum")
		}
		want := "migration store/migrations/" + string(dialectOf(s)) + "/central/0001_schema_v1.sql: the database applied another text of this file"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q\nwant it to contain %q", err, want)
		}
	})
}

func dialectOf(s Store) schema.Dialect {
	if _, ok := s.(*sqliteStore); ok {
		return schema.SQLite
	}
	return schema.Postgres
}

// TestEarlierBuildsOfMigration1AreAdopted: databases made before checksums
// were recorded (the demo's, users' self-hosted ones) by the first build
// of migration 1, which had no api_keys table, regexp checks and a
// (user_id, time) index on every record table. Migrating adopts them:
// migration 1 runs again and creates only what is missing, its checksum is
// recorded, migration 2 drops the retired indexes, and every row stays.
func TestEarlierBuildsOfMigration1AreAdopted(t *testing.T) {
	forEachSet(t, func(t *testing.T, be testdb.Backend, set schema.Set) {
		s := openBare(t, be.URL(t), set)
		d := dialectOf(s)
		body, err := os.ReadFile("testdata/earlier/8686b4f/" + string(d) + "/" + strings.TrimPrefix(migrationDir(d, set), "migrations/"+string(d)+"/") + "/0001_schema_v1.sql")
		if err != nil {
			t.Fatal(err)
		}
		mt := migrationsTable(set)
		for _, st := range []string{
			string(body),
			"CREATE TABLE " + mt + " (version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL DEFAULT 'then')",
			"INSERT INTO " + mt + " (version, name) VALUES (1, '0001_schema_v1.sql')",
		} {
			if d == schema.Postgres && strings.Contains(st, "DEFAULT 'then'") {
				st = strings.Replace(st, "applied_at text NOT NULL DEFAULT 'then'", "applied_at timestamptz NOT NULL DEFAULT now()", 1)
			}
			if err := execSQL(s, st); err != nil {
				t.Fatalf("making the earlier database: %v", err)
			}
		}
		insertAsVersion(t, s, v1Batch(3), 1)
		before := dump(t, s)
		applied, err := s.Migrate(context.Background())
		if err != nil || !slices.Equal(applied, afterV1()) {
			t.Fatalf("Migrate = %v, %v; want %v", applied, err, afterV1())
		}
		if after := dump(t, s); !slices.Equal(after, before) {
			t.Fatalf("rows changed:\n%s", diff(before, after))
		}
		all, _ := migrations(migrationFS, d, set)
		if n := count(t, s, mt+" WHERE version = 1 AND checksum = ?", all[0].checksum); n != 1 {
			t.Error("migration 1's checksum not recorded on adoption")
		}
		q := "pg_indexes WHERE indexname LIKE '%user_time_idx'"
		if d == schema.SQLite {
			q = "sqlite_schema WHERE type = 'index' AND name LIKE '%user_time_idx'"
		}
		want := 0
		if set == schema.CentralSet {
			want = 1 // the sessions' own, which stays
			if count(t, s, tableExists(d), "api_keys") != 1 {
				t.Error("api_keys not created on adoption")
			}
		}
		if n := count(t, s, q); n != want {
			t.Errorf("%d (user_id, time) indexes after migration 2, want %d", n, want)
		}
		if again, err := s.Migrate(context.Background()); err != nil || len(again) != 0 {
			t.Errorf("second Migrate = %v, %v", again, err)
		}
	})
}

func tableExists(d schema.Dialect) string {
	if d == schema.SQLite {
		return "sqlite_schema WHERE type = 'table' AND name = ?"
	}
	return "information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
}
