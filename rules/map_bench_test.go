package rules

import (
	"os"
	"sort"
	"testing"
	"time"

	"github.com/aarmproxy/aarm/inspect"
)

// BenchmarkMapCorpus maps every decoded request of the golden corpus and
// reports mapping throughput (actions/s) and the 99th percentile time per
// request. Decoding is done once, outside the timed loop: it is inspect's.
func BenchmarkMapCorpus(b *testing.B) {
	c := builtinCatalogForTest(b)
	var reqs []*inspect.Request
	for _, f := range goldenFiles(b) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		m, u, h, body, err := ParseHTTPRequestFile(f, data)
		if err != nil {
			b.Fatal(err)
		}
		req, err := inspect.DecodeRequest(m, u, h, body, goldenLimits)
		if err != nil {
			continue // requests the gate denies at decoding never reach Map
		}
		reqs = append(reqs, req)
	}
	durations := make([]time.Duration, 0, b.N*len(reqs))
	actions := 0
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, r := range reqs {
			t0 := time.Now()
			m, err := c.Map(r)
			durations = append(durations, time.Since(t0))
			if err == nil {
				actions += len(m.Actions)
			}
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	if len(durations) > 0 {
		p99 := durations[(len(durations)*99)/100]
		b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns/request")
	}
	b.ReportMetric(float64(actions)/elapsed.Seconds(), "actions/s")
}
