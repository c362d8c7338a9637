package faults_test

import (
	"testing"

	"github.com/fredcode/fredtel/proof"
)

// mutants each remove one protection these checks stand on; the named
// check must then fail (FREDTEL_PROOF_MUTANTS=1, or scripts/proof).
var mutants = []proof.Mutant{
	{Name: "server-acks-before-commit", Breaks: "the server answers 200 only after the commit",
		File: "server/server.go", Pkg: "./proof/faults", Run: "TestServerKilledAndPostgresRestartedUnderLoad",
		Old: "res, err := s.st.Write(ctx, &batch)", New: "res, err := store.Result{Accepted: batch.Len()}, error(nil)\n\tgo s.st.Write(context.WithoutCancel(ctx), &batch)"},
	{Name: "store-not-idempotent", Breaks: "ingest is idempotent on record ids (INSERT … ON CONFLICT DO NOTHING after a COPY meets a known id)",
		File: "store/postgres.go", Pkg: "./proof/faults", Run: "TestServerKilledAndPostgresRestartedUnderLoad",
		Old: `fmt.Sprintf("ON CONFLICT (%s) DO NOTHING", t.rec.Key().Name())`, New: `fmt.Sprintf("-- no ON CONFLICT (%s)", t.rec.Key().Name())`},
	{Name: "server-500-when-database-down", Breaks: "a database outage is answered 503 (keep, back off, retry), not another 5xx",
		File: "server/server.go", Pkg: "./proof/faults", Run: "TestServerKilledAndPostgresRestartedUnderLoad",
		Old: "http.StatusServiceUnavailable", New: "http.StatusInternalServerError"},
	{Name: "close-skips-the-spool", Breaks: "Close spools what the final flush could not deliver",
		File: "telemetry/run.go", Pkg: "./proof/faults", Run: "TestSpoolFull",
		Old: "f.spoolOrDrop(sctx, f.pending)", New: "_ = sctx\n\t\tf.stats.dropped.Add(int64(f.pending.n))"},
	{Name: "spool-failure-counted-as-spooled", Breaks: "a batch the spool refused is counted as dropped",
		File: "telemetry/run.go", Pkg: "./proof/faults", Run: "TestSpoolFull|TestSpoolReadOnly",
		Old: "if err := f.opts.Central.Spool(ctx, &b.remote); err == nil {", New: "if f.opts.Central.Spool(ctx, &b.remote); ctx.Err() == nil {"},
	{Name: "spool-keeps-partial-files", Breaks: "a spool write cut short by a full disk leaves no file behind",
		File: "internal/safedir/safedir.go", Pkg: "./proof/faults", Run: "TestSpoolFull",
		Old: "\tif err != nil {\n\t\td.root.Remove(tmp)\n\t}\n\treturn err\n}", New: "\treturn err\n}"},
	{Name: "audit-keeps-partial-payloads", Breaks: "the audit log (fred telemetry show) never shows a payload cut short by a full disk",
		File: "internal/safedir/safedir.go", Pkg: "./proof/faults", Run: "TestSpoolFull",
		Old: "\tif err == nil {\n\t\terr = d.root.Rename(tmp, name)\n\t}", New: "\tif rerr := d.root.Rename(tmp, name); err == nil {\n\t\terr = rerr\n\t}"},
	{Name: "rate-limit-shared-by-all-keys", Breaks: "each key has its own rate limit: one user's traffic never throttles another's",
		File: "server/server.go", Old: "key.Prefix", New: `"every key"`, Pkg: "./proof/faults", Run: "TestLoad"},
}

func TestMutants(t *testing.T) { proof.RunMutants(t, mutants) }
