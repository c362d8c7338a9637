// Command ingestbench measures the ingest path end to end: concurrent
// clients POST pre-built, gzipped batches of mixed records over loopback
// HTTP to a real `fredtel serve`, which validates them and commits them to
// a fresh PostgreSQL database. It reports the sustained records/s beside
// the COPY ceiling of the same rows measured in the same run, the request
// latency (p50, p99, max) and the server's peak RSS, against the targets of
// issue 4: at least 50 % of the ceiling, p99 at most 250 ms, RSS at most
// 256 MiB.
//
//	scripts/bench-ingest [--duration 20s] [--clients 16] [--batch 500] [--json]
//
// The run is bounded: warm-up plus duration of load, then the ceiling. It
// exits 0 whenever it measured, targets met or not; 1 when the run itself
// failed; 2 on a bad command line. Linux only (it reads /proc).
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fredcode/fredtel/internal/devcmd"
	"github.com/fredcode/fredtel/internal/sim"
	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// benchUser owns the rows: the user of the key sim.CreateKeys makes first.
var benchUser = sim.UserID(1)

const (
	targetPct   = 50.0
	targetP99   = 250 * time.Millisecond
	targetRSSMi = 256.0

	// noiseCores of CPU used by other processes make a run suspect.
	noiseCores = 0.15
)

type config struct {
	clients, batch   int
	duration, warmup time.Duration
	adminURL         string
	keep, json       bool
	genRate, rate    int
	serveArgs        []string
	seed             uint64
	cpuprofile       string
	storeDirect      bool
}

func main() { devcmd.Main("ingestbench", parseFlags, run) }

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("ingestbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	fs.IntVar(&cfg.clients, "clients", 16, "concurrent clients, each with its own keep-alive connection")
	fs.IntVar(&cfg.batch, "batch", 500, "records per batch (1 session, 12 % turns, 76 % tool calls, 12 % events)")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "measured load, after the warm-up")
	fs.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "load before the measurement starts (not counted)")
	fs.StringVar(&cfg.adminURL, "admin-url", testdb.AdminURL(), "PostgreSQL `URL` allowed to CREATE DATABASE (env DATABASE_URL)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the benchmark database (its URL is printed)")
	fs.BoolVar(&cfg.json, "json", false, "print the result as JSON")
	fs.IntVar(&cfg.rate, "rate", 0, "records/s offered by all clients together, paced; 0 sends each batch as soon as the last is answered (saturation)")
	fs.IntVar(&cfg.genRate, "gen-rate", 40000, "records/s the pre-built batches are sized for; the load stops early, and says so, if they run out")
	serveArgs := fs.String("serve-args", "", "extra flags for fredtel serve, space-separated (e.g. \"--pool 16\")")
	fs.Uint64Var(&cfg.seed, "seed", 0, "fixture seed (0: random)")
	fs.BoolVar(&cfg.storeDirect, "store-direct", false, "also time Store.Write of the same rows from --clients goroutines, without HTTP, gzip or validation (a diagnostic; a second scratch database)")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "run the server inside this process instead of fredtel serve and write a CPU profile of the measured window to `FILE` (go tool pprof FILE); RSS and CPU then include the clients")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: ingestbench [flags]\n\nMeasures records/s end to end (HTTP on 127.0.0.1, gzip, validation, PostgreSQL commit)\n"+
			"beside the COPY ceiling of the same rows, with request latency and the server's peak RSS.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.clients < 1 || cfg.clients > 1000:
		return nil, errors.New("--clients: want 1 to 1000")
	case cfg.batch < 10 || cfg.batch > 1000:
		return nil, errors.New("--batch: want 10 to 1000 (the server's limit per batch)")
	case cfg.duration <= 0 || cfg.duration > time.Hour:
		return nil, errors.New("--duration: want more than 0 and at most 1h")
	case cfg.warmup < 0 || cfg.warmup > 10*time.Minute:
		return nil, errors.New("--warmup: want 0 to 10m")
	case cfg.genRate < 100:
		return nil, errors.New("--gen-rate: want at least 100")
	}
	cfg.serveArgs = strings.Fields(*serveArgs)
	if cfg.seed == 0 {
		var b [8]byte
		rand.Read(b[:])
		cfg.seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	return cfg, nil
}

