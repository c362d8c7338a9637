package bench

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/fredcode/fredtel/schema"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// drainTimeout bounds the wait for the sink to have every record.
const drainTimeout = 2 * time.Minute

// result is one run of a sub-benchmark.
type result struct {
	n      int
	ns     float64
	allocs float64
	note   string
}

// results holds, per client, the final run of each repetition (-count, or
// BENCH_ROUNDS): every repetition starts with a run of b.N = 1 (testing's
// run1) and ends with the one go test reports.
var (
	resultsMu sync.Mutex
	results   = map[string][]result{}
)

func record(key string, r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	rs := results[key]
	if r.n == 1 || len(rs) == 0 {
		results[key] = append(rs, r)
		return
	}
	rs[len(rs)-1] = r
}

// measure times one sub-benchmark run from the first record to the moment
// every record has reached its destination, and counts the allocations of
// all goroutines meanwhile (as -benchmem does).
type measure struct {
	b   *testing.B
	ms  runtime.MemStats
	t0  time.Time
	key string
}

func start(b *testing.B, key string) *measure {
	m := &measure{b: b, key: key}
	b.ReportAllocs()
	runtime.GC()
	b.ResetTimer()
	runtime.ReadMemStats(&m.ms)
	m.t0 = time.Now()
	return m
}

func (m *measure) stop(note string) {
	d := time.Since(m.t0)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.b.StopTimer()
	n := m.b.N
	record(m.key, result{n: n, ns: float64(d.Nanoseconds()) / float64(n), allocs: float64(ms.Mallocs-m.ms.Mallocs) / float64(n), note: note})
}

// BenchmarkPipeline is the sustained cost per record of each client's whole
// pipeline: recording a tool call with ~200 bytes of arguments (fred) or an
// event/span with 10 properties of ~200 bytes (the SDKs), batching, JSON
// encoding, compression where the client does it, and HTTP into a loopback
// sink that answers 200; the clock stops once the sink (the exporter, for
// OTel) has every record. The four run in one benchmark so their figures
// come from the same run; the ratios are printed at the end.
func BenchmarkPipeline(b *testing.B) {
	// fred's queue is 64 MiB, or room for every record of the run when
	// that is more: the loop records faster than one sender delivers, so
	// a long run queues most of its records, and a dropped record would
	// make the figure meaningless. BENCH_QUEUE_BYTES sets it outright.
	queueBytes := 0
	if v := os.Getenv("BENCH_QUEUE_BYTES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_QUEUE_BYTES=%q", v)
		}
		queueBytes = n
	}
	// BENCH_ROUNDS repeats the four in turn (interleaved, unlike -count,
	// which repeats each in a row): on a shared machine the load then
	// falls on all of them alike. The summary takes the median.
	rounds := 1
	if v := os.Getenv("BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 50 {
			b.Fatalf("BENCH_ROUNDS=%q (1 to 50)", v)
		}
		rounds = n
	}
	for range rounds {
		b.Run("fred", func(b *testing.B) { benchFred(b, queueBytes) })
		for _, sdk := range sdks {
			b.Run(sdk.name, func(b *testing.B) { benchSDK(b, sdk.name, sdk.open) })
		}
		b.Run("otel", benchOTel)
	}
	printRatios()
}

func benchFred(b *testing.B, queueBytes int) {
	sk := newSink(b, `"call_id"`) // once per tool call record
	dir := fredDir(b)
	opts := fredOptions(dir, sk.URL())
	opts.QueueBytes = queueBytes
	if queueBytes == 0 {
		// The queue accounts a tool call at the size of the record
		// struct; twice that leaves a margin.
		opts.QueueBytes = max(64<<20, 2*b.N*int(unsafe.Sizeof(schema.ToolCall{})))
	}
	// The clock must run until the sink has every record, so Close gets
	// the time to send the tail: with the default budget (100 ms) what is
	// left at exit goes to the spool, which TestExitCost measures.
	opts.CloseBudget = drainTimeout
	s := startFred(b, opts)
	turn := s.BeginTurn("act", "fred-flash-2")
	sk.reset()
	m := start(b, "fred")
	for i := 0; i < b.N; i++ {
		turn.ToolCall(toolCall)
	}
	loop := time.Since(m.t0) // what the agent's goroutine spent
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	s.Close(ctx)
	cancel()
	st := s.Stats()
	if st.Dropped > 0 || st.Spooled > 0 {
		b.Fatalf("invalid figure: %d records dropped, %d spooled (queue %d bytes; raise BENCH_QUEUE_BYTES): %+v", st.Dropped, st.Spooled, opts.QueueBytes, st)
	}
	// Every record was acknowledged: the clock stops here, and the sink
	// proves they all arrived.
	m.stop(fmt.Sprintf("queue %d MiB; recording loop alone %.0f ns/record", opts.QueueBytes>>20, float64(loop.Nanoseconds())/float64(b.N)))
	sk.check(b, "fred", "tool calls")
	if st.Written != int64(b.N)+2 { // + the session's start and end
		b.Fatalf("written %d, want %d: %+v", st.Written, b.N+2, st)
	}
}

