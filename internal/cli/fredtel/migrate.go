package fredtel

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/fredcode/fredtel/internal/cli"
	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/store"
)

func runMigrate(ctx context.Context, args []string, env cli.Getenv, stdout, stderr io.Writer) error {
	var db string
	set := "central"
	const help = "Usage: fredtel migrate [--db URL] [--set central|self-hosted|both]\n\n" +
		"Creates the tables of the set, or applies the migrations they lack, then lists them.\n" +
		"Safe to run repeatedly and from several processes at once."
	if err := cli.Parse(env, args, stderr, help, dbSetting(&db, env),
		cli.Setting{Flag: "set", Value: cli.OneOf(&set, "central", "self-hosted", "both"), Usage: "table set: central (telemetry_*), self-hosted (dsc_*) or both"},
	); err != nil {
		return err
	}
	sets := map[string][]schema.Set{"central": {schema.CentralSet}, "self-hosted": {schema.SelfHostedSet}, "both": {schema.CentralSet, schema.SelfHostedSet}}
	for _, set := range sets[set] {
		s, err := store.Open(ctx, db, store.Options{Set: set})
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
				cli.Plural(len(applied), "migration", "migrations"), joinInts(applied), schema.Version)
		}
		names := slices.Sorted(maps.Keys(tables))
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

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("v%d", x)
	}
	return strings.Join(s, ", ")
}