func numCPU() int { return runtime.NumCPU() }

func run(ctx context.Context, cfg *config, stdout, stderr io.Writer) (err error) {
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "ingestbench: "+format+"\n", a...) }

	tmp, err := os.MkdirTemp("", "fredtel-ingestbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var bin string
	if cfg.cpuprofile == "" {
		logf("building fredtel")
		if bin, err = testkit.Build(ctx, tmp, "cmd/fredtel"); err != nil {
			return err
		}
	}

	dbURL, dropDB, err := testdb.Create(ctx, cfg.adminURL, "fredtel_bench_")
	if err != nil {
		return err
	}
	defer func() {
		if cfg.keep {
			logf("kept the database: %s", dbURL)
			return
		}
		if derr := dropDB(); derr != nil {
			logf("could not drop the benchmark database: %v", derr)
			if err == nil {
				err = derr
			}
		}
	}()

	var (
		srv  *serverProc
		prof *profiler
	)
	if cfg.cpuprofile != "" {
		if srv, err = startInProcess(ctx, dbURL, cfg.serveArgs); err != nil {
			return err
		}
		prof = &profiler{path: cfg.cpuprofile}
		logf("in-process server (profiled) listening on %s", srv.addr)
	} else if srv, err = startServer(bin, dbURL, cfg.serveArgs); err != nil {
		return err
	}
	defer func() {
		if srv.running() {
			srv.stop()
		}
	}()
	if !srv.inProc {
		logf("fredtel serve (pid %d) listening on %s", srv.pid, srv.addr)
	}
	keys, err := sim.CreateKeys(ctx, dbURL, 1)
	if err != nil {
		return err
	}
	key := keys[0].Key

	load := cfg.warmup + cfg.duration
	count := int(math.Ceil(float64(cfg.genRate)*load.Seconds()/float64(cfg.batch))) + 1
	count = max(count, 2*cfg.clients+1)
	logf("pre-building %d batches of %d records (%s), gzipped", count, cfg.batch, mixOf(cfg.batch))
	t0 := time.Now()
	bs, err := makeBatches(count, cfg.batch, cfg.seed)
	if err != nil {
		return err
	}
	var gzBytes, jsonBytes int
	for _, b := range bs {
		gzBytes += len(b.body)
		jsonBytes += b.rawLen
	}
	logf("built in %.1f s: %.0f KiB of JSON, %.0f KiB gzipped per batch", time.Since(t0).Seconds(),
		float64(jsonBytes)/float64(len(bs))/1024, float64(gzBytes)/float64(len(bs))/1024)

	// The first batch must be accepted whole before the clock starts.
	p := newPoster(srv.addr, key)
	a, msg := p.post(ctx, 0, bs[0].body)
	p.close()
	if a.status != 200 || a.accepted != bs[0].records {
		return fmt.Errorf("the first batch got %d (accepted %d of %d): %s", a.status, a.accepted, bs[0].records, msg)
	}

	logf("load: %d clients, %s warm-up then %s measured", cfg.clients, cfg.warmup, cfg.duration)
	lr, err := runLoad(ctx, srv, key, bs, 1, cfg.clients, cfg.warmup, cfg.duration, prof, cfg.rate)
	if err != nil {
		return err
	}
	if prof != nil {
		if prof.err != nil {
			return fmt.Errorf("--cpuprofile: %w", prof.err)
		}
		logf("CPU profile of the window (server and clients in one process): go tool pprof %s", cfg.cpuprofile)
	}
	hwm, hwmErr := testkit.ProcStatusKiB(srv.pid, "VmHWM")
	if hwmErr != nil {
		logf("cannot read VmHWM: %v", hwmErr)
	}
	if err := srv.stop(); err != nil {
		logf("fredtel serve did not stop cleanly: %v", err)
	}

	r := summarize(cfg, lr, bs)
	r.JSONBytesPerBatch = jsonBytes / len(bs)
	r.GzipBytesPerBatch = gzBytes / len(bs)
	r.HWMMiB = float64(hwm) / 1024
	if cfg.keep {
		r.Database = dbURL
	}
	r.InProcess = srv.inProc

	var window []*batch
	for _, a := range lr.answers {
		if a.status == 200 && lr.inWindow(a.end) {
			window = append(window, bs[a.batch])
		}
	}
	if len(window) == 0 {
		return fmt.Errorf("no batch was committed in the measured window (answers %v, first errors %v)", r.Statuses, r.FirstErrors)
	}
	r.Ceiling, err = measureCeiling(ctx, dbURL, window, cfg.clients, logf)
	if err != nil {
		return err
	}
	if cfg.storeDirect {
		if r.StoreDirect, err = measureStore(ctx, cfg.adminURL, window, cfg.clients, poolOf(cfg.serveArgs), logf); err != nil {
			return fmt.Errorf("--store-direct: %w", err)
		}
	}
	r.judge()
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(r)
	}
	r.print(stdout)
	return nil
}

