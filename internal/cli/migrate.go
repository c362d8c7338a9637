package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
)

func runMigrate(ctx context.Context, args []string, env Getenv, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fredtel migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", defaultDBURL(env), "database URL: postgres://…, postgresql://…, sqlite:PATH (env FREDTEL_DB_URL)")
	set := fs.String("set", "central", "table set: central (telemetry_*), self-hosted (dsc_*) or both")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fredtel migrate [--db URL] [--set central|self-hosted|both]\n\n"+
			"Creates the tables of the set, or applies the migrations they lack, then lists them.\n"+
			"Safe to run repeatedly and from several processes at once.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var sets []schema.Set
	switch *set {
	case "central":
		sets = []schema.Set{schema.CentralSet}
	case "self-hosted", "selfhosted":
		sets = []schema.Set{schema.SelfHostedSet}
	case "both":
		sets = schema.Sets
	default:
		return &usageError{msg: fmt.Sprintf("--set %q: want central, self-hosted or both", *set)}
	}
	for _, set := range sets {
		s, err := store.Open(ctx, *db, store.Options{Set: set})
		if err != nil {
			return err
		}
		applied, err := s.Migrate(ctx)
		if err != nil {
			s.Close()
			return err
		}
		tables, err := s.Describe(ctx)
		if err != nil {
			s.Close()
			return err
		}
		counts, err := s.Count(ctx)
		s.Close()
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintf(stdout, "%s tables at %s: up to date (schema version %d)\n", set, s.Location(), schema.Version)
		} else {
			fmt.Fprintf(stdout, "%s tables at %s: applied %s %s (schema version %d)\n", set, s.Location(),
				plural(len(applied), "migration", "migrations"), joinInts(applied), schema.Version)
		}
		names := make([]string, 0, len(tables))
		for t := range tables {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			if n, ok := counts[t]; ok {
				fmt.Fprintf(stdout, "  %-28s %2d columns %8d rows\n", t, len(tables[t]), n)
			} else {
				fmt.Fprintf(stdout, "  %-28s %2d columns\n", t, len(tables[t]))
			}
		}
	}
	return nil
}
