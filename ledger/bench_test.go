package ledger

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aarmproxy/aarm"
)

// BenchmarkAppend measures durable appends (SyncWrites on, a real directory)
// with 1, 16 and 64 concurrent writers, reporting receipts/s and the p99
// latency of one Append. Issue 5 targets >= 20,000 receipts/s at 64 writers.
func BenchmarkAppend(b *testing.B) {
	cases := []struct {
		writers int
		alg     string
	}{{1, KeyECDSAP256}, {16, KeyECDSAP256}, {64, KeyECDSAP256}, {64, KeyEd25519}}
	for _, c := range cases {
		writers := c.writers
		b.Run(fmt.Sprintf("writers=%d/%s", writers, c.alg), func(b *testing.B) {
			db := openDB(b, b.TempDir())
			defer db.Close()
			k := newKey(b, c.alg)
			l := openLedger(b, db, k)
			defer l.Close()
			tmpl := sampleReceipt("s", "a", aarm.Allow)
			tmpl.Kind = aarm.KindOutcome
			var next atomic.Int64
			lat := make([][]time.Duration, writers)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range writers {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						r := *tmpl
						t0 := time.Now()
						if _, err := l.Append(context.Background(), &r); err != nil {
							b.Error(err)
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(len(all))/elapsed.Seconds(), "receipts/s")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