// benchSDK times b.N tool call events through an SDK client, up to its
// Close, which returns once every event has been answered.
func benchSDK(b *testing.B, name string, open openSDK) {
	sk := newSink(b, `"tool_call"`) // the event name, once per event
	tr := freshTransport()
	defer tr.CloseIdleConnections()
	c, enqueue := open(b, sk.URL(), tr)
	sk.reset()
	m := start(b, name)
	var failed int
	for i := 0; i < b.N; i++ {
		if err := enqueue(); err != nil {
			failed++
		}
	}
	c.Close()
	m.stop("")
	if failed > 0 {
		b.Fatalf("%s: %d enqueue errors", name, failed)
	}
	sk.check(b, name, "events")
}

// countExporter is an OTel SpanExporter that counts the spans and discards
// them (there is no OTLP exporter in this module; the network is left out).
type countExporter struct{ n atomic.Int64 }

func (e *countExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.n.Add(int64(len(spans)))
	return nil
}
func (e *countExporter) Shutdown(context.Context) error { return nil }

func benchOTel(b *testing.B) {
	exp := &countExporter{}
	// WithBlocking: a full queue waits instead of dropping spans, so every
	// span is exported, as every record is delivered for the others.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBlocking()))
	tracer := tp.Tracer("fred")
	ctx := context.Background()
	m := start(b, "otel")
	for i := 0; i < b.N; i++ {
		_, span := tracer.Start(ctx, "tool_call")
		span.SetAttributes(otelAttrs()...)
		span.End()
	}
	sctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	err := tp.Shutdown(sctx)
	cancel()
	if err != nil || exp.n.Load() != int64(b.N) {
		b.Fatalf("otel: shutdown %v; %d of %d spans exported", err, exp.n.Load(), b.N)
	}
	m.stop("no network (counting exporter)")
}

// median is the run with the median time of rs (the upper one of two).
func median(rs []result) result {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(x, y result) int { return cmp.Compare(x.ns, y.ns) })
	return rs[len(rs)/2]
}

// printRatios prints each client's figures (the median of the repetitions)
// and fred's standing against them, all from this run.
func printRatios() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	names := []string{"fred", "posthog", "segment", "otel"}
	med := map[string]result{}
	for _, k := range names {
		rs := results[k]
		if len(rs) == 0 {
			continue
		}
		r := median(rs)
		med[k] = r
		fmt.Printf("summary: pipeline %-8s %9.0f ns/record %7.2f allocs/record  (median of %d; b.N=%d, %s)\n", k, r.ns, r.allocs, len(rs), r.n, r.note)
	}
	fred, ok := med["fred"]
	if !ok {
		return
	}
	fastest := ""
	for _, k := range names[1:] {
		r, ok := med[k]
		if !ok {
			continue
		}
		fmt.Printf("summary: pipeline fred vs %-8s %5.2fx faster per record, %6.1fx fewer allocs\n", k, r.ns/fred.ns, r.allocs/max(fred.allocs, 0.01))
		if fastest == "" || r.ns < med[fastest].ns {
			fastest = k
		}
	}
	if fastest == "" {
		return
	}
	speed := med[fastest].ns / fred.ns
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Printf("summary: pipeline target >=3x faster than the fastest (%s): %.2fx, %s; <=2 allocs/record: %.2f, %s\n",
		fastest, speed, verdict(speed >= 3), fred.allocs, verdict(fred.allocs <= 2))
}