func (lr *loadRun) inWindow(t time.Time) bool {
	return !t.Before(lr.warmEnd) && !t.After(lr.windowEnd)
}

type latency struct {
	Requests int     `json:"requests"`
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	Mean     float64 `json:"mean_ms"`
}

// serverView is what the server's own metrics say about the window.
type serverView struct {
	MeanRequestMs float64 `json:"mean_request_ms"`
	MeanDBWriteMs float64 `json:"mean_db_write_ms"`
	DBWriteP50Ms  float64 `json:"db_write_p50_le_ms"` // upper bound of the histogram bucket
	DBWriteP99Ms  float64 `json:"db_write_p99_le_ms"`
	CPUSeconds    float64 `json:"cpu_seconds"`
	GCCycles      float64 `json:"gc_cycles"`
}

type target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Pass bool    `json:"pass"`
}

type report struct {
	Clients           int               `json:"clients"`
	BatchSize         int               `json:"batch_size"`
	Mix               string            `json:"mix"`
	JSONBytesPerBatch int               `json:"json_bytes_per_batch"`
	GzipBytesPerBatch int               `json:"gzip_bytes_per_batch"`
	WarmupSeconds     float64           `json:"warmup_seconds"`
	WindowSeconds     float64           `json:"window_seconds"`
	RanOut            bool              `json:"ran_out_of_batches"`
	Batches           int               `json:"batches"`
	Records           int               `json:"records"`
	Duplicates        int               `json:"duplicates"`
	RecordsPerS       float64           `json:"records_per_s"`
	Ceiling           *ceilingResult    `json:"ceiling"`
	StoreDirect       *storeResult      `json:"store_direct,omitempty"`
	PctOfCeiling      float64           `json:"pct_of_ceiling"`
	Latency           latency           `json:"latency"`
	PeakRSSMiB        float64           `json:"peak_rss_mib"`
	HWMMiB            float64           `json:"vm_hwm_mib"`
	Statuses          map[string]int    `json:"statuses"` // whole load, warm-up included; "error": no HTTP answer
	Errors            int               `json:"errors"`
	FirstErrors       map[string]string `json:"first_errors,omitempty"`
	CPU               *cpuUse           `json:"cpu"`
	Server            *serverView       `json:"server_metrics,omitempty"`
	Targets           []target          `json:"targets"`
	Database          string            `json:"database,omitempty"`
	InProcess         bool              `json:"in_process_server,omitempty"` // --cpuprofile: RSS and CPU include the clients
}

func statusName(code int) string {
	switch code {
	case 0:
		return "error"
	case -1:
		return "200-malformed"
	}
	return strconv.Itoa(code)
}

