package server

import "github.com/prometheus/client_golang/prometheus"

// metrics are served at /metrics in the Prometheus format.
type metrics struct {
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	records   *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	dbLatency prometheus.Histogram
	inflight  prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fredtel_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fredtel_http_request_duration_seconds", Help: "Time to answer a request.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"route"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fredtel_records_total", Help: "Records committed, by result (accepted or duplicate).",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fredtel_batches_rejected_total", Help: "Batches refused, by reason (the rule, never a value).",
		}, []string{"reason"}),
		dbLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fredtel_db_write_duration_seconds", Help: "Time to commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fredtel_db_writes_in_flight", Help: "Batches being written: the write queue's depth.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.records, m.rejected, m.dbLatency, m.inflight,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}
