// Package canary is the privacy canary check of the proof suite (issue 6):
// unique canary strings go into every text-bearing input the client sees —
// the library API, a replayed transcript, the process environment, the
// working directory — and the tests then look for them in everything that
// was written: the whole central database (pg_dump), the client's config
// dir (spool, audit log, preferences), the batches FRED_TELEMETRY_DEBUG
// prints, the user's own database column by column, and the raw bytes of
// its SQLite file.
//
// The package holds tests only; mutants_test.go names the protections whose
// removal these tests catch.
package canary
