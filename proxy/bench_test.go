package proxy

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkProxyAllow measures 64 concurrent keep-alive HTTPS clients posting
// 2 KiB of JSON through the proxy with an ALLOW gate, against the same
// clients talking to the upstream directly. It reports req/s, p50 and p99.
func BenchmarkProxyAllow(b *testing.B) {
	const clients = 64
	body := []byte(`{"data":"` + strings.Repeat("a", 2048-11) + `"}`)
	up := newUpstream(b, true, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	h := startProxy(b, newFakeGate(nil), up, nil)

	run := func(b *testing.B, url string, mk func() *http.Client) {
		cs := make([]*http.Client, clients)
		for i := range cs {
			cs[i] = mk()
		}
		var mu sync.Mutex
		lat := make([]time.Duration, 0, b.N)
		var wg sync.WaitGroup
		work := make(chan struct{}, b.N)
		for range b.N {
			work <- struct{}{}
		}
		close(work)
		b.ResetTimer()
		start := time.Now()
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]time.Duration, 0, b.N/clients+1)
				for range work {
					t0 := time.Now()
					resp, err := c.Post(url, "application/json", bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("got status %d, want 200", resp.StatusCode)
						return
					}
					local = append(local, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if len(lat) == 0 {
			return
		}
		slices.Sort(lat)
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()), "p99-µs")
	}

	b.Run("proxy", func(b *testing.B) {
		run(b, "https://api.example.com/bench", func() *http.Client { return h.client(b, "good", false) })
	})
	b.Run("direct", func(b *testing.B) {
		run(b, up.srv.URL+"/bench", func() *http.Client {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: up.pool()}, MaxIdleConnsPerHost: 4}
			b.Cleanup(tr.CloseIdleConnections)
			return &http.Client{Transport: tr}
		})
	})
}