func summarize(cfg *config, lr *loadRun, bs []*batch) *report {
	r := &report{Clients: cfg.clients, BatchSize: cfg.batch, Mix: mixOf(cfg.batch).String(),
		WarmupSeconds: lr.warmEnd.Sub(lr.start).Seconds(), WindowSeconds: lr.windowEnd.Sub(lr.warmEnd).Seconds(),
		RanOut: lr.ranOut, Statuses: map[string]int{}, CPU: lr.cpu}
	var lat []time.Duration
	for _, a := range lr.answers {
		r.Statuses[statusName(a.status)]++
		if a.status != 200 {
			r.Errors++
		}
		if !a.start.Before(lr.warmEnd) && a.start.Before(lr.windowEnd) {
			lat = append(lat, a.end.Sub(a.start))
		}
		if a.status == 200 && lr.inWindow(a.end) {
			r.Batches++
			r.Records += a.accepted
			r.Duplicates += a.duplicates
		}
	}
	if len(lr.firstError) > 0 {
		r.FirstErrors = map[string]string{}
		for code, msg := range lr.firstError {
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			r.FirstErrors[statusName(code)] = msg
		}
	}
	r.RecordsPerS = float64(r.Records) / r.WindowSeconds
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		return ms(lat[max(0, min(i, len(lat)-1))])
	}
	r.Latency = latency{Requests: len(lat), P50: q(0.50), P99: q(0.99)}
	if len(lat) > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		r.Latency.Max = ms(lat[len(lat)-1])
		r.Latency.Mean = ms(sum / time.Duration(len(lat)))
	}
	r.PeakRSSMiB = float64(lr.peakRSSKiB) / 1024
	if lr.metricsFrom != nil && lr.metricsTo != nil {
		r.Server = serverMetrics(lr.metricsFrom, lr.metricsTo)
	}
	return r
}

// serverMetrics reads the window from two scrapes of /metrics.
func serverMetrics(a, b map[string]float64) *serverView {
	d := func(k string) float64 { return b[k] - a[k] }
	v := &serverView{CPUSeconds: d("process_cpu_seconds_total"), GCCycles: d("go_gc_duration_seconds_count")}
	const req = `fredtel_http_request_duration_seconds`
	const route = `{route="/v1/batch"}`
	if n := d(req + "_count" + route); n > 0 {
		v.MeanRequestMs = 1000 * d(req+"_sum"+route) / n
	}
	const db = "fredtel_db_write_duration_seconds"
	n := d(db + "_count")
	if n <= 0 {
		return v
	}
	v.MeanDBWriteMs = 1000 * d(db+"_sum") / n
	type bucket struct{ le, cum float64 }
	var bks []bucket
	for k := range b {
		if le, ok := strings.CutPrefix(k, db+`_bucket{le="`); ok {
			x, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
			if err == nil {
				bks = append(bks, bucket{x, d(k)})
			}
		}
	}
	sort.Slice(bks, func(i, j int) bool { return bks[i].le < bks[j].le })
	quant := func(p float64) float64 {
		for _, bk := range bks {
			if bk.cum >= p*n {
				return 1000 * bk.le
			}
		}
		return math.Inf(1)
	}
	v.DBWriteP50Ms, v.DBWriteP99Ms = quant(0.5), quant(0.99)
	return v
}

func (r *report) judge() {
	if r.Ceiling != nil && r.Ceiling.RecordsPerS > 0 {
		r.PctOfCeiling = 100 * r.RecordsPerS / r.Ceiling.RecordsPerS
	}
	r.Targets = []target{
		{Name: "pct_of_ceiling", Want: fmt.Sprintf(">= %.0f %%", targetPct), Got: r.PctOfCeiling, Pass: r.PctOfCeiling >= targetPct},
		{Name: "p99_ms", Want: fmt.Sprintf("<= %d ms", targetP99.Milliseconds()), Got: r.Latency.P99,
			Pass: r.Latency.Requests > 0 && r.Latency.P99 <= float64(targetP99.Milliseconds())},
		{Name: "peak_rss_mib", Want: fmt.Sprintf("<= %.0f MiB", targetRSSMi), Got: max(r.PeakRSSMiB, r.HWMMiB),
			Pass: max(r.PeakRSSMiB, r.HWMMiB) <= targetRSSMi},
	}
}

// thousands formats n with thin spaces between groups of three digits.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + " " + s[i:]
	}
	return s
}

