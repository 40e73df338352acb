// Package telemetry exports what the gate decides: Prometheus metrics on the
// admin listener's /metrics (decisions by verdict, decision latency, holds,
// policy reloads, ledger size).
package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aarmproxy/aarm"
)

// Metrics are aarm's Prometheus metrics, on a registry of their own.
type Metrics struct {
	reg           *prometheus.Registry
	decisions     *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	reloads       *prometheus.CounterVec
	reloadOK      prometheus.Gauge
	reloadSuccess prometheus.Gauge
}

// Sources are read when /metrics is scraped.
type Sources struct {
	// HoldsPending counts pending holds by source (step_up, defer).
	HoldsPending func() map[string]int
	// LedgerSize is the number of receipts.
	LedgerSize func() uint64
}

// New registers the metrics.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aarm_decisions_total", Help: "Decisions by verdict, tool and rule.",
		}, []string{"verdict", "tool", "rule"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "aarm_decision_seconds", Help: "Time from request arrival to decision, holds included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 10, 60, 300},
		}, []string{"verdict"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "aarm_policy_reloads_total", Help: "Policy reload attempts by result (ok, error).",
		}, []string{"result"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aarm_policy_last_reload_ok", Help: "1 when the last policy reload succeeded, 0 when the file was rejected (the last good policy stays in force).",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "aarm_policy_last_reload_success_timestamp_seconds", Help: "When a policy was last loaded.",
		}),
	}
	m.reloadOK.Set(1)
	m.reloadSuccess.SetToCurrentTime()
	reg.MustRegister(m.decisions, m.latency, m.reloads, m.reloadOK, m.reloadSuccess,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.HoldsPending != nil {
		desc := prometheus.NewDesc("aarm_holds_pending", "Actions held for approval or context, by source.", []string{"source"}, nil)
		reg.MustRegister(collectorFunc{desc: desc, collect: func(ch chan<- prometheus.Metric) {
			counts := src.HoldsPending()
			for _, s := range []string{"step_up", "defer"} {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(counts[s]), s)
			}
		}})
	}
	if src.LedgerSize != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "aarm_ledger_receipts", Help: "Receipts in the ledger.",
		}, func() float64 { return float64(src.LedgerSize()) }))
	}
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Decision counts one decision.
func (m *Metrics) Decision(d aarm.Decision, tool string, took time.Duration) {
	m.decisions.WithLabelValues(d.Verdict.String(), tool, d.Rule).Inc()
	m.latency.WithLabelValues(d.Verdict.String()).Observe(took.Seconds())
}

// PolicyReload records a reload attempt (rules.PolicyStore.OnReload).
func (m *Metrics) PolicyReload(ok bool, _ error) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
		m.reloadOK.Set(1)
		m.reloadSuccess.SetToCurrentTime()
		return
	}
	m.reloads.WithLabelValues("error").Inc()
	m.reloadOK.Set(0)
}

type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
