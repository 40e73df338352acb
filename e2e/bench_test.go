package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchClients and benchRequests bound the throughput benchmark: a fixed
// count of requests, so one run is short and comparable between machines.
const (
	benchClients  = 64
	benchRequests = 6400
)

// BenchmarkProxyThroughput measures 64 concurrent keep-alive HTTPS clients
// posting 2 KiB JSON (a) directly to a local upstream and (b) through the
// running aarm binary with an ALLOW decision, and reports both and their
// ratio. It runs once whatever b.N is (the count is fixed).
func BenchmarkProxyThroughput(b *testing.B) {
	ca := newUpstreamCA(b)
	gh := newUpstream(b, ca, "api.github.com")
	gh.respond = func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":1,"number":42}`)
	}
	inst := startAarm(b, ca, []*upstream{gh}, "log-level: warn\n", "")
	s := inst.startSession(b, "bench", "bench-bot", "create issues in acme/web")
	body := benchBody()

	upstreamPool := x509.NewCertPool()
	upstreamPool.AppendCertsFromPEM(ca.pem)
	direct := &http.Client{Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: benchClients, TLSClientConfig: &tls.Config{RootCAs: upstreamPool, ServerName: "api.github.com"},
	}}
	directURL := "https://" + gh.addr() + "/repos/acme/web/issues"

	aarmPool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(inst.caFile())
	aarmPool.AppendCertsFromPEM(caPEM)
	pu := &url.URL{Scheme: "http", Host: inst.proxy, User: url.UserPassword("bench-bot", s.Token)}
	proxied := &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyURL(pu), MaxIdleConnsPerHost: benchClients, TLSClientConfig: &tls.Config{RootCAs: aarmPool},
	}}
	proxiedURL := "https://api.github.com/repos/acme/web/issues"

	b.ResetTimer()
	d := runLoad(b, direct, directURL, body)
	p := runLoad(b, proxied, proxiedURL, body)
	b.StopTimer()

	b.ReportMetric(d.rps, "direct-req/s")
	b.ReportMetric(float64(d.p50.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(d.p99.Microseconds()), "direct-p99-µs")
	b.ReportMetric(p.rps, "aarm-req/s")
	b.ReportMetric(float64(p.p50.Microseconds()), "aarm-p50-µs")
	b.ReportMetric(float64(p.p99.Microseconds()), "aarm-p99-µs")
	b.ReportMetric(p.rps/d.rps, "aarm/direct")
	b.Logf("%d clients × %d requests of %d B: direct %.0f req/s p50 %s p99 %s; through aarm %.0f req/s p50 %s p99 %s; ratio %.2f",
		benchClients, benchRequests, len(body), d.rps, d.p50, d.p99, p.rps, p.p50, p.p99, p.rps/d.rps)
}

func benchBody() []byte {
	var sb strings.Builder
	sb.WriteString(`{"title":"Benchmark issue","labels":["bench"],"body":"`)
	for sb.Len() < 2048-2 {
		sb.WriteString("lorem ipsum dolor sit amet ")
	}
	s := sb.String()[:2048-2] + `"}`
	return []byte(s)
}

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
}

func runLoad(b *testing.B, c *http.Client, u string, body []byte) loadResult {
	b.Helper()
	var mu sync.Mutex
	lat := make([]time.Duration, 0, benchRequests)
	var wg sync.WaitGroup
	var failed error
	start := time.Now()
	per := benchRequests / benchClients
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, per)
			for range per {
				t0 := time.Now()
				resp, err := c.Post(u, "application/json", bytes.NewReader(body))
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil {
		b.Fatalf("load against %s: %v", u, failed)
	}
	slices.Sort(lat)
	return loadResult{rps: float64(len(lat)) / elapsed.Seconds(), p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
}