func mark(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (r *report) print(w io.Writer) {
	if r.InProcess {
		fmt.Fprintf(w, "NOTE: --cpuprofile ran the server inside the benchmark process: RSS and server CPU include the clients and the profiler\n")
	}
	fmt.Fprintf(w, "fredtel ingest, end to end: %d clients, batches of %d (%s), gzip %.0f KiB (JSON %.0f KiB), 127.0.0.1\n",
		r.Clients, r.BatchSize, r.Mix, float64(r.GzipBytesPerBatch)/1024, float64(r.JSONBytesPerBatch)/1024)
	fmt.Fprintf(w, "measured %.1f s after %.1f s of warm-up: %d batches, %s records committed",
		r.WindowSeconds, r.WarmupSeconds, r.Batches, thousands(float64(r.Records)))
	if r.Duplicates > 0 {
		fmt.Fprintf(w, " (%d duplicates)", r.Duplicates)
	}
	fmt.Fprintln(w)
	if r.RanOut {
		fmt.Fprintf(w, "  NOTE: the pre-built batches ran out before the end: the window was cut short (raise --gen-rate)\n")
	}
	c := r.Ceiling
	fmt.Fprintf(w, "\n  end to end      %10s records/s\n", thousands(r.RecordsPerS))
	fmt.Fprintf(w, "  COPY ceiling    %10s records/s   (best of: 1 connection %s, %d connections %s; same %s rows, one transaction per batch)\n",
		thousands(c.RecordsPerS), thousands(c.SequentialRecordsPerS), c.Parallel, thousands(c.ParallelRecordsPerS), thousands(float64(c.Rows)))
	if sd := r.StoreDirect; sd != nil {
		fmt.Fprintf(w, "  Store.Write     %10s records/s   (same rows, %d writers, pool %d, no HTTP/gzip/validation: %.1f %% of the ceiling)\n",
			thousands(sd.RecordsPerS), sd.Writers, sd.Pool, 100*sd.RecordsPerS/c.RecordsPerS)
	}
	t := r.Targets
	fmt.Fprintf(w, "  of ceiling      %10.1f %%           target %-10s %s\n", r.PctOfCeiling, t[0].Want, mark(t[0].Pass))
	fmt.Fprintf(w, "  latency p50     %10.1f ms\n", r.Latency.P50)
	fmt.Fprintf(w, "  latency p99     %10.1f ms          target %-10s %s\n", r.Latency.P99, t[1].Want, mark(t[1].Pass))
	fmt.Fprintf(w, "  latency max     %10.1f ms          (mean %.1f ms over %d requests)\n", r.Latency.Max, r.Latency.Mean, r.Latency.Requests)
	fmt.Fprintf(w, "  server peak RSS %10.1f MiB         target %-10s %s   (VmHWM %.1f MiB)\n", r.PeakRSSMiB, t[2].Want, mark(t[2].Pass), r.HWMMiB)
	codes := slices.Sorted(maps.Keys(r.Statuses))
	fmt.Fprintf(w, "\n  answers (warm-up included):")
	for _, k := range codes {
		fmt.Fprintf(w, " %s ×%d", k, r.Statuses[k])
	}
	fmt.Fprintf(w, "; errors %d\n", r.Errors)
	for _, k := range codes {
		if msg, ok := r.FirstErrors[k]; ok {
			fmt.Fprintf(w, "    first %s: %s\n", k, msg)
		}
	}
	if u := r.CPU; u != nil {
		fmt.Fprintf(w, "  CPU in the window (%d cores): busy %.2f = server %.2f + postgres %.2f + bench clients %.2f + other %.2f\n",
			u.Cores, u.Busy, u.Server, u.Postgres, u.Bench, u.Other)
	}
	if u := r.CPU; u != nil && u.Other > noiseCores {
		fmt.Fprintf(w, "  WARNING: other processes used %.2f cores during the load: the figures are disturbed; run on an idle machine\n", u.Other)
	}
	if c != nil && c.OtherCores > noiseCores {
		fmt.Fprintf(w, "  WARNING: other processes used %.2f cores during the ceiling: the ceiling is disturbed; run on an idle machine\n", c.OtherCores)
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "  server metrics in the window: mean request %.1f ms, of which DB write %.1f ms (p50 ≤ %.0f ms, p99 ≤ %.0f ms); %.0f GC cycles\n",
			s.MeanRequestMs, s.MeanDBWriteMs, s.DBWriteP50Ms, s.DBWriteP99Ms, s.GCCycles)
	}
	if r.Database != "" {
		fmt.Fprintf(w, "  database kept: %s\n", r.Database)
	}
}
