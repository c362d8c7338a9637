package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/server"
	"github.com/fredcode/fredtel/store"
)

// startInProcess runs the ingest server inside this process, built the way
// `fredtel serve` builds it (migrated store, server.New, the same
// http.Server limits), so a CPU profile of this process shows where the
// server's time goes. Of the serve flags only --pool is understood. The
// clients then share the process: its RSS and CPU are not the server's
// alone.
func startInProcess(ctx context.Context, dbURL string, serveArgs []string) (*serverProc, error) {
	fs := flag.NewFlagSet("--serve-args", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	pool := fs.Int("pool", 8, "")
	if err := fs.Parse(serveArgs); err != nil || fs.NArg() > 0 {
		return nil, errors.New("--serve-args with --cpuprofile: only --pool N is understood")
	}
	st, err := store.Open(ctx, dbURL, store.Options{Set: schema.CentralSet, Migrate: true, MaxConns: int32(*pool)})
	if err != nil {
		return nil, err
	}
	p := &serverProc{pid: os.Getpid(), log: &tail{max: 64 << 10}, done: make(chan struct{}), inProc: true}
	srv, err := server.New(server.Config{Rate: 1e6, Burst: 1e6, Logger: slog.New(slog.NewJSONHandler(p.log, nil))}, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, err
	}
	p.addr = ln.Addr().String()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	var once sync.Once
	finish := func(err error) {
		once.Do(func() {
			st.Close()
			p.err = err
			close(p.done)
		})
	}
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			finish(err)
		}
	}()
	p.shutdown = func() {
		go func() {
			sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			finish(hs.Shutdown(sctx))
		}()
	}
	return p, nil
}

// profiler writes a CPU profile of the measured window to a file.
type profiler struct {
	path string
	f    *os.File
	err  error
}

func (p *profiler) start() {
	if p == nil {
		return
	}
	p.f, p.err = os.Create(p.path)
	if p.err == nil {
		p.err = pprof.StartCPUProfile(p.f)
	}
}

func (p *profiler) stop() {
	if p == nil || p.f == nil {
		return
	}
	if p.err == nil {
		pprof.StopCPUProfile()
	}
	if err := p.f.Close(); p.err == nil {
		p.err = err
	}
}
